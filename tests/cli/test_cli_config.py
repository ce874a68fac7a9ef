"""Packaging, the command line built from the tasks, honest configs and the import graph."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT, run_main
from seqapps.cli import parser as cli
from seqapps.core import config, registry
from seqapps.core.errors import ConfigError, ExportError, SeqappsError

CYCLES_TOOL = ROOT.parent / "shared" / "tools" / "import_cycles.py"


# -- packaging ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_installed_package_gives_the_seqapps_command_from_another_directory(tmp_path):
    """``pip install`` of a copy of the checkout (so the build leaves nothing in it) into a target
    folder; its console script lists the tasks from the installed ``tasks`` package, run elsewhere."""
    src, target, elsewhere = tmp_path / "src", tmp_path / "target", tmp_path / "elsewhere"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("seqapps", "tasks"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                          "-q", "--target", str(target), str(src)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert (target / "seqapps" / "encoders" / "imagenet_classes.txt").exists()  # package data
    assert (target / "tasks" / "char_lm" / "task.py").exists() and (target / "seqapps" / "inference" / "bundle.py").exists()
    assert (target / "seqapps" / "http" / "pages").is_dir()

    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), TF_CPP_MIN_LOG_LEVEL="3")
    script = target / "bin" / "seqapps"
    code = "import seqapps, tasks; print(seqapps.__file__); print(tasks.__file__)"
    where = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert where.stdout.split() == [str(target / "seqapps" / "__init__.py"), str(target / "tasks" / "__init__.py")]
    proc = subprocess.run([sys.executable, str(script), "tasks"], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = [line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()]
    assert listed == registry.names() and "char_lm" in listed


def test_pyproject_declares_the_console_script_and_every_runtime_requirement():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "seqapps" and project["scripts"] == {"seqapps": "seqapps.cli:main"}
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    by_name = {r.name.lower().replace("_", "-"): r for r in declared}
    runtime = (ROOT / "requirements.txt").read_text().split("# Tests")[0]
    for line in runtime.splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        pinned = Requirement(line)
        (version,) = [s.version for s in pinned.specifier]
        declared_req = by_name.get(pinned.name.lower().replace("_", "-"))
        assert declared_req is not None, f"{pinned.name} is in requirements.txt but not in pyproject.toml"
        assert declared_req.specifier.contains(version), f"{pinned} is outside pyproject's {declared_req}"


# -- the command line ---------------------------------------------------------------------------------
def test_task_subcommands_come_from_the_tasks():
    assert "generate" not in cli.COMMANDS and "inspect" not in cli.COMMANDS
    assert [c.name for c in registry.get("char_lm").cli_commands()] == ["generate", "inspect"]
    assert registry.get("sentiment").cli_commands() == []
    names = [c.name for c in cli.task_commands()]
    assert names == ["generate", "inspect"]
    args = cli.build_parser(cli.task_commands()).parse_args(["generate", "x", "--prime", "AB", "--length", "7"])
    assert (args.command, args.path, args.prime, args.length, args.debug) == ("generate", "x", "AB", 7, False)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_works_before_and_after_the_subcommand(where, tmp_path):
    argv = ["train", "nope", "--run-dir", str(tmp_path / "run")]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    assert cli.build_parser().parse_args(argv).debug is True
    with pytest.raises(SeqappsError, match="unknown task 'nope'"):  # --debug: the traceback, not exit 2
        cli.main(argv)
    assert cli.build_parser().parse_args(["train", "nope"]).debug is False


def test_a_task_command_runs_through_main_and_fails_in_one_line(tmp_path, capsys):
    code, err = run_main(["generate", str(tmp_path / "missing"), "--prime", "A"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "no such export" in err[0], err


# -- honest configs ---------------------------------------------------------------------------------
BAD = [
    ("sentiment", ["--set", "model.units=0"], "model.units must be >= 1, got 0"),
    ("sentiment", ["--set", "model.units=-5"], "model.units must be >= 1, got -5"),
    ("sentiment", ["--set", "model.dropout=2"], "model.dropout must be in [0, 1), got 2.0"),
    ("sentiment", ["--set", "model.dropout=1"], "model.dropout must be in [0, 1)"),
    ("sentiment", ["--set", "model.pooling=foo"], "model.pooling must be one of last, max, mean, max_mean, got 'foo'"),
    ("sentiment", ["--set", "model.cell=transistor"], "model.cell must be one of rnn, lstm, gru"),
    ("sentiment", ["--set", "train.ema=2"], "train.ema must be in [0, 1), got 2.0"),
    ("sentiment", ["--set", "train.learning_rate=-1"], "train.learning_rate must be > 0, got -1.0"),
    ("sentiment", ["--set", "train.learning_rate=0"], "train.learning_rate must be > 0"),
    ("sentiment", ["--set", "train.learning_rate=nan"], "train.learning_rate must be > 0, got nan"),
    ("sentiment", ["--set", "train.optimizer=adagrad"], "train.optimizer must be one of adam, adamw, sgd, rmsprop"),
    ("sentiment", ["--set", "train.decay=linear"], "train.decay must be one of none, cosine"),
    ("sentiment", ["--set", "train.strategy=tpu"], "train.strategy must be one of default, mirrored, multiworker"),
    ("sentiment", ["--epochs", "0"], "train.epochs must be >= 1, got 0"),
    ("sentiment", ["--batch-size", "0"], "train.batch_size must be >= 1, got 0"),
    ("captioning", ["--set", "model.bidirectional=true"], "model.bidirectional is not used by captioning"),
    ("captioning", ["--set", "model.layers=2"], "model.layers is not used by captioning"),
    ("char_lm", ["--set", "data.max_length=50"], "data.max_length is not used by char_lm"),
    ("forecasting", ["--set", "data.max_length=50"], "data.max_length is not used by forecasting"),
    ("char_lm", ["--set", "train.bptt=0"], "train.bptt must be >= 1, got 0"),
    ("forecasting", ["--set", "data.missing=zero"], "data.missing must be one of ffill, interpolate, error"),
    ("pos", ["--set", "model.char_encoder=lstm"], "model.char_encoder must be one of cnn, rnn, none"),
]


@pytest.mark.parametrize("task, args, message", BAD, ids=[" ".join([t, *a]) for t, a, _ in BAD])
def test_bad_option_is_one_line_exit_2_and_writes_nothing(task, args, message, tmp_path, capsys):
    code, err = run_main(["train", task, "--data", "demo", *args, "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "run").exists()


def test_every_default_config_is_valid_and_the_ranges_cover_the_shared_keys():
    for task in registry.all_tasks():
        task.validate(task.default_config())
    shared = set(config.keys(config.Config()))
    numeric = {k for k in shared if isinstance(config.get_value(config.Config(), k), (int, float))
               and not isinstance(config.get_value(config.Config(), k), bool)}
    assert numeric - set(config.RANGES) == {"train.seed"}  # any seed will do
    strings = {k for k in shared if isinstance(config.get_value(config.Config(), k), str)}
    assert strings - set(config.CHOICES) == {"data.source"}  # checked when it is resolved


def test_ranges_read_as_documented():
    assert str(config.FRACTION) == "in [0, 1)" and str(config.POSITIVE) == "> 0" and str(config.AT_LEAST_1) == ">= 1"
    assert 0 in config.FRACTION and 0.999 in config.FRACTION and 1 not in config.FRACTION
    assert 0 not in config.POSITIVE and 1e-9 in config.POSITIVE
    cfg = config.Config()
    cfg.model.units = 0
    with pytest.raises(ConfigError, match=r"^model.units must be >= 1, got 0$"):
        config.check(cfg)
    cfg.model.units = 8
    config.check(cfg)
    with pytest.raises(ConfigError, match="model.units must be >= 16"):
        config.check(cfg, ranges={"model.units": config.Range(16)})  # a task's own range replaces the shared one


def test_mixed_precision_reads_the_old_bool_and_names_its_choices():
    assert config.Config.from_dict({"train": {"mixed_precision": True}}).train.mixed_precision == "true"
    assert config.Config.from_dict({"train": {"mixed_precision": False}}).train.mixed_precision == "false"
    cfg = config.Config().override(["train.mixed_precision=bfloat16"])
    config.check(cfg)
    cfg.override(["train.mixed_precision=half"])
    with pytest.raises(ConfigError, match=r"^train.mixed_precision must be one of false, true, float16, bfloat16, "
                                          r"got 'half'$"):
        config.check(cfg)


# -- prediction -----------------------------------------------------------------------------------------
def test_predictor_rejects_an_unknown_input_name():
    import tensorflow as tf

    from seqapps.inference.predictor import Predictor
    from seqapps.core.task import Endpoint, Task

    length = Endpoint(lambda text: {"length": tf.strings.length(text)}, [tf.TensorSpec([None], tf.string, name="text")])
    predictor = Predictor.in_memory(Task(), {"serving_default": length}, metadata={})
    assert predictor.call(text=["abc", ""])["length"].tolist() == [3, 0]
    with pytest.raises(ExportError, match=r"has no input 'texts'; its inputs are: text"):
        predictor.call(text=["abc"], texts=["abc"])
    with pytest.raises(ExportError, match="needs inputs: text"):
        predictor.call()


# -- the import graph -------------------------------------------------------------------------------
@pytest.mark.skipif(not CYCLES_TOOL.exists(), reason=f"{CYCLES_TOOL} not found")
def test_no_import_cycle():
    proc = subprocess.run([sys.executable, str(CYCLES_TOOL), str(ROOT), "seqapps", "tasks"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and re.search(r"^0 import cycle", proc.stdout, re.M), proc.stdout


def test_run_directory_module_is_a_leaf():
    """seqapps/training/run_dir.py imports nothing of the project but its errors (and the version string)."""
    import ast

    tree = ast.parse((ROOT / "seqapps" / "training" / "run_dir.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m.startswith(("seqapps", "tasks"))} == {"seqapps.core.errors", "seqapps"}
