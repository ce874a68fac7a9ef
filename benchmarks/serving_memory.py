"""The server's memory under the largest requests its bounds allow: every signature of every task.

    python benchmarks/serving_memory.py                    # trains demo runs (1 epoch each) and exports them
    python benchmarks/serving_memory.py --exports DIR      # or serves the exports in DIR
    python benchmarks/serving_memory.py --exports DIR --only captioning,pos

Starts ``python -m seqapps serve`` on each export in turn (a server of its own per model) and, per
signature, sends each of its
worst-case requests within the bounds the export carries (``metadata.json``, ``bounds``;
:mod:`seqapps.core.bounds`): the longest text, the most texts, one word as long as a text,
the most characters of char_lm's ``states`` and ``score``, the most rows and frames, images
and GIFs as large as decoding allows. Each is sent once to warm the signature up, then again
with the server's peak resident memory reset (``/proc/PID/clear_refs``): its growth is the
peak during the request less the memory before it. Then 64 copies of the model's costliest
request (over all its signatures) are sent at once, and the growth measured the same way. Every request
must be answered 200. Targets: <= 256 MB for one request, <= 2 GB for 64 at once.
Prints one line per signature and a JSON summary (``--json FILE`` writes it).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BODY_BYTES = 9_500_000  # a request body within serve's default --max-body-mb (10)
TASKS = ("sentiment", "pos", "translation", "char_lm", "captioning", "forecasting", "video_frames", "word_vectors")


def kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def post(url: str, body: bytes, timeout: float = 900) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read(2000).decode(errors="replace")


# -- the worst-case requests ---------------------------------------------------------------------------
def words(n: int) -> str:
    """``n`` bytes of short words."""
    return ("lorem ipsum dolor sit amet " * (n // 27 + 1))[:n]


def text_cases(b: dict) -> list[tuple[str, list[str]]]:
    """Texts at the text bounds: one longest, one word as long, the most longest, the most rows."""
    longest, per_call = b["text_bytes"], b["call_text_bytes"]
    many = min(per_call // longest, b["padded_text_bytes"] // longest, b["rows"])
    rows = min(b["rows"], per_call // max(1, b["padded_text_bytes"] // b["rows"]))
    short = min(per_call // rows, b["padded_text_bytes"] // rows)
    most = b["rows"]  # every row the call takes, as long as the call's bytes allow
    tiny = min(per_call // most, b["padded_text_bytes"] // most)
    return [(f"1 text x {longest} B", [words(longest)]), (f"1 word x {longest} B", ["w" * longest]),
            (f"{many} texts x {longest} B", [words(longest)] * many), (f"{rows} texts x {short} B", [words(short)] * rows),
            (f"{most} texts x {tiny} B", [words(tiny)] * most)]


def image_bytes(kind: str, side: int, frames: int = 1) -> bytes:
    import numpy as np
    from PIL import Image

    images = [Image.fromarray(np.full((side, side, 3), 30 * i % 255, np.uint8)) for i in range(frames)]
    buf = io.BytesIO()
    if kind == "GIF":
        images[0].save(buf, "GIF", save_all=frames > 1, append_images=images[1:], duration=40)
    else:
        images[0].save(buf, kind)
    return buf.getvalue()


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def cases(meta: dict, sig: str, inputs: dict, url: str) -> list[tuple[str, dict]]:
    """(label, request body) of each worst-case request of one signature."""
    b = meta["bounds"]
    task = meta["task"]
    names = set(inputs)
    if task == "char_lm" and sig in ("states", "score"):
        # the most characters the bound allows, as the refusal of one text too long says
        status, text = post(url, json.dumps({"signature_name": sig, "inputs": {"text": ["a" * b["text_bytes"]]}}).encode())
        most = int(re.search(r"one text of at most (\d+) characters", text).group(1)) if status == 400 else b["text_bytes"]
        most = min(most, b["text_bytes"])
        return [(f"1 text x {most} chars", {"inputs": {"text": [words(most)]}}),
                (f"2 texts x {most // 2} chars", {"inputs": {"text": [words(most // 2 - 1)] * 2}})]
    if task == "char_lm":
        common = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 1}
        rows = b["generate_chars"] // 20000
        return [(f"1 prime x {b['text_bytes']} B, 20000 chars",
                 {"inputs": {"prime": [words(b["text_bytes"])], "length": 20000, **common}}),
                (f"{rows} primes, 20000 chars each", {"inputs": {"prime": ["the "] * rows, "length": 20000, **common}})]
    if "tag_tokens" in b and names in ({"text"}, {"tokens"}):  # pos: bounded by its tokens, one letter each
        most = b["tag_tokens"]
        found = [(f"1 text x {most} tokens", 1, most), (f"16 texts x {most // 16} tokens", 16, most // 16),
                 (f"{min(b['rows'], most)} texts x {most // min(b['rows'], most)} tokens", min(b["rows"], most),
                  most // min(b["rows"], most))]
        if names == {"text"}:
            return [(label, {"inputs": {"text": [" ".join(["a"] * n)] * rows}}) for label, rows, n in found]
        return [(label.replace("text", "token row"), {"inputs": {"tokens": [["a"] * n] * rows}}) for label, rows, n in found]
    if names == {"text"} or names >= {"text", "beam_width"}:
        extra = {}
        if "beam_width" in names:
            extra["beam_width"] = 64 if sig == "translate" else 1
        if "length_penalty" in names:
            extra["length_penalty"] = 0.6
        found = text_cases(b)
        if "beam_width" in names:  # beam search multiplies rows by the beam
            found = found[:3] + [(f"{min(64, b['rows'])} texts x 200 B", [words(200)] * min(64, b["rows"]))]
        return [(label + (f", beam {extra['beam_width']}" if "beam_width" in extra else ""),
                 {"inputs": {"text": texts, **extra}}) for label, texts in found]
    if names and names <= {"words", "k", "a", "b", "c"}:  # word_vectors: every string input a text at the bounds
        strings = sorted(names - {"k"})
        extra = {"k": 1000} if "k" in names else {}
        # the call's text bounds hold its string inputs together (analogy's a, b and c): a third each
        share = {**b, **{k: b[k] // len(strings) for k in ("call_text_bytes", "padded_text_bytes")}}
        return [(label, {"inputs": {**{n: texts for n in strings}, **extra}}) for label, texts in text_cases(share)]
    if names == {"tokens"}:
        out = []
        for label, texts in text_cases(b):
            rows = [t.split(" ") if " " in t else [t] for t in texts]
            width = max(len(r) for r in rows)
            out.append((label.replace("text", "token row"), {"inputs": {"tokens": [r + [""] * (width - len(r)) for r in rows]}}))
        return out
    if names == {"image"}:
        side = int(b["image_pixels"] ** 0.5)
        png, gif = image_bytes("PNG", side), image_bytes("GIF", side, 8)
        return [(f"{b['image_rows']} PNGs {side}x{side}", {"inputs": {"image": [b64(png)] * b["image_rows"]}}),
                (f"{b['image_rows']} GIFs {side}x{side} x 8 frames", {"inputs": {"image": [b64(gif)] * b["image_rows"]}})]
    if names == {"frames"}:
        side = int(b["image_pixels"] ** 0.5)
        png = image_bytes("PNG", side)
        length = meta["max_length"] if "max_length" in meta else meta["config"]["data"].get("max_length", 16)
        fit = int(BODY_BYTES // (len(png) * 4 / 3 + 16))  # frames a body within serve's default limit holds
        time_ = min(length, b["frames"], fit)
        rows = max(1, min(b["frames"], fit) // time_)
        return [(f"{rows} videos x {time_} PNG frames {side}x{side}", {"inputs": {"frames": [[b64(png)] * time_] * rows}})]
    if names == {"video"}:
        side = int(b["image_pixels"] ** 0.5)
        frames = max(1, b["video_pixels"] // (side * side))
        small = int((b["video_pixels"] // 64) ** 0.5)
        return [(f"{b['image_rows']} GIFs {side}x{side} x {frames} frames",
                 {"inputs": {"video": [b64(image_bytes("GIF", side, frames))] * b["image_rows"]}}),
                (f"{b['image_rows']} GIFs {small}x{small} x 64 frames",
                 {"inputs": {"video": [b64(image_bytes("GIF", small, 64))] * b["image_rows"]}})]
    if names == {"window"}:
        shape = inputs["window"]["shape"]
        window, features = shape[1], shape[2]
        return [(f"{b['rows']} windows", {"inputs": {"window": [[[1.0] * features] * window] * b["rows"]}})]
    raise SystemExit(f"no worst case known for {task} {sig} {sorted(names)}")


# -- the server ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, log: Path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "seqapps", "serve", str(folder), "--port", str(port),
                             "--poll-seconds", "0"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/", timeout=2):
                return proc, base
        except OSError:
            time.sleep(0.25)
    raise SystemExit("the server did not start")


def growth_mb(pid: int, send) -> tuple[float, object]:
    """(peak memory growth in MB while ``send()`` runs, its result)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current size
    before = kb(pid, "VmRSS")
    result = send()
    return (kb(pid, "VmHWM") - before) / 1024, result


