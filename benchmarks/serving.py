"""Serving speed: ``python -m seqapps serve`` under load, beside the in-process ceiling.

Two servers run side by side over the same exports, one with request batching on and one
with it off (``--batching off``). The load generator is an async Python client (asyncio on
uvloop, raw HTTP/1.1 keep-alive, one connection per client) on 127.0.0.1; every request is
one sentence in TF Serving's row format, and anything but a 200 counts as failed. Each round
is bounded in requests and in time. For 1, 8 and 64 concurrent clients the rounds alternate
-- in process, batching on, batching off -- and the whole set repeats; figures are the median
of the repeats. "In process" is the same signature called directly in a loop from Python
(``tf.saved_model.load``) at batch size = clients: the ceiling the server is measured against.
Last, 100,000 requests at 64 clients go to the batching server while its resident memory
(VmRSS) is sampled.

The exports are the tasks' default models (sizes as ``train TASK`` builds them) trained one
epoch on ``--data demo``: speed depends on the sizes, not on what was learned. ``--exports DIR``
serves exports you already have instead (``DIR/sentiment``, ``DIR/translation``).

    python benchmarks/serving.py [--tasks sentiment,translation] [--repeats 3] [--memory-requests 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SENTENCES = ["a gripping , beautiful film", "dull and far too long", "the acting was brilliant", "what a mess",
             "i loved every minute of it", "boring", "a warm and funny story about two old friends",
             "the plot makes no sense at all", "superb", "awful script , awful acting", "it was fine",
             "charming but slight", "i am cold .", "she reads a book .", "we are going home .", "he is tall ."]
CLIENTS = (1, 8, 64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "seqapps", *map(str, args)], cwd=ROOT, env=env, **kw)


def make_exports(tasks, out: Path) -> Path:
    for task in tasks:
        if (out / task / "saved_model.pb").exists():
            continue
        for cmd in (["train", task, "--data", "demo", "--epochs", "1", "--no-eval", "--preset", "none",
                     "--run-dir", out / "runs" / task, "--overwrite"], ["export", out / "runs" / task, out / task]):
            proc = cli(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if proc.wait():
                sys.exit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, exports: Path, batching: str):
        self.port = free_port()
        self.proc = cli("serve", exports, "--port", self.port, "--batching", batching, "--poll-seconds", "0",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self, models):
        import urllib.request

        for _ in range(1200):
            try:
                for m in models:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/models/{m}", timeout=2).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    sys.exit("a server exited while starting")
                time.sleep(0.1)
        sys.exit("a server did not start in 120 s")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


# -- the load generator ---------------------------------------------------------------------------
async def _client(port, path, bodies, budget, latencies, failures, deadline):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
    i = 0
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            body = bodies[i % len(bodies)]
            i += 1
            started = time.perf_counter()
            writer.write(f"{head}{len(body)}\r\n\r\n".encode() + body)
            status = (await reader.readline()).split(b" ", 2)[1]
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != b"200":
                failures[0] += 1
    except (OSError, asyncio.IncompleteReadError, IndexError):
        failures[0] += 1
    finally:
        writer.close()


async def _load(port, model, clients, requests, seconds):
    bodies = [json.dumps({"instances": [s]}).encode() for s in SENTENCES]
    latencies, failures, budget = [], [0], [requests]
    started = time.perf_counter()
    await asyncio.gather(*[_client(port, f"/v1/models/{model}:predict", bodies[c % len(bodies):] + bodies[:c % 16],
                                   budget, latencies, failures, started + seconds) for c in range(clients)])
    wall = time.perf_counter() - started
    return summary(latencies, wall, failures[0])


def load(port, model, clients, requests, seconds):
    try:
        import uvloop

        return uvloop.run(_load(port, model, clients, requests, seconds))
    except ImportError:
        return asyncio.run(_load(port, model, clients, requests, seconds))


def summary(latencies, wall, failures=0):
    ordered = sorted(latencies)
    pick = lambda q: 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
    return {"requests": len(ordered), "failed": failures, "rps": len(ordered) / wall,
            "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


def in_process(fn, clients, seconds, requests):
    """The signature called in a loop with ``clients`` sentences a call: rows/s and call latency."""
    import tensorflow as tf

    calls, latencies = [], []
    batch = tf.constant([SENTENCES[i % len(SENTENCES)] for i in range(clients)])
    fn(text=batch)  # warm
    started = time.perf_counter()
    while time.perf_counter() - started < seconds and len(calls) * clients < requests:
        t = time.perf_counter()
        {k: v.numpy() for k, v in fn(text=batch).items()}
        latencies.append(time.perf_counter() - t)
        calls.append(clients)
    wall = time.perf_counter() - started
    out = summary(latencies, wall)
    out["rps"] = sum(calls) / wall  # rows/s, comparable with requests/s of one row each
    return out


def median_of(results):
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="sentiment,translation")
    parser.add_argument("--exports", help="a folder with TASK/ exports (default: train them on demo data)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000, help="most requests a round (default: 3000)")
    parser.add_argument("--seconds", type=float, default=6.0, help="longest a round runs (default: 6)")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--out", help="also write the figures here as JSON")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    wall = time.perf_counter()
    exports = Path(args.exports) if args.exports else make_exports(
        tasks, Path(tempfile.gettempdir()) / "seqapps-serving-bench")
    servers = {"on": Server(exports, "on"), "off": Server(exports, "off")}
    try:
        for s in servers.values():
            s.wait(tasks)
        report = run(args, tasks, exports, servers)
    finally:
        for s in servers.values():
            s.stop()
    report["wall_seconds"] = time.perf_counter() - wall
    report["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average " \
                        f"{os.getloadavg()[0]:.2f} at the end"
    print_report(report)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def run(args, tasks, exports, servers) -> dict:
    import tensorflow as tf

    report = {"load_average_start": os.getloadavg()[0], "tasks": {}}
    for task in tasks:
        fn = tf.saved_model.load(str(exports / task)).signatures["serving_default"]
        rounds = {(mode, c): [] for mode in ("in-process", "on", "off") for c in CLIENTS}
        for _ in range(args.repeats):
            for c in CLIENTS:
                rounds["in-process", c].append(in_process(fn, c, args.seconds, args.requests))
                for mode in ("on", "off"):
                    load(servers[mode].port, task, c, min(c * 20, 200), 10)  # warm this many connections
                    rounds[mode, c].append(load(servers[mode].port, task, c, args.requests, args.seconds))
        report["tasks"][task] = {f"{mode} {c}": {**median_of(r), "failed": sum(x["failed"] for x in r)}
                                 for (mode, c), r in rounds.items()}
    server = servers["on"]
    samples = []
    chunk = args.memory_requests // 10
    for _ in range(10):
        load(server.port, tasks[0], 64, chunk, 3600)
        samples.append(rss_mb(server.proc.pid))
    report["memory"] = {"task": tasks[0], "requests": chunk * 10, "rss_mb_after_each_tenth": samples}
    return report


def print_report(report):
    print(f"machine: {report['machine']}; load average {report['load_average_start']:.2f} at the start; "
          f"{report['wall_seconds']:.0f} s in all")
    for task, figures in report["tasks"].items():
        print(f"\n{task}: requests/s (in process: rows/s) and latency in ms, median of the repeats")
        print("| clients | in process | batching on | batching off | on / in process | on / off | "
              "p50 / p95 / p99 on | p50 / p95 / p99 off | failed |")
        print("|---|---|---|---|---|---|---|---|---|")
        for c in CLIENTS:
            ip, on, off = (figures[f"{m} {c}"] for m in ("in-process", "on", "off"))
            print(f"| {c} | {ip['rps']:.0f} | {on['rps']:.0f} | {off['rps']:.0f} | {on['rps'] / ip['rps']:.3f} | "
                  f"{on['rps'] / off['rps']:.3f} | {on['p50']:.1f} / {on['p95']:.1f} / {on['p99']:.1f} | "
                  f"{off['p50']:.1f} / {off['p95']:.1f} / {off['p99']:.1f} | {on['failed'] + off['failed']} |")
    mem = report["memory"]
    first, last = mem["rss_mb_after_each_tenth"][0], mem["rss_mb_after_each_tenth"][-1]
    print(f"\nmemory ({mem['task']}, batching on, {mem['requests']} requests at 64 clients): VmRSS after each "
          f"tenth {', '.join(f'{x:.0f}' for x in mem['rss_mb_after_each_tenth'])} MB; last / first "
          f"{last / first:.3f}")
    s = report["tasks"].get("sentiment")
    if s:
        ratio, p99 = s["on 64"]["rps"] / s["in-process 64"]["rps"], s["on 64"]["p99"]
        failed = sum(f["failed"] for f in s.values())
        print(f"targets (sentiment, 64 clients, batching on): throughput {ratio:.3f} of in process (>= 0.70: "
              f"{'met' if ratio >= 0.7 else 'NOT met'}); p99 {p99:.1f} ms "
              f"(<= 50: {'met' if p99 <= 50 else 'NOT met'}); "
              f"failed requests {failed}; memory last/first {last / first:.3f} "
              f"(within 10%: {'met' if abs(last / first - 1) <= 0.1 else 'NOT met'})")


if __name__ == "__main__":
    main()
