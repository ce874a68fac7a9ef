"""Shared test helpers: a fresh-process loader and the repository on sys.path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SEQAPPS_DATA", str(ROOT.parent / "shared" / "datasets"))
DATA = Path(os.environ["SEQAPPS_DATA"]).resolve()
os.environ["SEQAPPS_DATA"] = str(DATA)  # absolute, for subprocesses started in other folders

#: for tests that read the real datasets (CI has them beside the checkout)
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real datasets not found at {DATA} (set SEQAPPS_DATA)")


def run_fresh(code: str, tmp_path) -> object:
    """Run ``code`` in a new Python process where seqapps is NOT importable.

    The code must print one JSON document on its last stdout line; it is returned.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    guard = "import importlib.util, sys\nassert importlib.util.find_spec('seqapps') is None, 'seqapps importable'\n"
    proc = subprocess.run([sys.executable, "-c", guard + code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cli(*args, cwd=None, input=None, timeout=600):
    """Run ``python -m seqapps ARGS``; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "seqapps", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, input=input, timeout=timeout)


def cli_here(capsys, *args, input=None) -> subprocess.CompletedProcess:
    """``python -m seqapps ARGS`` through ``seqapps.cli.parser`` in this process, answered like
    :func:`run_cli` (returncode, stdout, stderr): the CLI's own code path without a new interpreter,
    whose imports cost seconds. Each command keeps one test through a real process."""
    import io

    from seqapps.cli import parser as cli

    argv = [str(a) for a in args]
    capsys.readouterr()  # drop what came before
    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")  # with .buffer
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    finally:
        sys.stdin = stdin
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def run_main(argv, capsys):
    """:func:`cli_here` -> (exit code, the non-empty stderr lines)."""
    proc = cli_here(capsys, *argv)
    return proc.returncode, [x for x in proc.stderr.splitlines() if x.strip()]
