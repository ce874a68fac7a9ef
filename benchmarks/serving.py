"""Serving speed: ``python -m seqapps serve`` under load, beside the in-process ceiling.

Two servers run side by side over the same exports, one with request batching on and one
with it off (``--batching off``). The load generator is Debian's ``wrk`` (C, HTTP/1.1
keep-alive, one connection per client, at most two threads) with a Lua script that POSTs one
sentence per request in TF Serving's row format, rotating over 16 sentences; socket errors,
timeouts and any status but 2xx/3xx count as failed. wrk costs the shared cores far less than
a Python client would, so more of them go to the server. Each round runs for ``--seconds``.
For 1, 8 and 64 concurrent clients the rounds alternate -- in process, batching on, batching
off -- and the whole set repeats; figures are the median of the repeats. "In process" is the
same signature called directly in a loop from Python (``tf.saved_model.load``) at batch size =
clients: the ceiling the server is measured against. It runs in two child processes, one with
TensorFlow's default thread pools and one with one thread per op and one op at a time (the
server's default), and the ceiling is whichever is faster at that batch size. Beside each round, the CPU time (all
threads, user + system) the server process, or the in-process loop, spent per request or row:
on two cores shared with the load generator, it bounds what the server can reach. Last, ``--memory-requests`` (100,000) go
to the batching server at 64 clients in ten rounds while its resident memory (VmRSS) is read
after each.

The exports are the tasks' default models (sizes as ``train TASK`` builds them) trained one
epoch on ``--data demo``: speed depends on the sizes, not on what was learned. ``--exports DIR``
serves exports you already have instead (``DIR/sentiment``, ``DIR/translation``).

``--formats onnx`` (or ``onnx,litert``) adds a server, batching on, over each task's export in that format
(``--quantize``, default ``none``), written from the same runs (``DIR/runs/TASK``) into ``DIR/onnx/TASK``: it
takes its turn in the same rounds, and its requests/s are reported beside the SavedModel's server (batching on)
as a ratio, round by round (the median of the rounds' ratios).

    apt-get install wrk   # once
    python benchmarks/serving.py [--tasks sentiment,translation] [--repeats 3] [--memory-requests 100000]
    python benchmarks/serving.py --formats onnx [--quantize int8] --memory-requests 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
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
CLIENTS = (1, 8, 64, 256)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(root: Path = ROOT) -> dict:
    """The environment of the processes this script starts: seqapps from ``root``, TensorFlow quiet."""
    return {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}


def cli(*args, root: Path = ROOT, **kw):
    return subprocess.Popen([sys.executable, "-m", "seqapps", *map(str, args)], cwd=root, env=child_env(root), **kw)


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


def format_exports(tasks, exports: Path, fmt: str, quantize: str) -> Path:
    """``fmt`` exports of the runs under ``exports/runs`` (as :func:`make_exports` leaves them) in ``exports/FMT-Q``."""
    out = exports / f"{fmt}-{quantize}"
    for task in tasks:
        if (out / task / "metadata.json").exists():
            continue
        run = exports / "runs" / task
        if not run.is_dir():
            sys.exit(f"--formats needs the runs the exports came from: {run} is missing (leave out --exports, or "
                     "keep DIR/runs/TASK beside DIR/TASK)")
        cmd = ["export", run, out / task, "--format", fmt, "--quantize", quantize]
        proc = cli(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.wait():
            sys.exit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, exports: Path, batching: str, root: Path = ROOT):
        self.port = free_port()
        self.proc = cli("serve", exports, "--port", self.port, "--batching", batching, "--poll-seconds", "0", root=root,
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


# -- the load generator: Debian's wrk, with a Lua script for the POST bodies ----------------------
LUA = """
local bodies = {%s}
local path = "%s"
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, bodies[(i %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT {\\"requests\\": %%d, \\"seconds\\": %%f, \\"failed\\": %%d, \\"p50\\": %%f, \\"p95\\": %%f, \\"p99\\": %%f}\\n",
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def load(port, model, clients, seconds):
    """``clients`` connections (HTTP/1.1 keep-alive, one request at a time each) for ``seconds``:
    requests/s, failed requests (socket errors, timeouts, any status but 2xx/3xx) and latency in ms."""
    bodies = ", ".join(_lua_string(json.dumps({"instances": [s]})) for s in SENTENCES)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % (bodies, f"/v1/models/{model}:predict"))
    try:
        proc = subprocess.run(["wrk", "-t", str(min(2, clients)), "-c", str(clients), "-d", f"{max(1, round(seconds))}s",
                               "--timeout", "30s", "-s", f.name, f"http://127.0.0.1:{port}"],
                              capture_output=True, text=True, check=True)
    finally:
        os.unlink(f.name)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    return {"requests": r["requests"], "failed": r["failed"], "rps": r["requests"] / r["seconds"],
            "p50": r["p50"], "p95": r["p95"], "p99": r["p99"]}


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def summary(latencies, wall, failures=0):
    ordered = sorted(latencies)
    pick = lambda q: 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
    return {"requests": len(ordered), "failed": failures, "rps": len(ordered) / wall,
            "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


def in_process(fn, clients, seconds):
    """The signature called in a loop with ``clients`` sentences a call: rows/s and call latency."""
    import tensorflow as tf

    calls, latencies = [], []
    batch = tf.constant([SENTENCES[i % len(SENTENCES)] for i in range(clients)])
    fn(text=batch)  # warm
    started, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        t = time.perf_counter()
        {k: v.numpy() for k, v in fn(text=batch).items()}
        latencies.append(time.perf_counter() - t)
        calls.append(clients)
    wall = time.perf_counter() - started
    out = summary(latencies, wall)
    out["rps"] = sum(calls) / wall  # rows/s, comparable with requests/s of one row each
    out["cpu_ms"] = 1000 * (time.process_time() - cpu) / max(1, sum(calls))  # CPU per row, all threads
    return out


class InProcess:
    """The in-process loop in a child process whose TensorFlow thread pools are set before
    anything runs (``threads`` ops' threads and ops at once; 0: TensorFlow's defaults)."""

    def __init__(self, export: Path, threads: int):
        self.threads = threads
        self.proc = subprocess.Popen([sys.executable, __file__, "--in-process-child", str(export), str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env())

    def __call__(self, clients: int, seconds: float) -> dict:
        self.proc.stdin.write(f"{clients} {seconds}\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                return {**json.loads(line[len("RESULT "):]), "threads": self.threads}
        sys.exit("an in-process child exited")

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def in_process_child(export: str, threads: int):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    fn = tf.saved_model.load(export).signatures["serving_default"]
    for line in sys.stdin:
        clients, seconds = line.split()
        print("RESULT " + json.dumps(in_process(fn, int(clients), float(seconds))), flush=True)


def median_of(results):
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def main():
    if sys.argv[1:2] == ["--in-process-child"]:
        return in_process_child(sys.argv[2], int(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="sentiment,translation")
    parser.add_argument("--exports", help="a folder with TASK/ exports (default: train them on demo data)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="how long a round runs (default: 6)")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--formats", default="", help="onnx and/or litert: a server over those exports too, "
                                                      "batching on, in the same rounds (comma-separated)")
    parser.add_argument("--quantize", default="none", choices=("none", "int8", "float16"),
                        help="the --formats exports' quantization")
    parser.add_argument("--out", help="also write the figures here as JSON")
    parser.add_argument("--against", help="another checkout of seqapps (git worktree add DIR COMMIT): its server, "
                                          "batching on, runs in the same rounds, for an old / new ratio")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/serving.py needs Debian's wrk as its load generator: apt-get install wrk")
    tasks = args.tasks.split(",")
    wall = time.perf_counter()
    exports = Path(args.exports) if args.exports else make_exports(
        tasks, Path(tempfile.gettempdir()) / "seqapps-serving-bench")
    servers = {"on": Server(exports, "on"), "off": Server(exports, "off")}
    if args.against:  # another checkout's server, batching on, in the same rounds
        servers["against"] = Server(exports, "on", Path(args.against).resolve())
    for fmt in filter(None, args.formats.split(",")):  # the same runs in another format, batching on
        servers[fmt] = Server(format_exports(tasks, exports, fmt, args.quantize), "on")
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
    formats = sorted(set(servers) - {"on", "off", "against"})  # the --formats servers
    report = {"load_average_start": os.getloadavg()[0], "tasks": {}, "formats": formats, "quantize": args.quantize}
    for task in tasks:
        loops = [InProcess(exports / task, threads) for threads in (0, 1)]
        modes = [f"in-process {loop.threads}" for loop in loops] + list(servers)
        rounds = {(mode, c): [] for mode in modes for c in CLIENTS}
        for _ in range(args.repeats):
            for c in CLIENTS:
                for loop in loops:
                    rounds[f"in-process {loop.threads}", c].append(loop(c, args.seconds))
                for mode in servers:
                    server = servers[mode]
                    load(server.port, task, c, 1)  # warm this many connections
                    cpu = cpu_seconds(server.proc.pid)
                    r = load(server.port, task, c, args.seconds)
                    r["cpu_ms"] = 1000 * (cpu_seconds(server.proc.pid) - cpu) / max(1, r["requests"])
                    rounds[mode, c].append(r)
        for loop in loops:
            loop.stop()
        figures = {f"{mode} {c}": {**median_of(r), "failed": sum(x["failed"] for x in r)}
                   for (mode, c), r in rounds.items()}
        for c in CLIENTS:  # the ceiling: the faster thread setting at this batch size
            figures[f"in-process {c}"] = max((figures[f"in-process {loop.threads} {c}"] for loop in loops),
                                             key=lambda f: f["rps"])
            for fmt in formats:  # round by round: that format / the SavedModel
                figures[f"{fmt} {c}"]["{fmt} / on".format(fmt=fmt)] = statistics.median(
                    a["rps"] / b["rps"] for a, b in zip(rounds[fmt, c], rounds["on", c]))
            if "against" in servers:  # round by round: this server / the other checkout's
                figures[f"against {c}"]["on / against"] = statistics.median(
                    a["rps"] / b["rps"] for a, b in zip(rounds["on", c], rounds["against", c]))
        report["tasks"][task] = figures
    server = servers["on"]
    samples, served, failed = [], 0, 0
    rate = report["tasks"][tasks[0]]["on 64"]["rps"]  # ten rounds of about a tenth of the requests each
    for _ in range(10 if args.memory_requests else 0):
        r = load(server.port, tasks[0], 64, math.ceil(args.memory_requests / 10 / rate))
        served, failed = served + r["requests"], failed + r["failed"]
        samples.append(rss_mb(server.proc.pid))
    report["memory"] = {"task": tasks[0], "requests": served, "failed": failed, "rss_mb_after_each_tenth": samples}
    return report


def print_report(report):
    print(f"machine: {report['machine']}; load average {report['load_average_start']:.2f} at the start; "
          f"{report['wall_seconds']:.0f} s in all")
    for task, figures in report["tasks"].items():
        print(f"\n{task}: requests/s (in process: rows/s) and latency in ms, median of the repeats; in process "
              "with TensorFlow's default threads / one thread: " + ", ".join(
                  f"{c}: {figures[f'in-process 0 {c}']['rps']:.0f} / {figures[f'in-process 1 {c}']['rps']:.0f}"
                  for c in CLIENTS))
        print("| clients | in process | batching on | batching off | on / in process | on / off | "
              "p50 / p95 / p99 on | p50 / p95 / p99 off | failed | CPU ms per row: in process / on / off |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for c in CLIENTS:
            ip, on, off = (figures[f"{m} {c}"] for m in ("in-process", "on", "off"))
            print(f"| {c} | {ip['rps']:.0f} | {on['rps']:.0f} | {off['rps']:.0f} | {on['rps'] / ip['rps']:.3f} | "
                  f"{on['rps'] / off['rps']:.3f} | {on['p50']:.1f} / {on['p95']:.1f} / {on['p99']:.1f} | "
                  f"{off['p50']:.1f} / {off['p95']:.1f} / {off['p99']:.1f} | {on['failed'] + off['failed']} | "
                  f"{ip['cpu_ms']:.3f} / {on['cpu_ms']:.3f} / {off['cpu_ms']:.3f} |")
        if "against 64" in figures:
            print("against the other checkout's server (batching on), requests/s this / other, median of the "
                  "rounds' ratios: " + ", ".join(
                      f"{c} clients {figures[f'against {c}']['rps']:.0f} -> {figures[f'on {c}']['rps']:.0f}, "
                      f"{figures[f'against {c}']['on / against']:.3f}x (p99 {figures[f'against {c}']['p99']:.1f} -> "
                      f"{figures[f'on {c}']['p99']:.1f} ms)" for c in CLIENTS))
        for fmt in report.get("formats", []):
            print(f"{fmt} export ({report['quantize']}) served beside the SavedModel (both batching on), requests/s "
                  "SavedModel -> " + fmt + ", the median of the rounds' ratios: " + ", ".join(
                      f"{c} clients {figures[f'on {c}']['rps']:.0f} -> {figures[f'{fmt} {c}']['rps']:.0f}, "
                      f"{figures[f'{fmt} {c}'][f'{fmt} / on']:.3f}x (p99 {figures[f'on {c}']['p99']:.1f} -> "
                      f"{figures[f'{fmt} {c}']['p99']:.1f} ms; failed {figures[f'{fmt} {c}']['failed']})"
                      for c in CLIENTS))
    mem = report["memory"]
    if not mem["rss_mb_after_each_tenth"]:
        return
    first, last = mem["rss_mb_after_each_tenth"][0], mem["rss_mb_after_each_tenth"][-1]
    print(f"\nmemory ({mem['task']}, batching on, {mem['requests']} requests at 64 clients): VmRSS after each "
          f"tenth {', '.join(f'{x:.0f}' for x in mem['rss_mb_after_each_tenth'])} MB; last / first "
          f"{last / first:.3f}; failed {mem['failed']}")
    s = report["tasks"].get("sentiment")
    if s:
        ratio, p99 = s["on 64"]["rps"] / s["in-process 64"]["rps"], s["on 64"]["p99"]
        failed = sum(f["failed"] for f in s.values()) + (mem["failed"] if mem["task"] == "sentiment" else 0)
        print(f"targets (sentiment, 64 clients, batching on): throughput {ratio:.3f} of in process (>= 0.70: "
              f"{'met' if ratio >= 0.7 else 'NOT met'}); p99 {p99:.1f} ms "
              f"(<= 50: {'met' if p99 <= 50 else 'NOT met'}); "
              f"failed requests {failed}; memory last/first {last / first:.3f} "
              f"(within 10%: {'met' if abs(last / first - 1) <= 0.1 else 'NOT met'})")


if __name__ == "__main__":
    main()
