"""The command line lists tasks and datasets; bad input is one line and exit code 2."""

from __future__ import annotations

import pytest

from conftest import needs_data, run_cli, run_main


@pytest.mark.slow
@needs_data
def test_cli_lists_tasks_and_datasets():
    out = run_cli("tasks")
    assert out.returncode == 0 and "sentiment" in out.stdout and "many-to-one" in out.stdout
    out = run_cli("datasets")
    assert out.returncode == 0
    line = next(x for x in out.stdout.splitlines() if x.startswith("sst2 "))
    assert " yes " in line  # SEQAPPS_DATA points at the shared datasets


@pytest.mark.parametrize("args, message", [
    (["train", "nope"], "unknown task 'nope'"),
    (["train", "sentiment", "--set", "model.nope=1"], "unknown config key 'model.nope'"),
    (["train", "sentiment", "--epochs", "ten"], "expected a whole number, got 'ten'"),
    (["train", "sentiment", "--data", "no_such_set"], "no such dataset or file 'no_such_set'"),
    (["train", "sentiment", "--data", "/no/such/file.csv"], "no such dataset or file"),
    (["train", "sentiment", "--data", "tfds:imdb_reviews"], "tfds:imdb_reviews is not downloaded yet and there is no internet"),
    pytest.param(["train", "sentiment", "--data", "sst2", "--set", "data.text_column=review"],
                 "no text column 'review'; columns are: label, sentence", marks=[needs_data, pytest.mark.slow]),
    (["predict", "/no/such/export", "hi"], "no such export or run directory"),
])
def test_cli_errors_are_one_line_with_exit_code_2(args, message, tmp_path, capsys):
    """In process (one TensorFlow import for all cases); the subprocess test below checks a real exit."""
    argv = [*args, "--run-dir", str(tmp_path / "run")] if args[0] == "train" else list(args)
    code, lines = run_main(argv, capsys)
    assert code == 2, lines
    assert len(lines) == 1 and message in lines[0], lines
    assert not any("Traceback" in x for x in lines)
    assert not (tmp_path / "run").exists()  # nothing written on bad input


@pytest.mark.slow
def test_cli_error_exits_the_process_with_code_2(tmp_path):
    out = run_cli("train", "sentiment", "--set", "model.nope=1", "--run-dir", tmp_path / "run")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown config key 'model.nope'"), out.stderr
