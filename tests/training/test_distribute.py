"""Multi-worker training for real: two worker processes on loopback train one model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # every test here trains several processes


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(run_dir: Path, ports: list[int], tmp: Path) -> list[subprocess.Popen]:
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(len(ports)):
        scratch = tmp / f"tmp-{index}"
        scratch.mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        args = [sys.executable, "-m", "seqapps", "train", "sentiment", "--data", "demo", "--strategy", "multiworker",
                "--run-dir", str(run_dir), "--epochs", "3", "--set", "model.units=8", "--set", "model.subwords=false",
                "--set", "train.steps_per_epoch=12", "--set", "train.backup_every=4", "--set", "train.patience=0"]
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True))
    return procs


def backed_up_epoch(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return -1


def test_two_workers_train_one_model_only_the_chief_writes_and_a_killed_worker_resumes(tmp_path):
    run_dir = tmp_path / "run"
    procs = start_workers(run_dir, free_ports(2), tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and backed_up_epoch(run_dir) < 1 and all(p.poll() is None for p in procs):
        time.sleep(0.1)
    assert backed_up_epoch(run_dir) >= 1, [p.communicate()[1][-1500:] for p in procs]
    procs[1].send_signal(signal.SIGKILL)  # a worker dies mid-run: the chief cannot go on alone
    procs[1].wait()
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    assert not (run_dir / "metrics.json").exists()
    left = set((tmp_path / "tmp-1").glob("seqapps-worker-*"))  # what the killed worker could not remove

    procs = start_workers(run_dir, free_ports(2), tmp_path)  # both started again: the run resumes
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-1500:] for e in errors]
    assert "resuming the interrupted run" in errors[0] and "after epoch" in errors[0], errors[0][-1500:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["replicas"] == 2  # one model over both workers
    epochs = [int(line.split(",")[0]) for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1, 2]  # one row per epoch, none repeated after the resume
    assert (run_dir / "metrics.json").exists() and (run_dir / "best.keras").exists()
    # the other worker wrote its checkpoints and logs only into a temporary folder, removed at the end
    assert set((tmp_path / "tmp-1").glob("seqapps-worker-*")) == left


MIRRORED_ALL = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import seqapps
from seqapps.core import registry
plan = json.loads(sys.argv[1])
for name, run_dir in plan["tiny"].items():
    seqapps.train(name, "demo", overrides=[*registry.get(name).tiny_overrides, "train.steps_per_epoch=2"],
                  strategy="mirrored", run_dir=run_dir, verbose=0, evaluate=False)
run = seqapps.train("sentiment", "demo", epochs=1, strategy="mirrored", run_dir=plan["defaults"], verbose=0,
                    overrides=["train.steps_per_epoch=3"])  # the task defaults, subword vectors included
print(json.dumps({"accuracy": run.metrics["val"]["accuracy"]}))
"""


def test_every_task_trains_mirrored_over_two_devices_and_sentiment_with_its_defaults(tmp_path):
    from seqapps.core import registry

    plan = {"tiny": {name: str(tmp_path / name) for name in registry.names()}, "defaults": str(tmp_path / "defaults")}
    proc = subprocess.run([sys.executable, "-c", MIRRORED_ALL, json.dumps(plan)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for run_dir in [*plan["tiny"].values(), plan["defaults"]]:
        info = json.loads((Path(run_dir) / "run.json").read_text())
        assert info["replicas"] == 2 and (Path(run_dir) / "best.keras").exists(), run_dir
    cfg = json.loads((Path(plan["defaults"]) / "config.json").read_text())
    assert cfg["model"]["subwords"] is True and cfg["train"]["strategy"] == "mirrored"
    assert 0.0 <= json.loads(proc.stdout.strip().splitlines()[-1])["accuracy"] <= 1.0


JAX_PARALLEL = """
import json, sys, keras, jax
import seqapps
from seqapps.core import registry
assert keras.backend.backend() == "jax" and len(jax.devices()) == 2
run = seqapps.train("sentiment", "demo", overrides=[*registry.get("sentiment").tiny_overrides,
                    "train.steps_per_epoch=2"], run_dir=sys.argv[1], verbose=0, evaluate=False, backend="jax")
print(json.dumps({"distribution": repr(keras.distribution.distribution())}))
"""


def test_jax_trains_data_parallel_over_the_local_devices(tmp_path):
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        import pytest

        pytest.skip("jax is not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", JAX_PARALLEL, str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["replicas"] == 2
    assert json.loads(proc.stdout.strip().splitlines()[-1])["distribution"] == "None"  # not left set afterwards


#: runs seqapps' command line, logging the name of every .npz file the process opens
LOGGING_SHARDS = """
import os, runpy, sys
log = open(os.environ["SHARD_LOG"], "a")
def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, os.PathLike)) and os.fspath(args[0]).endswith(".npz"):
        log.write(os.path.basename(os.fspath(args[0])) + "\\n")
        log.flush()
sys.addaudithook(hook)
sys.argv = ["seqapps", *sys.argv[1:]]
runpy.run_module("seqapps", run_name="__main__")
"""


def test_two_workers_read_disjoint_halves_of_a_prepared_folder(tmp_path):
    """A prepared folder trained by two workers on loopback: each opens only its own training shards,
    the two halves together are every shard, and one model trains over both."""
    import seqapps

    folder = seqapps.prepare("sentiment", "demo", tmp_path / "prepared", backend="tensorflow", shard_mb=0.0005,
                             overrides=["model.units=8", "model.subwords=false", "train.epochs=2",
                                        "train.patience=0"])
    info = json.loads((folder / "prepared.json").read_text())
    assert all(len(shards) >= 4 for shards in info["shards"])
    script = tmp_path / "logging_shards.py"
    script.write_text(LOGGING_SHARDS)
    ports, run_dir = free_ports(2), tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SHARD_LOG": str(tmp_path / f"opened-{index}.txt"),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, str(script), "train", "sentiment", "--data", str(folder),
                                       "--strategy", "multiworker", "--run-dir", str(run_dir), "--no-eval"],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-1500:] for e in errors]
    opened = [set((tmp_path / f"opened-{i}.txt").read_text().split()) for i in range(2)]
    training = [{s["file"] for shards in info["shards"] for s in shards[w::2]} for w in range(2)]
    for worker in range(2):
        assert opened[worker] - {s["file"] for s in info["val_shards"]} == training[worker]
    assert not training[0] & training[1]
    assert training[0] | training[1] == {s["file"] for shards in info["shards"] for s in shards}
    assert json.loads((run_dir / "run.json").read_text())["replicas"] == 2
    epochs = [int(line.split(",")[0]) for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1] and (run_dir / "best.keras").exists()


def test_a_worker_whose_peer_never_starts_stops_with_one_line_and_obeys_sigterm(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}
    args = [sys.executable, "-m", "seqapps", "train", "sentiment", "--data", "demo", "--strategy", "multiworker",
            "--run-dir", str(tmp_path / "run")]
    started = time.time()
    proc = subprocess.run([*args, "--set", "train.worker_timeout=3"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert f"127.0.0.1:{ports[1]} of TF_CONFIG did not start within 3 s" in lines[0]
    assert time.time() - started < 90 and not (tmp_path / "run").exists()

    waiting = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # until it listens on its own address, waiting for the other worker
        try:
            socket.create_connection(("127.0.0.1", ports[0]), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    waiting.send_signal(signal.SIGTERM)
    assert waiting.wait(timeout=20) != 0  # stopped at once, not after train.worker_timeout (300 s)
