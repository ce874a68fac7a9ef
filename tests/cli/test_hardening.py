"""Bad input is one line, before anything is written; resume and exports are honest."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import seqapps
from conftest import ROOT
from seqapps.core.errors import DataError, ExportError


def cli(*args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "seqapps", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, input=stdin,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def one_error_line(proc, *fragments):
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- labels -------------------------------------------------------------------------------------------
def test_label_names_must_name_every_label_id(tmp_path):
    from tasks.sentiment.data import load_labelled_texts
    from tasks.sentiment.task import Sentiment

    table = tmp_path / "reviews.csv"
    table.write_text("text,label\n" + "".join(f"review number {i},{1 + i % 2}\n" for i in range(40)))
    cfg = Sentiment.config_class()
    cfg.data.source, cfg.data.label_names = str(table), ["negative", "positive"]
    with pytest.raises(DataError, match=r"reviews.csv:3: label '2' is not an id 0\.\.1 of data.label_names"):
        load_labelled_texts(cfg.data, "sentiment")
    cfg.data.label_names = ["none", "negative", "positive"]  # ids 0..2: every label named
    splits = load_labelled_texts(cfg.data, "sentiment")
    assert splits.info["labels"] == ["negative", "positive"]


# -- the command line ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("tf_config,fragment", [(None, "needs TF_CONFIG"), ("{not json", "TF_CONFIG is not valid"),
                                                ('{"cluster": {"worker": ["127.0.0.1:1"]}, '
                                                 '"task": {"type": "worker", "index": 3}}', "is not in its cluster")])
def test_multiworker_without_a_valid_tf_config_is_one_line(tmp_path, tf_config, fragment):
    env = {"TF_CONFIG": tf_config} if tf_config else {}
    if tf_config is None:
        os.environ.pop("TF_CONFIG", None)
    proc = cli("train", "sentiment", "--data", "demo", "--strategy", "multiworker", "--run-dir", tmp_path / "r",
               env=env)
    one_error_line(proc, fragment)
    assert not (tmp_path / "r").exists()


def test_data_too_small_for_the_config_fails_before_the_run_directory_is_written(tmp_path):
    with pytest.raises(DataError, match="too short|fewer than"):
        seqapps.train("char_lm", "demo", overrides=["train.batch_size=4096", "model.units=8"],
                      run_dir=tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def sentiment_export(tiny_runs):
    """Any trained sentiment run and its export: sentiment's shared tiny run."""
    return tiny_runs.run("sentiment"), tiny_runs.export("sentiment")


@pytest.mark.slow
def test_predict_reads_a_non_utf8_file_as_one_line(sentiment_export, tmp_path):
    bad = tmp_path / "reviews.txt"
    bad.write_bytes("fine\nstill fine\ncaf\xe9 au lait\n".encode("latin-1"))
    proc = cli("predict", sentiment_export[1], "--input", bad)
    one_error_line(proc, "line 3 is not UTF-8")


def test_predict_streams_long_inputs_in_chunks(tmp_path):
    from seqapps.inference.predictor import CHUNK, input_chunks

    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"line {i}\r\n" for i in range(2 * CHUNK + 5)))
    chunks = input_chunks(["first"], str(lines))
    assert next(chunks) == ["first"]
    sizes = [len(c) for c in chunks]
    assert sizes == [CHUNK, CHUNK, 5]
    assert list(input_chunks([], str(lines)))[-1][-1] == f"line {2 * CHUNK + 4}"  # no "\r" left


@pytest.mark.slow
def test_evaluate_with_labels_the_model_does_not_know_is_one_line(sentiment_export, tmp_path):
    table = tmp_path / "new.csv"
    table.write_text("text,label\nwhat a film,positive\nso dull,maybe\n" * 5)
    proc = cli("evaluate", sentiment_export[1], "--data", table, "--split", "train")
    one_error_line(proc, "maybe")


