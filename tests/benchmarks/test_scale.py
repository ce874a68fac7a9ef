"""benchmarks/scale.py: the training data it writes for each task (small sizes), its options per task,
the batch size of a run, and the report and plot of a saved run."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import scale
from tests.conftest import needs_data


@needs_data
def test_pos_data_is_sentences_of_the_ewt_dev_file_with_their_comments(tmp_path):
    out = scale.resample("pos", 300, tmp_path)
    sentences = scale.conllu_sentences(out)
    assert len(sentences) == 300
    pool = set(scale.conllu_sentences(scale.TASKS["pos"].source))
    assert all(s in pool for s in sentences)
    assert all(s.startswith("# ") for s in sentences)   # each keeps its comment lines (sent_id, text...)
    assert out.read_text(encoding="utf-8").count("# sent_id = ") == 300


@needs_data
def test_forecasting_data_repeats_pollution_in_order_under_one_increasing_date(tmp_path):
    from tasks.forecasting import data as ts

    rows = 50_000   # longer than pollution.csv: it starts over
    out = scale.resample("forecasting", rows, tmp_path)
    frame = pd.read_csv(out)
    source = pd.read_csv(scale.TASKS["forecasting"].source)
    assert len(frame) == rows
    assert list(frame.columns) == ["No", "date", *[c for c in source.columns
                                                   if c not in ("No", "year", "month", "day", "hour")]]
    n = len(source)
    pd.testing.assert_series_equal(frame["pm2.5"].iloc[:n], source["pm2.5"], check_names=False)
    pd.testing.assert_series_equal(frame["cbwd"].iloc[n:].reset_index(drop=True),
                                   source["cbwd"].iloc[:rows - n], check_names=False)
    dates, columns = ts.parse_dates(frame.head(1000), "", "f.csv")   # what forecasting reads
    assert columns == ["date"]
    steps = np.diff(pd.to_datetime(frame["date"]).to_numpy())
    assert (steps == np.timedelta64(1, "h")).all()   # hourly, strictly increasing
    assert ts.pick_target(frame.head(10), "pm2.5", columns, "f.csv") == "pm2.5"


def test_a_long_series_keeps_its_dates_within_datetime64_ns():
    assert scale.series_step_minutes(1_000_000) == 60
    for rows in (10_000_000, 40_000_000):
        step = scale.series_step_minutes(rows)
        last = np.datetime64(scale.SERIES_START) + np.timedelta64(step, "m") * (rows - 1)
        assert step < 60 and last < np.datetime64("2262-04-11")


@needs_data
def test_captioning_data_links_distinct_names_to_flickr_images_with_their_captions(tmp_path):
    out = scale.resample("captioning", 23, tmp_path)
    with open(out / "captions.txt", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(scale.TASKS["captioning"].source, newline="", encoding="utf-8") as f:
        captions = {}
        for r in csv.DictReader(f):
            captions.setdefault(r["image"], []).append(r["caption"])
    assert len(rows) == 23
    names = list(dict.fromkeys(r["image"] for r in rows))
    assert len(names) == 5 and sorted(p.name for p in (out / "images").iterdir()) == sorted(names)
    for name in names:
        link = out / "images" / name
        assert link.is_symlink() and link.resolve().is_file()
        real = link.resolve().name
        assert name.endswith("_" + real)
        assert [r["caption"] for r in rows if r["image"] == name] == captions[real][:len(
            [r for r in rows if r["image"] == name])]
    assert scale.data_mb(out) > 0   # the linked images counted


def test_video_data_is_links_to_a_few_videos_and_their_segments(tmp_path):
    from tasks.video_frames.data import read_video

    out = tmp_path / "videos"
    scale.write_videos(scale.TASKS["video_frames"].source, 7, out, random.Random(0), distinct=2)
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = sorted({r["video"] for r in rows})
    assert names == sorted(p.name for p in out.iterdir() if p.name != "labels.csv") and len(names) == 7
    assert all((out / n).is_symlink() for n in names)
    clip = read_video(out / names[0], 0.0, 1000)
    ends = [int(r["end"]) for r in rows if r["video"] == names[0]]
    assert max(ends) == len(clip.frames)   # the segments cover the linked video's frames


def test_options_per_task():
    tasks = ["pos", "captioning"]
    assert scale.per_task(["pos=/a", "captioning=/b"], tasks, "x") == {"pos": "/a", "captioning": "/b"}
    assert scale.per_task(["5,6", "pos=1"], tasks, "x") == {"pos": "1", "captioning": "5,6"}
    with pytest.raises(SystemExit):
        scale.per_task(["nope=1"], tasks, "x")
    assert set(scale.TASKS) == {"sentiment", "translation", "char_lm", "pos", "forecasting", "captioning",
                                "video_frames"}
    assert all(len(b.sizes) == 3 and b.kind in scale.WRITERS for b in scale.TASKS.values())


def test_checkouts_with_and_without_validation_steps(tmp_path):
    assert scale.knows_validation_steps(scale.ROOT)
    (tmp_path / "seqapps" / "core").mkdir(parents=True)
    (tmp_path / "seqapps" / "core" / "config.py").write_text("epochs = 1\n")
    assert not scale.knows_validation_steps(tmp_path)


def test_examples_per_second_use_the_run_batch_size(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss,epoch_seconds\n0,1.0,9.0\n1,0.9,2.0\n")
    assert scale.steady_rate(tmp_path, 64, 10) == 320.0
    (tmp_path / "config.json").write_text(json.dumps({"train": {"batch_size": 16}}))
    assert scale.steady_rate(tmp_path, 64, 10) == 80.0


def _saved_run() -> dict:
    runs = []
    for task in scale.TASKS:
        for k, rows in enumerate(scale.TASKS[task].sizes):
            for checkout in ("this", "against") if k == 0 else ("this",):
                runs.append({"task": task, "rows": rows, "checkout": checkout, "file_mb": 10.0 ** k,
                             "cold": {"code": 0, "seconds": 20.0 + k, "peak_mb": 900.0 + k},
                             "first_step": {"code": 0, "seconds": 10.0, "peak_mb": 880.0},
                             "examples_per_second": 100.0})
    prepared = [{"task": "pos", "rows": 200_000, "file_mb": 100.0, "code": 0, "seconds": 30.0, "peak_mb": 800.0,
                 "steps": 30, "folder_mb": 50.0, "train_mb": 1.0, "val_mb": 48.0, "shards": 2}]
    speed = [{"task": "pos", "data": "ud_english_ewt", "steps": 100, "against": "/old (d1f06b4)",
              "rates": {"this": [1.0], "against": [1.0]}, "median": {"this": 1.0, "against": 1.0}, "ratio": 1.0}]
    return {"date": "2026-01-01", "commit": "abc", "machine": "2 cores", "runs": runs, "prepared": prepared,
            "speed": speed, "args": {"forecasting": ["--preset", "pollution"]},
            "units": {t: b.unit for t, b in scale.TASKS.items()}, "against": {"pos": "/old (d1f06b4)"}}


def test_a_saved_run_of_every_task_is_reported_and_plotted(tmp_path, capsys):
    saved = tmp_path / "scale.json"
    saved.write_text(json.dumps(_saved_run()))
    assert scale.main(["--from-json", str(saved), "--plot", str(tmp_path / "scale.png")]) == 0
    out = capsys.readouterr().out
    assert "forecasting trains on the written data with: --preset pollution" in out
    assert "video_frames: peak memory 20,000 / 200 videos" in out
    assert "pos on ud_english_ewt by name" in out and "prepare (one epoch" in out
    assert (tmp_path / "scale.png").stat().st_size > 10_000


def test_a_run_saved_before_the_seven_tasks_is_still_reported(tmp_path, capsys):
    old = _saved_run()
    for key in ("prepared", "args", "units", "against"):
        del old[key]
    for sp in old["speed"]:
        del sp["against"]
    old["runs"] = [r for r in old["runs"] if r["task"] == "sentiment"]
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps(old))
    assert scale.main(["--from-json", str(saved)]) == 0
    assert "sentiment: peak memory 10,000,000 / 100,000 rows" in capsys.readouterr().out


def test_unknown_tasks_are_refused():
    with pytest.raises(SystemExit):
        scale.main(["--tasks", "pos,nope"])
    with pytest.raises(SystemExit):
        scale.main(["--tasks", "pos", "--against-for", f"pos={Path('/nonexistent')}"])
