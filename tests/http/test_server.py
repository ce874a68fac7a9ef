"""``python -m seqapps serve``: TF Serving's REST API over tiny exports, in a subprocess on loopback.

One server (module-scoped) over tiny sentiment and forecasting exports answers every test:
both request formats against the export called directly, the API document's forms, each bad
request (after which the server still answers), batching that gives each client its own rows,
a replaced export picked up under load, and the model pages in headless Chromium.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import ROOT

SENTENCES = ["a gripping , beautiful film", "dull and far too long", "the acting was brilliant", "what a mess",
             "i loved every minute", "boring", "a warm and funny story", "the plot makes no sense",
             "superb", "awful script , awful acting", "it was fine", "charming but slight"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, body=None, method=None, raw: bytes | None = None, timeout=60):
    """(status, parsed JSON or text) of one request."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_runs):
    """Tiny sentiment and forecasting exports in one served folder, and sentiment's run (to re-export)."""
    root = tmp_path_factory.mktemp("serve")
    runs = {}
    for name in ("sentiment", "forecasting"):
        runs[name] = tiny_runs.run(name)  # the tasks' tiny runs (Task.tiny_overrides), shared
        runs[name].export(root / "models" / name)
    (root / "secret.txt").write_text("not to be served")
    return {"root": root, "models": root / "models", "runs": runs}


