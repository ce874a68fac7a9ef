"""Hypothesis over the REST routes of ``seqapps serve``: any body, header or size gets one JSON answer
(200, or a 4xx with ``error``) and the server keeps serving; no request within the bounds (lowered
with ``--bound`` so that the test is fast) raises the server's peak memory by more than a bound."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT

pytestmark = pytest.mark.slow

BOUNDS = {"rows": 16, "text_bytes": 2000, "call_text_bytes": 8000, "padded_text_bytes": 16000}
GROWTH_MB = 64  # at these bounds a request costs a few MB; the unbounded server took hundreds per 100 KB


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_runs):
    from test_server import free_port

    root = tmp_path_factory.mktemp("fuzz")
    for name in ("sentiment", "forecasting"):
        tiny_runs.run(name).export(root / "models" / name)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    flags = [a for k, v in BOUNDS.items() for a in ("--bound", f"{k}={v}")]
    proc = subprocess.Popen([sys.executable, "-m", "seqapps", "serve", str(root / "models"), "--port", str(port),
                             "--poll-seconds", "0", "--max-body-mb", "0.2", *flags],
                            env=env, stdout=(root / "server.log").open("w"), stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            if request(port, "GET", "/v1/models/sentiment")[0] == 200:
                break
        except OSError:
            time.sleep(0.25)
    else:
        proc.kill()
        pytest.fail("the server did not start")
    yield {"port": port, "pid": proc.pid}
    proc.terminate()
    proc.wait(30)


def request(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def kb(pid, key):
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1])


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                                        max_size=4), max_leaves=20)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={"instances": json_values, "inputs": json_values,
                                        "signature_name": st.sampled_from(["serving_default", "nope", 3])})
    .map(lambda v: json.dumps(v).encode()),
    st.integers(0, 400_000).map(lambda n: json.dumps({"instances": ["a" * n]}).encode()),
)
# Content-Length is the body's (http.client's own): a length longer than the body would only wait for the rest
headers = st.dictionaries(st.sampled_from(["Content-Type", "Accept", "Expect", "X-Junk"]),
                          st.sampled_from(["application/json", "text/plain", "0", "-1", "abc", "\u00e9t\u00e9",
                                           "100-continue", ""]), max_size=2)
paths = st.sampled_from(["/v1/models/sentiment:predict", "/v1/models/forecasting:predict", "/v1/models/nope:predict",
                         "/v1/models/sentiment/versions/1:predict", "/v1/models/sentiment:classify",
                         "/v1/models/sentiment/metadata", "/v1/models/..%2f:predict", "/v1/x"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(path=paths, body=bodies, head=headers, method=st.sampled_from(["POST", "GET", "PUT"]))
def test_any_request_gets_one_json_answer_and_the_server_keeps_serving(server, path, body, head, method):
    try:
        status, answer = request(server["port"], method, path, body, head)
    except (http.client.HTTPException, ConnectionError):
        status, answer = None, b""  # a malformed exchange the HTTP layer closed: allowed, if the server lives on
    if status is not None:
        assert status == 200 or 400 <= status < 500, (status, answer[:300])
        if status != 200:
            assert set(json.loads(answer)) == {"error"}
    assert request(server["port"], "GET", "/v1/models/sentiment")[0] == 200


texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=BOUNDS["text_bytes"] // 4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(batch=st.lists(texts, min_size=1, max_size=BOUNDS["rows"]), long_word=st.integers(0, BOUNDS["text_bytes"]),
       signature=st.sampled_from(["serving_default", "self_attention"]))
def test_no_request_within_the_bounds_raises_memory_beyond_the_bound(server, batch, long_word, signature):
    batch = batch + ["w" * long_word] if len(batch) < BOUNDS["rows"] else batch
    sizes = [len(t.encode()) for t in batch]
    within = sum(sizes) <= BOUNDS["call_text_bytes"] and len(batch) * max(sizes) <= BOUNDS["padded_text_bytes"]
    body = json.dumps({"signature_name": signature, "instances": batch}).encode()
    pid = server["pid"]
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts again from here
    before = kb(pid, "VmRSS")
    status, answer = request(server["port"], "POST", "/v1/models/sentiment:predict", body,
                             {"Content-Type": "application/json"})
    growth = (kb(pid, "VmHWM") - before) / 1024
    if within:
        assert status == 200, answer[:300]
    else:
        assert status == 400 and json.loads(answer)["error"].startswith("invalid input: "), answer[:300]
    assert growth <= GROWTH_MB, f"+{growth:.0f} MB for {len(batch)} texts of at most {max(sizes)} bytes"