# -- exports ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_export_onto_a_regular_file_is_refused(sentiment_export, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(ExportError, match="is a file"):
        sentiment_export[0].export(target)
    assert target.read_text() == "keep me"


@pytest.mark.slow
def test_export_under_a_file_or_with_too_long_a_name_is_one_line(sentiment_export, tmp_path):
    (tmp_path / "file.txt").write_text("keep me")
    with pytest.raises(ExportError, match="file.txt is a file, so .* cannot be made"):
        sentiment_export[0].export(tmp_path / "file.txt" / "model")
    with pytest.raises(ExportError, match="bytes long; this filesystem allows 255"):
        sentiment_export[0].export(tmp_path / ("m" * 250))
    proc = cli("export", sentiment_export[0].dir, tmp_path / "file.txt" / "a" / "model")
    one_error_line(proc, "is a file")
    assert (tmp_path / "file.txt").read_text() == "keep me"


@pytest.mark.slow
def test_export_over_a_link_replaces_the_link_and_keeps_its_target(sentiment_export, tmp_path):
    import shutil

    target = tmp_path / "v1"
    shutil.copytree(sentiment_export[1], target)
    (tmp_path / "current").symlink_to(target)
    sentiment_export[0].export(tmp_path / "current")
    assert (tmp_path / "current").is_dir() and not (tmp_path / "current").is_symlink()
    assert (target / "saved_model.pb").exists()  # the link's target is left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1"]  # no hidden leftovers


@pytest.mark.slow
def test_an_export_cleans_what_killed_exports_left(sentiment_export, tmp_path):
    from seqapps.inference.folders import remove_stale

    target = tmp_path / "model"
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    stale = [tmp_path / f".model.{dead}.abc123.tmp", tmp_path / f".model.old-{dead}"]
    alive = tmp_path / f".model.{os.getpid()}.xyz.tmp"  # an export in progress in a live process
    other = tmp_path / f".modelx.{dead}.abc.tmp"  # another export's
    for folder in [*stale, alive, other]:
        folder.mkdir()
    sentiment_export[0].export(target)
    assert (target / "saved_model.pb").exists()
    assert not any(p.exists() for p in stale) and alive.exists() and other.exists()
    assert remove_stale(target) == []


# -- resume -----------------------------------------------------------------------------------------
class _Model:
    def __init__(self, initial_epoch):
        self._initial_epoch = initial_epoch


def test_resume_says_where_it_continues_and_keeps_one_history_row_per_epoch(tmp_path, capsys):
    from seqapps.training.callbacks import ResumeReport

    history = tmp_path / "history.csv"
    history.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n")  # the last backup followed epoch 1; epoch 2 runs again
    report = ResumeReport(history, tmp_path, resuming=True)
    report.set_model(_Model(2))
    report.on_train_begin()
    assert history.read_text().splitlines() == ["epoch,loss", "0,0.9", "1,0.8"]
    assert "after epoch 2" in capsys.readouterr().err
    report.set_model(_Model(None))  # killed before the first backup: everything starts again
    report.on_train_begin()
    assert history.read_text().splitlines() == ["epoch,loss"]
    assert "no backup yet; training again from epoch 1" in capsys.readouterr().err


@pytest.mark.slow
def test_diagnose_sizes_below_one_are_one_line():
    from conftest import run_cli

    for flag in ("--units", "--length"):
        proc = run_cli("diagnose", "gradients", flag, "0")
        assert proc.returncode == 2 and "expected a number >= 1" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("flag,value,fragment", [
    ("--port", "70000", "expected a port number 1-65535"), ("--port", "0", "expected a port number 1-65535"),
    ("--max-body-mb", "-1", "expected a finite number > 0"), ("--max-body-mb", "0", "expected a finite number > 0"),
    ("--batch-timeout-ms", "nan", "expected a finite number >= 0"), ("--poll-seconds", "inf", "finite"),
    ("--batch-timeout-ms", "soon", "expected a number")])