@pytest.fixture(scope="module")
def server(exports):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(exports["root"] / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "seqapps", "serve", str(exports["models"]), "--port", str(port),
                             "--poll-seconds", "0.25", "--batch-timeout-ms", "20", "--max-body-mb", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if http(f"{base}/v1/models/sentiment", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        assert proc.poll() is None, (exports["root"] / "server.log").read_text()[-3000:]
        time.sleep(0.1)
    else:
        pytest.fail("the server did not start in 60 s:\n" + (exports["root"] / "server.log").read_text()[-3000:])
    yield {"url": base, "port": port, "proc": proc, "log": exports["root"] / "server.log"}
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def direct(exports):
    """The exports called in this process with TensorFlow: the answers the server must give."""
    import tensorflow as tf

    loaded = {n: tf.saved_model.load(str(exports["models"] / n)) for n in ("sentiment", "forecasting")}

    def call(name, **inputs):
        out = loaded[name].signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in out.items()}
    return call


def alive(server):
    """The server still answers a good request."""
    status, answer = http(f"{server['url']}/v1/models/sentiment:predict", {"instances": ["still here"]})
    assert status == 200 and answer["predictions"][0]["label"], answer
    assert server["proc"].poll() is None


# -- status, metadata, predict -----------------------------------------------------------------
@pytest.mark.slow
def test_status_and_metadata(server):
    status, answer = http(f"{server['url']}/v1/models/sentiment")
    assert status == 200
    [entry] = answer["model_version_status"]
    assert entry["state"] == "AVAILABLE" and entry["status"]["error_code"] == "OK" and int(entry["version"]) > 0
    assert http(f"{server['url']}/v1/models/sentiment/versions/{entry['version']}")[0] == 200
    status, answer = http(f"{server['url']}/v1/models/sentiment/versions/{int(entry['version']) + 1}")
    assert status == 404 and "no version" in answer["error"]

    status, meta = http(f"{server['url']}/v1/models/sentiment/metadata")
    assert status == 200 and meta["model_spec"] == {"name": "sentiment", "signature_name": "",
                                                    "version": entry["version"]}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["text"]["dtype"] == "DT_STRING"
    assert [d["size"] for d in sig["inputs"]["text"]["tensor_shape"]["dim"]] == ["-1"]
    assert sig["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["outputs"]["probabilities"]["tensor_shape"]["dim"]] == ["-1", "2"]
    assert meta["metadata"]["seqapps"]["task"] == "sentiment"
    assert meta["metadata"]["seqapps"]["labels"] == ["negative", "positive"]
    window = meta["metadata"]["signature_def"] and http(f"{server['url']}/v1/models/forecasting/metadata")[1]
    dims = window["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["window"]
    assert [d["size"] for d in dims["tensor_shape"]["dim"]] == ["-1", "12", "4"] and dims["dtype"] == "DT_FLOAT"


@pytest.mark.slow
def test_row_and_columnar_formats_answer_as_the_export(server, direct):
    texts = SENTENCES[:3]
    want = direct("sentiment", text=texts)
    status, rows = http(f"{server['url']}/v1/models/sentiment:predict",
                        {"signature_name": "serving_default", "instances": texts})
    assert status == 200, rows
    assert [p["label"] for p in rows["predictions"]] == [b.decode() for b in want["label"]]
    np.testing.assert_allclose([p["probabilities"] for p in rows["predictions"]], want["probabilities"], rtol=1e-5)

    status, cols = http(f"{server['url']}/v1/models/sentiment:predict", {"inputs": {"text": texts}})
    assert status == 200 and set(cols) == {"outputs"}
    assert cols["outputs"]["label"] == [b.decode() for b in want["label"]]
    np.testing.assert_allclose(cols["outputs"]["probabilities"], want["probabilities"], rtol=1e-5)
    # one input: the columnar value may be given bare, instances may name it
    assert http(f"{server['url']}/v1/models/sentiment:predict", {"inputs": texts})[1] == cols
    assert http(f"{server['url']}/v1/models/sentiment:predict", {"instances": [{"text": t} for t in texts]})[1] == rows


@pytest.mark.slow
def test_api_document_forms(server, direct):
    """The forms of TF Serving's REST document: a bare list of rows for a one-output model,
    nested lists for a tensor input, and binary values as {"b64": ...}."""
    rng = np.random.default_rng(0)
    windows = rng.normal(50, 10, size=(2, 12, 4)).astype("float32")
    want = direct("forecasting", window=windows)["forecast"]
    status, answer = http(f"{server['url']}/v1/models/forecasting:predict", {"instances": windows.tolist()})
    assert status == 200 and set(answer) == {"predictions"}
    np.testing.assert_allclose(answer["predictions"], want, rtol=1e-5)  # one output: each prediction is its value
    status, answer = http(f"{server['url']}/v1/models/forecasting:predict", {"inputs": {"window": windows.tolist()}})
    np.testing.assert_allclose(answer["outputs"], want, rtol=1e-5)

    b64 = [{"b64": base64.b64encode(t.encode()).decode()} for t in SENTENCES[:2]]
    assert http(f"{server['url']}/v1/models/sentiment:predict", {"instances": b64})[1] == \
        http(f"{server['url']}/v1/models/sentiment:predict", {"instances": SENTENCES[:2]})[1]


# -- bad input ------------------------------------------------------------------------------------
PREDICT = "/v1/models/sentiment:predict"
BAD = [
    ("malformed JSON", PREDICT, b'{"instances": ["a"', 400, "not valid JSON"),
    ("not UTF-8", PREDICT, b'{"instances": ["caf\xe9"]}', 400, "not valid UTF-8"),
    ("both formats", PREDICT, {"instances": ["a"], "inputs": ["a"]}, 400, "not both"),
    ("neither format", PREDICT, {"signature_name": "serving_default"}, 400, "exactly one of"),
    ("empty instances", PREDICT, {"instances": []}, 400, "empty"),
    ("misspelled input", PREDICT, {"instances": [{"txt": "a"}]}, 400, "no input 'txt'"),
    ("missing input", "/v1/models/forecasting:predict", {"instances": [{}]}, 400, "needs input 'window'"),
    ("wrong dtype", PREDICT, {"instances": [3]}, 400, "holds strings"),
    ("wrong dtype, numbers", "/v1/models/forecasting:predict", {"inputs": [[["x"] * 4] * 12]}, 400,
     "holds float32"),
    ("wrong rank", PREDICT, {"inputs": [["a", "b"]]}, 400, "rank 1"),
    ("wrong size", "/v1/models/forecasting:predict", {"inputs": [[[1.0] * 3] * 12]}, 400, "expected 4"),
    ("ragged", "/v1/models/forecasting:predict", {"inputs": [[[1.0] * 4] * 11 + [[1.0] * 3]]}, 400, "regular"),
    ("refused by the graph", "/v1/models/forecasting:predict", b'{"inputs": [[' + b", ".join([b"[1.0, 1.0, 1.0, 1.0]"] * 11
                                                                                  + [b"[1.0, NaN, 1.0, 1.0]"]) + b"]]}",
     400, "invalid input: the window holds NaN or inf"),
    ("invalid base64", PREDICT, {"instances": [{"b64": "not base64!"}]}, 400, "invalid base64"),
    ("unpaired surrogate", PREDICT, b'{"instances": ["\\ud800"]}', 400, "not valid Unicode"),
    ("nested too deeply", PREDICT, b'{"instances": ' + b"[" * 100000 + b"]" * 100000 + b"}", 400, "deep"),
    ("unknown signature", PREDICT, {"signature_name": "serving_defualt", "instances": ["a"]}, 400,
     "no signature 'serving_defualt'"),
    ("unknown model", "/v1/models/sentimentt:predict", {"instances": ["a"]}, 404, "no model named"),
    ("name with ..", "/v1/models/a..b:predict", {"instances": ["a"]}, 400, "not a model name"),
    ("name with encoded /", "/v1/models/..%2Fsecret.txt:predict", {"instances": ["a"]}, 404, "no such endpoint"),
    ("GET on predict", PREDICT, None, 405, "answers POST"),
    ("classify", "/v1/models/sentiment:classify", {"examples": [{}]}, 400, "use :predict"),
    ("unknown label", "/v1/models/sentiment/labels/stable", None, 404, "no version label"),
]


@pytest.mark.slow
@pytest.mark.parametrize("what, path, body, status, message", BAD, ids=[b[0] for b in BAD])
def test_bad_request_is_one_clear_error(server, what, path, body, status, message):
    got, answer = http(server["url"] + path, raw=body if isinstance(body, bytes) else None,
                       body=None if isinstance(body, bytes) else body)
    assert got == status and isinstance(answer, dict) and set(answer) == {"error"}, (got, answer)
    assert message in answer["error"], answer
    alive(server)


@pytest.mark.slow
def test_body_over_the_limit(server):
    big = {"instances": ["word " * 1000] * 300}  # 1.5 MB; the server was started with --max-body-mb 1
    status, answer = http(server["url"] + PREDICT, big)
    assert status == 413 and "limit" in answer["error"]
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as s:  # far over: answered at once
        s.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        assert s.recv(65536).split(b"\r\n", 1)[0].split()[1] == b"413"
    alive(server)


@pytest.mark.slow
def test_no_path_outside_the_served_folder(server, exports):
    secret = "not to be served"
    for path in ["/static/../../secret.txt", "/static/..%2F..%2F..%2Fsecret.txt", "/static/%2e%2e/%2e%2e/secret.txt",
                 "/models/..%2F..%2Fsecret.txt", "/v1/models/..%2F..%2Fsecret.txt/metadata",
                 "/static//etc/passwd", "/v1/models/%2Fetc%2Fpasswd"]:
        with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as s:  # the path as written
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        head = reply.split(b"\r\n", 1)[0]
        assert head.split()[1][:1] == b"4", (path, head)
        assert secret.encode() not in reply and b"root:" not in reply, path
    alive(server)


@pytest.mark.slow
def test_client_that_disconnects_mid_request(server):
    for sent in (b"", b'{"instances": ["a gr'):
        with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as s:
            s.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 5000\r\n\r\n" + sent)
    with ThreadPoolExecutor(8) as pool:  # and clients that leave while their call runs
        for _ in range(8):
            pool.submit(_leave_early, server["port"])
    alive(server)


def _leave_early(port):
    body = json.dumps({"instances": SENTENCES}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


# -- batching -------------------------------------------------------------------------------------
def _counters(server):
    text = http(f"{server['url']}/monitoring/prometheus/metrics")[1]
    values = {}
    for line in text.splitlines():
        if line.startswith("seqapps_") and 'model="sentiment",signature="serving_default"' in line:
            values[line.split("{")[0]] = int(line.rsplit(" ", 1)[1])
    return values.get("seqapps_requests_total", 0), values.get("seqapps_model_calls_total", 0)


@pytest.mark.slow
def test_batching_gives_each_client_its_own_answer(server, direct):
    """48 clients at once, each with its own 1-3 sentences: the calls are shared (fewer calls
    than requests) and every client gets exactly the rows of its own sentences, in its order."""
    want = direct("sentiment", text=SENTENCES)["probabilities"]
    assert len({tuple(np.round(p, 6)) for p in want}) == len(SENTENCES), "the check needs distinct answers"
    rng = np.random.default_rng(1)
    asks = [list(rng.choice(len(SENTENCES), size=rng.integers(1, 4), replace=False)) for _ in range(48)]
    requests_before, calls_before = _counters(server)
    barrier = threading.Barrier(len(asks))

    def ask(indices):
        barrier.wait()
        return http(server["url"] + PREDICT, {"instances": [SENTENCES[i] for i in indices]})

    with ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(ask, asks))
    for indices, (status, answer) in zip(asks, answers):
        assert status == 200, answer
        np.testing.assert_allclose([p["probabilities"] for p in answer["predictions"]], want[indices], rtol=1e-5,
                                   err_msg=f"client asking for sentences {indices} got someone else's rows")
    requests, calls = _counters(server)
    assert requests - requests_before == len(asks)
    assert calls - calls_before < len(asks) / 2, "concurrent requests were not gathered into shared calls"


# -- reload ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_replaced_export_is_served_without_dropping_requests(server, exports):
    old = http(f"{server['url']}/v1/models/sentiment")[1]["model_version_status"][-1]["version"]
    stop, results = threading.Event(), []

    def hammer():
        while not stop.is_set():
            results.append(http(server["url"] + PREDICT, {"instances": SENTENCES[:4]})[0])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    exports["runs"]["sentiment"].export(exports["models"] / "sentiment")  # renamed into place, as always
    deadline, new = time.time() + 60, old
    while new == old and time.time() < deadline:
        status = http(f"{server['url']}/v1/models/sentiment")[1]["model_version_status"]
        new = [s["version"] for s in status if s["state"] == "AVAILABLE"][0]
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert int(new) > int(old), "the replaced export was not picked up within 60 s"
    assert results and set(results) == {200}, f"{results.count(200)} of {len(results)} requests answered 200"
    assert f"serving version {new}" in server["log"].read_text()


# -- the pages, in headless Chromium ------------------------------------------------------------
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class WebDriver:
    """The W3C WebDriver protocol (what selenium speaks) to Debian's chromedriver, in a few calls."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([DRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self._call("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        caps = {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                         "--disable-dev-shm-usage", "--window-size=900,700"]}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["value"]

    def do(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url):
        self.do("POST", "/url", {"url": url})

    def find(self, css, wait=20.0):
        deadline = time.time() + wait
        while True:
            try:
                return self.do("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]
            except urllib.error.HTTPError:
                if time.time() > deadline:
                    raise AssertionError(f"no element {css!r} on the page within {wait} s: "
                                         f"{self.do('GET', '/source')[:2000]}") from None
                time.sleep(0.1)

    def type(self, css, text):
        element = self.find(css)
        self.do("POST", f"/element/{element}/clear", {})
        self.do("POST", f"/element/{element}/value", {"text": text})

    def click(self, css):
        self.do("POST", f"/element/{self.find(css)}/click", {})

    def text(self, css):
        return self.do("GET", f"/element/{self.find(css)}/text")

    def close(self):
        try:
            self.do("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("the browser test needs Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver)")
    driver = WebDriver()
    yield driver
    driver.close()


@pytest.mark.browser
@pytest.mark.slow
def test_sentiment_page_in_chromium(server, browser):
    browser.open(server["url"] + "/")
    assert browser.text("#models").count("version") == 2
    browser.click("a[href='/models/sentiment']")
    assert "sentiment" in browser.text("#about")
    sentence = "i loved every minute"
    browser.type("#input", sentence)
    browser.click("#run")
    shown = browser.text("#label")
    status, answer = http(server["url"] + PREDICT, {"instances": [sentence]})
    assert shown == answer["predictions"][0]["label"]
    shown_probabilities = [float(browser.text(f".bar:nth-of-type({i + 2}) .probability")) for i in range(2)]
    np.testing.assert_allclose(shown_probabilities, answer["predictions"][0]["probabilities"], atol=6e-4)


@pytest.mark.browser
@pytest.mark.slow
def test_forecasting_page_in_chromium(server, browser):
    browser.open(server["url"] + "/models/forecasting")
    rows = [[50 + t, 10.0, 1.0, 0.0] for t in range(12)]
    browser.type("#input", "\n".join(", ".join(str(v) for v in r) for r in rows))
    browser.click("#run")
    shown = [float(v) for v in browser.text("#forecast").split(",")]
    answer = http(server["url"] + "/v1/models/forecasting:predict", {"instances": [rows]})[1]
    np.testing.assert_allclose(shown, answer["predictions"][0], atol=6e-3)
    browser.find("#plot")


def test_serve_a_missing_folder_is_one_error_line(tmp_path, capsys):
    from seqapps.cli.parser import main

    assert main(["serve", tmp_path / "nowhere"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: no such folder"]
    (tmp_path / "empty").mkdir()
    assert main(["serve", tmp_path / "empty"]) == 2
    assert "no exports found" in capsys.readouterr().err


# -- finding exports, in process ---------------------------------------------------------------------
@pytest.mark.slow
def test_store_finds_replaces_and_drops_exports(exports, tmp_path):
    from seqapps.http.models import Store, find_exports

    forecasting = exports["models"] / "forecasting"
    assert list(find_exports(forecasting)) == ["forecasting"]  # one export, served under its folder name
    root = tmp_path / "served"
    (root / "tfs" / "1").mkdir(parents=True)
    (root / "tfs" / "7").symlink_to(forecasting)  # TF Serving's layout: the highest number is served
    (root / "tfs" / "3").symlink_to(forecasting)
    (root / ".forecasting.123.abc.tmp").symlink_to(forecasting)  # an export being written: hidden
    shutil.copytree(forecasting, root / "forecasting")
    (root / "broken").mkdir()
    (root / "broken" / "saved_model.pb").write_bytes(b"not a SavedModel")
    assert {n: (p.name, v) for n, (p, v) in find_exports(root).items()} == \
        {"forecasting": ("forecasting", None), "tfs": ("7", 7), "broken": ("broken", None)}

    store = Store(root, log=lambda line: None)
    gc.unfreeze()
    try:
        store.refresh()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # what was loaded is kept out of the collector's passes (no long pauses)
        assert sorted(store.models) == ["forecasting", "tfs"] and store.models["tfs"].version == 7
        assert "broken" in store.errors  # one bad export does not stop the others
        first = store.models["forecasting"]
        store.refresh()
        assert store.models["forecasting"] is first  # unchanged: not loaded again
        assert gc.get_freeze_count() == frozen  # nor frozen again
        shutil.copytree(forecasting, root / ".new")
        shutil.rmtree(root / "forecasting")
        (root / ".new").rename(root / "forecasting")  # replaced, as export swaps it in
        store.refresh()
        assert store.models["forecasting"] is not first and store.models["forecasting"].version > first.version
        (root / "copied").mkdir()  # copied in place file by file (not swapped in): first the graph alone
        shutil.copy2(forecasting / "saved_model.pb", root / "copied" / "saved_model.pb")
        store.refresh()
        assert "copied" not in store.models and "copied" in store.errors
        shutil.copytree(forecasting, root / "copied", dirs_exist_ok=True)  # the copy ends: loaded on the next look
        store.refresh()
        assert "copied" in store.models and "copied" not in store.errors
        shutil.rmtree(root / "forecasting")
        store.refresh()
        assert "forecasting" in store.models  # absent once: perhaps mid-swap
        store.refresh()
        assert "forecasting" not in store.models and store.get("../forecasting") is None
    finally:
        gc.unfreeze()  # leave this process's collector as it was


# -- the batcher and the HTTP writes, in process --------------------------------------------------
def test_batches_run_side_by_side_one_per_thread():
    """With two model threads, a second batch starts while the first still runs: a call that
    waits for another call to start finishes only if two run at once (one at a time: timeout)."""
    import asyncio

    from seqapps.http.batching import Batching

    both = threading.Barrier(2, timeout=10)
    sizes = []

    def sig(arrays):
        sizes.append(len(arrays["x"]))
        both.wait()  # BrokenBarrierError after 10 s if the other call never starts
        return {"y": arrays["x"] * 2}

    sig.name, sig.batchable = "serving_default", True
    model = type("Model", (), {"name": "m", "batchers": {}})()

    async def main():
        with ThreadPoolExecutor(2) as pool:
            batching = Batching(pool, True, max_batch_size=2, timeout_ms=50, concurrent=2)
            batching.arriving = 1  # as if more requests were being read: the batcher gathers
            calls = asyncio.gather(*(batching.call(model, sig, {"x": np.array([i])}, 1) for i in range(4)))
            await asyncio.sleep(0.01)
            batching.arriving = 0
            return await calls

    answers = asyncio.run(main())
    assert [r["y"].tolist() for r in answers] == [[0], [2], [4], [6]]
    assert sorted(sizes) == [2, 2]  # two gathered calls of two rows, run at the same time


def test_a_response_is_one_write():
    """uvicorn writes a response's head and body apart; the server's protocol sends them as one
    write at the end of the loop turn, and what is pending still goes out before a close."""
    import asyncio

    from seqapps.http.protocol import JoinedWrites

    class Transport:
        def __init__(self):
            self.writes, self.closed = [], False

        def write(self, data):
            self.writes.append(data)

        def is_closing(self):
            return self.closed

        def close(self):
            self.closed = True

        def get_extra_info(self, name):
            return f"info:{name}"

    async def main():
        raw = Transport()
        joined = JoinedWrites(raw, asyncio.get_running_loop())
        joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
        joined.write(b'{"predictions":[1]}')
        assert raw.writes == []  # nothing sent within the turn
        await asyncio.sleep(0)
        assert raw.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"predictions":[1]}']
        joined.write(b"last")
        joined.close()
        assert raw.writes[-1] == b"last" and raw.closed
        assert joined.get_extra_info("peername") == "info:peername"  # the rest is the transport's

    asyncio.run(main())