def train_exports(work: Path) -> Path:
    import seqapps

    exports = work / "exports"
    for task in TASKS:
        if (exports / task / "saved_model.pb").is_file():
            continue
        print(f"training {task} on demo (1 epoch)", flush=True)
        run = seqapps.train(task, "demo", epochs=1, run_dir=work / "runs" / task, verbose=0)
        run.export(exports / task)
    return exports


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exports", help="a folder of exports (default: demo runs trained into --work)")
    p.add_argument("--work", default=None, help="where demo runs and exports are written (default: a temporary folder)")
    p.add_argument("--concurrent", type=int, default=64, help="requests sent at once (default: 64)")
    p.add_argument("--only", default="", help="comma-separated model folders to measure (default: all)")
    p.add_argument("--json", help="write the summary here")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="serving-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    exports = Path(args.exports) if args.exports else train_exports(work)
    rows, failed = [], 0
    only = {name for name in args.only.split(",") if name}
    for task_dir in sorted(d for d in exports.iterdir() if (d / "metadata.json").is_file()):
        if only and task_dir.name not in only:
            continue
        meta = json.loads((task_dir / "metadata.json").read_text())
        if "bounds" not in meta:
            print(f"{task_dir.name}: no bounds in metadata.json (exported before they were written); skipped")
            continue
        # a server of its own per model: memory a process keeps after one model's largest calls would
        # hide the next model's growth
        proc, base = start_server(task_dir, work / f"server-{task_dir.name}.log")
        try:
            url = f"{base}/v1/models/{task_dir.name}:predict"
            costliest = None  # (growth, signature, label, body, entry) of the model's costliest request
            for sig, spec in meta["signatures"].items():
                single = []
                entry = {"model": task_dir.name, "task": meta["task"], "signature": sig, "single": single}
                rows.append(entry)
                for label, body in cases(meta, sig, spec["inputs"], url):
                    data = json.dumps({"signature_name": sig, **body}).encode()
                    status, text = post(url, data)  # warm-up (and the first failure, if any)
                    start = time.perf_counter()
                    mb, (status, text) = growth_mb(proc.pid, lambda: post(url, data))
                    seconds = time.perf_counter() - start
                    ok = status == 200
                    failed += not ok
                    single.append({"request": label, "body_bytes": len(data), "growth_mb": round(mb, 1),
                                   "seconds": round(seconds, 2), "status": status,
                                   **({} if ok else {"answer": text[:300]})})
                    print(f"{task_dir.name:13s} {sig:16s} {label:42s} {len(data) / 1e6:6.2f} MB body  "
                          f"+{mb:7.1f} MB  {seconds:6.2f} s  {status}", flush=True)
                    if ok and (costliest is None or mb > costliest[0]):
                        costliest = (mb, sig, label, data, entry)
            if costliest is not None and args.concurrent > 1:
                # the model's costliest request, sent ``--concurrent`` times at once: the server merges them
                # within the bounds and runs merged calls side by side, which is what 64 clients cost
                n, (_, sig, label, data, entry) = args.concurrent, costliest

                def burst():
                    with ThreadPoolExecutor(n) as pool:
                        return list(pool.map(lambda _: post(url, data)[0], range(n)))
                start = time.perf_counter()
                mb, statuses = growth_mb(proc.pid, burst)
                bad = sum(s != 200 for s in statuses)
                failed += bad
                entry["concurrent"] = {"requests": n, "request": label, "growth_mb": round(mb, 1),
                                       "seconds": round(time.perf_counter() - start, 2), "failed": bad}
                print(f"{task_dir.name:13s} {sig:16s} {n} x {label:37s} at once            "
                      f"+{mb:7.1f} MB  {entry['concurrent']['seconds']:6.2f} s  failed {bad}", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    single_max = max((c["growth_mb"] for r in rows for c in r["single"]), default=0.0)
    conc_max = max((r["concurrent"]["growth_mb"] for r in rows if "concurrent" in r), default=0.0)
    summary = {"signatures": rows, "max_single_growth_mb": single_max, "max_concurrent_growth_mb": conc_max,
               "failed_requests": failed, "targets": {"single_mb": 256, "concurrent_mb": 2048}}
    print(f"largest growth: one request +{single_max:.1f} MB (target 256), {args.concurrent} at once "
          f"+{conc_max:.1f} MB (target 2048); failed well-formed requests: {failed}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if failed == 0 and single_max <= 256 and conc_max <= 2048 else 1


if __name__ == "__main__":
    sys.exit(main())
