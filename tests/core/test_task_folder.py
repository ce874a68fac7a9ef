"""A task is one folder: a throwaway task written into a folder of its own, with nothing added
anywhere else, is listed, has its named dataset, trains, exports and answers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FILES = {
    "__init__.py": '"""echo: a sentiment-like task kept in one folder."""\n',
    "task.py": """
        from seqapps.core.registry import register
        from tasks.sentiment.task import Sentiment


        @register
        class Echo(Sentiment):
            name = "echo"
            description = "text -> whether it says yes"
            default_data = "demo"
            presets = ()
    """,
    "demo.py": """
        def examples(seed: int = 0):
            rows = [(f"yes number {i}", "yes") for i in range(60)] + [(f"no number {i}", "no") for i in range(60)]
            return rows
    """,
    "datasets.py": """
        from seqapps.data.catalog import NamedDataset

        DATASETS = [NamedDataset("echo_words", "echo", {"all": "echo/words.csv"}, "yes and no")]
    """,
}

SCRIPT = """
import sys, runpy
import tasks
tasks.__path__.append({extra!r})
sys.argv = ["seqapps", *sys.argv[1:]]
runpy.run_module("seqapps", run_name="__main__")
"""


@pytest.mark.slow
def test_a_task_is_one_folder(tmp_path):
    extra = tmp_path / "more_tasks"
    folder = extra / "echo"
    folder.mkdir(parents=True)
    for name, text in FILES.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))
    data = tmp_path / "data" / "echo"
    data.mkdir(parents=True)
    (data / "words.csv").write_text("text,label\n" + "".join(f"yes {i},yes\nno {i},no\n" for i in range(50)))
    launcher = tmp_path / "seqapps_with_more_tasks.py"
    launcher.write_text(SCRIPT.format(extra=str(extra)))
    env = {"PYTHONPATH": str(ROOT), "SEQAPPS_DATA": str(tmp_path / "data"), "SEQAPPS_CACHE": str(tmp_path / "cache"),
           "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"}

    def cli(*args):
        proc = subprocess.run([sys.executable, str(launcher), *map(str, args)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    assert "echo" in cli("tasks")
    assert "echo_words" in cli("datasets")
    run, export = tmp_path / "run", tmp_path / "export"
    cli("train", "echo", "--data", "echo_words", "--epochs", "30", "--run-dir", run, "--set", "train.patience=0",
        "--set", "model.units=8",
        "--set", "model.embedding_dim=8", "--set", "model.subword_buckets=200")
    cli("export", run, export)
    assert json.loads((export / "metadata.json").read_text())["task"] == "echo"
    answers = cli("predict", export, "yes 7", "no 7")
    assert [line.split("\t")[0] for line in answers.strip().splitlines()] == ["yes", "no"]