def test_serve_checks_its_options_before_it_starts(tmp_path, capsys, flag, value, fragment):
    from conftest import run_main

    code, lines = run_main(["serve", str(tmp_path), flag, value], capsys)
    assert code == 2 and len(lines) == 1 and fragment in lines[0] and flag in lines[0], lines


@pytest.mark.slow
def test_tensorflows_log_lines_reach_the_terminal_only_with_debug(tmp_path):
    """TensorFlow's C++ lines (``E0000 ... oneDNN supports DT_INT64 ...`` on CPUs without AVX-512,
    ``W0000``, ``I0000``) are hidden from a user; ``--debug`` shows them."""
    import re

    from conftest import tiny
    from seqapps.core import registry

    def tf_lines(*extra):
        env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
        sets = [a for o in tiny(registry.get("translation")) for a in ("--set", o)]
        proc = subprocess.run([sys.executable, "-m", "seqapps", "train", "translation", "--data", "demo", *sets,
                               "--epochs", "1", "--no-eval", "--run-dir", str(tmp_path / "run"), "--overwrite",
                               *extra], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**env, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stderr[-2000:]
        return [line for line in proc.stderr.splitlines() if re.match(r"[EWI]\d{4} ", line)]

    shown = tf_lines("--debug")
    if not shown:
        pytest.skip("TensorFlow logs nothing on this machine even with --debug")
    assert tf_lines() == []


# -- the Python API's arguments ------------------------------------------------------------------------
@pytest.mark.parametrize("path", [None, 123, ["runs/x"]])
def test_load_refuses_what_is_not_a_path_by_name(path):
    with pytest.raises(DataError, match=r"load\(\) takes the path of an export or run directory"):
        seqapps.load(path)


@pytest.mark.parametrize("kwargs,fragment", [({"epochs": "x"}, "epochs must be a whole number, got str 'x'"),
                                             ({"epochs": 2.5}, "epochs must be a whole number, got float 2.5"),
                                             ({"batch_size": True}, "batch_size must be a whole number")])
def test_train_refuses_arguments_of_the_wrong_type_by_name(kwargs, fragment, tmp_path):
    from seqapps.core.errors import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        seqapps.train("sentiment", "demo", run_dir=tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kwargs,fragment", [({"length": None}, "length must be a whole number, got NoneType"),
                                             ({"length": 2.7}, "length must be a whole number, got float 2.7"),
                                             ({"temperature": "hot"}, "temperature must be a number"),
                                             ({"top_k": 1.5}, "top_k must be a whole number")])
def test_generate_refuses_arguments_of_the_wrong_type_by_name(tiny_runs, kwargs, fragment):
    predictor = seqapps.load(tiny_runs.export("char_lm"))
    with pytest.raises(DataError, match=fragment):
        predictor.generate("a", **kwargs)
    assert len(predictor.generate("a", length=3, temperature=0.0)) == 3


def test_predict_with_an_argument_that_is_not_utf8_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable.encode(), b"-m", b"seqapps", b"predict", str(tmp_path).encode(),
                           b"fine", b"caf\xe9"], cwd=ROOT, capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [line for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(lines) == 1 and "input 2 is not UTF-8 text" in lines[0], proc.stderr[-1500:]


@pytest.mark.slow
def test_evaluate_on_a_few_rows_of_one_label_scores_them(sentiment_export, tmp_path):
    """Scoring needs none of what training needs of the splits (two labels...): a 4-row file of one label
    is scored, where it stopped with 'the training data has 1 distinct label(s)'; training on it still
    stops."""
    table = tmp_path / "four.csv"
    table.write_text("text,label\n" + "".join(f"a fine film number {i},positive\n" for i in range(4)))
    proc = cli("evaluate", sentiment_export[1], "--data", table, "--split", "train")
    assert proc.returncode == 0 and "accuracy" in proc.stdout, proc.stderr[-2000:]
    proc = cli("train", "sentiment", "--data", table, "--run-dir", tmp_path / "run")
    one_error_line(proc, "1 distinct label(s); need at least 2")
