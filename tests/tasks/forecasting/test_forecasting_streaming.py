"""forecasting on CSV files of any size: one cached fitting pass writes the encoded rows once, training
reads windows of that file batch by batch, and the windows are the ones the series gave when read whole."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import peak_memory_mb
from seqapps.core import registry
from seqapps.core.errors import DataError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def loaded(data, *overrides, preset=None):
    from seqapps.training.fit import resolve_config

    task = registry.get("forecasting")
    cfg = resolve_config(task, str(data), overrides=list(overrides), preset=preset)
    splits = task.load_data(cfg)
    return task, cfg, splits, task.prep_class.fit(cfg, splits)   # the encoding (no target space is tried)


def digest(a) -> str:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def hourly_csv(path: Path, n: int, *, seed: int = 0, gaps: bool = False, shuffle: bool = False) -> Path:
    """An hourly load with a temperature and a text column (three wind directions, a fourth, ``calm``,
    only in the last tenth), ``n`` rows (``gaps``: 2% of the loads missing; ``shuffle``: rows in a random
    order), written in blocks."""
    rng = np.random.default_rng(seed)
    times = (np.datetime64("2001-01-01T00:00") + np.arange(n).astype("timedelta64[h]")).astype(str).tolist()
    hours = np.arange(n) % 24
    load = np.round(60 + 12 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, n), 2).astype(object)
    temp = np.round(12 + 6 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0, .3, n), 2).tolist()
    wind = np.array(["N", "SE", "W"], dtype=object)[rng.integers(0, 3, n)]
    wind[int(n * 0.9):][rng.random(n - int(n * 0.9)) < 0.2] = "calm"
    if gaps:
        load[rng.random(n) < 0.02] = "NA"
    order = rng.permutation(n) if shuffle else range(n)
    load, wind = load.tolist(), wind.tolist()
    with open(path, "w", encoding="utf-8") as f:
        f.write("time,load,temperature,wind\n")
        for s in range(0, n, 100_000):
            f.write("".join(f"{times[i]},{load[i]},{temp[i]},{wind[i]}\n" for i in order[s:s + 100_000]))
    return path


# -- the windows are today's ----------------------------------------------------------------------------
#: each benchmark series by name (its preset: the protocol) and the demo: (rows, train_stop, val_stop) and per
#: part (windows, first and last target time, digests of the float32 inputs and targets), as the series
#: read whole with pandas gave them before the fitting pass wrote them to a file (checked equal on every window)
TODAY = {
    ("airline_passengers", None, ("data.window=24",)): ((144, 108, 120), {   # the preset reads 36 months now
        "train": (84, 24, 107, "734f97f7c1917b18", "0cf85d41d408bad6"),
        "val": (12, 108, 119, "9b2c5782d4b5eda2", "130a6b94d1903620"),
        "test": (24, 120, 143, "e9e3927e06a3280d", "b160981101aee689")}),
    ("daily_min_temperatures", None, ()): ((3650, 2920, 3285), {
        "train": (2890, 30, 2919, "be592b3b6f94c42c", "5a475103f0c15872"),
        "val": (365, 2920, 3284, "6a4cd51c43a7f7ac", "f02d683679ac6c32"),
        "test": (365, 3285, 3649, "4c9947f98e1165b3", "6bf06cc4d69dfa3e")}),
    ("pollution", None, ()): ((43800, 30660, 35040), {
        "train": (28739, 24, 30659, "79b46f075fd6dfec", "e13161caa9a275e4"),
        "val": (4333, 30660, 35039, "b84826d9d4fb65b0", "63ad0e35e8470c66"),
        "test": (8661, 35040, 43799, "c3f326c33f1952e2", "988ff4a33bc3ec59")}),
    ("monthly_sunspots", "none", ()): ((2820, 2256, 2538), {
        "train": (2232, 24, 2255, "2702e961b479b395", "4b14aecaa33b3295"),
        "val": (282, 2256, 2537, "be83f0244c67995c", "64d9ae293ce2b320"),
        "test": (282, 2538, 2819, "2ee47cded0118580", "43b8fa9163f1c5f1")}),
    ("demo", "none", ()): ((720, 576, 648), {
        "train": (548, 24, 575, "4fd3571545c417bc", "b8d57c1e06fbac90"),
        "val": (72, 576, 647, "83f14c8c908ae619", "30f542fa908949a9"),
        "test": (72, 648, 719, "3b996d69c4d467fa", "aa100567a3caff46")}),
    ("demo", "none", ("data.window=12", "data.horizon=2")): ((720, 576, 648), {
        "train": (556, 12, 574, "55a663692a083d09", "9b9e7794e27e1d7a"),
        "val": (71, 576, 646, "a087a9c4ad426971", "0f4f57174de96170"),
        "test": (71, 648, 718, "3d3f915deea38f2c", "5985447803a78ace")}),
    ("demo", "none", ("data.missing=interpolate", "data.horizon=3")): ((720, 576, 648), {
        "train": (540, 24, 573, "3c4e5e740620c702", "60cf3d35585a0ea7"),
        "val": (70, 576, 645, "9941021804039ee8", "f0ebea1447c8ae04"),
        "test": (70, 648, 717, "7bd217ddd2423409", "035cf5c330f147d9")}),
}
#: the training part's scaling then (float32 sums; now float64, so equal to about 1e-4)
TODAY_SCALING = {"airline_passengers": ([230.8981], [85.1757]), "daily_min_temperatures": ([11.1058], [4.0599]),
                 "pollution": ([99.4666, 1.4127], [92.118, 14.3429]), "demo": ([57.065, 11.7659], [11.567, 4.2555])}
#: what each benchmark protocol tests: the last 24 months, the last 365 days, the last 20% of hours
PROTOCOL_TEST_STEPS = {"airline_passengers": 24, "daily_min_temperatures": 365, "pollution": 8760}


@pytest.mark.parametrize("case", [pytest.param(c, marks=[] if c[0] == "demo" else [pytest.mark.needs_data],
                                               id="-".join([c[0], *c[2]])) for c in TODAY])
def test_windows_equal_the_in_memory_ones(case, cache):
    name, preset, overrides = case
    (n, train_stop, val_stop), parts = TODAY[case]
    task, cfg, splits, prep = loaded(name, *overrides, preset=preset)
    assert (len(splits.info["series"]), splits.info["train_stop"], splits.info["val_stop"]) == (n, train_stop, val_stop)
    if name in PROTOCOL_TEST_STEPS:
        assert n - val_stop == PROTOCOL_TEST_STEPS[name]
    for part in (splits.train, splits.val, splits.test):
        x, y, times = task.windows(prep, part)
        assert (len(times), times[0], times[-1], digest(x), digest(y)) == parts[part.name], part.name
        assert len(part) == len(times)
    if name in TODAY_SCALING and all(o.startswith("data.window=") for o in overrides):
        mean, std = TODAY_SCALING[name]
        np.testing.assert_allclose(prep.encoding.mean[:len(mean)], mean, rtol=1e-4)
        np.testing.assert_allclose(prep.encoding.std[:len(std)], std, rtol=1e-4)


@pytest.mark.needs_data
def test_training_batches_are_the_in_memory_ones(cache):
    """Same seed, same batches: the training part shuffled whole (the in-memory pipeline's shuffle of
    its (x, y) slices) and validation in order, read from the rows file batch by batch."""
    import tensorflow as tf

    task, cfg, splits, prep = loaded("pollution")
    train, val = task.datasets(cfg, prep, splits)
    for ds, part, shuffled in ((train, splits.train, True), (val, splits.val, False)):
        x, y, _ = task.windows(prep, part)
        old = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffled:
            old = old.shuffle(len(x), seed=cfg.train.seed, reshuffle_each_iteration=True)
        old = old.batch(cfg.train.batch_size)
        assert int(ds.cardinality()) == int(old.cardinality())
        for (x1, y1), (x2, y2) in zip(ds.take(5).as_numpy_iterator(), old.take(5).as_numpy_iterator(), strict=True):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)


def test_a_long_part_is_read_in_shuffled_blocks_every_window_once_an_epoch(cache, tmp_path, monkeypatch):
    import tasks.forecasting.data as data

    monkeypatch.setattr(data, "BLOCK", 64)
    path = hourly_csv(tmp_path / "s.csv", 3000, gaps=True)
    task, cfg, splits, prep = loaded(path, "data.target=load", "data.features=all", "data.shuffle_buffer=100",
                                     "train.batch_size=32")
    train, _ = task.datasets(cfg, prep, splits)
    x_all, y_all, times = task.windows(prep, splits.train)
    where = {x.tobytes(): t for x, t in zip(x_all, times)}

    def epoch():
        seen = []
        for x, y in train.as_numpy_iterator():
            seen += [where[w.tobytes()] for w in x]
            np.testing.assert_array_equal(y[:, 0], y_all[np.searchsorted(times, seen[-len(x):]), 0])
        return np.array(seen)

    assert int(train.cardinality()) == -(-len(times) // 32)
    one, two = epoch(), epoch()
    assert sorted(one) == sorted(two) == list(times)         # every window once an epoch
    assert not np.array_equal(one, two) and not np.array_equal(one, np.sort(one))   # reshuffled, not in order
    assert abs(np.corrcoef(np.arange(len(one)), one)[0, 1]) < 0.5   # blocks drawn across the whole part


# -- the fitting pass ------------------------------------------------------------------------------------
def test_the_pass_is_cached_and_a_changed_file_invalidates_it(cache, tmp_path, monkeypatch):
    import tasks.forecasting.fitting as fitting

    path = hourly_csv(tmp_path / "s.csv", 500)
    calls = []
    real = fitting.fit_series
    monkeypatch.setattr(fitting, "fit_series", lambda *a, **k: calls.append(1) or real(*a, **k))
    args = ("data.target=load", "data.features=all")
    first = loaded(path, *args)[2].info["fit"]
    again = loaded(path, *args, "data.window=12", "data.horizon=2")[2].info["fit"]  # windows: the same pass
    assert len(calls) == 1 and again == first
    files = {k: Path(v) for k, v in first["files"].items()}
    assert set(files) == {"rows", "y", "observed", "dates"} and all(f.parent == cache / "fits" for f in files.values())
    assert files["rows"].stat().st_size == 500 * 4 * len(first["file_features"])
    assert not [p for p in (cache / "fits").iterdir() if ".tmp" in p.name]   # no temporary file left

    loaded(path, *args, "data.val_size=50")                   # another split: another training part
    assert len(calls) == 2

    hourly_csv(path, 500, seed=1)                                # a changed file: fitted again
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    changed = loaded(path, *args)[2].info["fit"]
    assert len(calls) == 3 and changed["files"]["rows"] != first["files"]["rows"]
    assert changed["encoding"]["mean"] != first["encoding"]["mean"]

    Path(changed["files"]["rows"]).unlink()                      # a lost rows file: fitted again
    loaded(path, *args)
    assert len(calls) == 4


def test_a_bad_row_deep_in_a_file_names_its_line_or_is_skipped_and_counted(cache, tmp_path, capsys):
    path = hourly_csv(tmp_path / "big.csv", 200_000)
    lines = path.read_text().splitlines(keepends=True)
    original = list(lines)

    def put(line, load):  # the load on a line of the file (lines count from 1, the header is line 1)
        fields = original[line - 1].split(",")
        lines[line - 1] = ",".join([fields[0], load, *fields[2:]])
        path.write_text("".join(lines))

    put(150_001, "12,5")                                         # 5 fields
    with pytest.raises(DataError) as info:
        loaded(path, "data.target=load", "data.features=all")
    assert str(info.value).startswith(f"{path}:150001: expected 4 fields as in the header, got 5")
    assert "data.skip_bad_rows=true" in str(info.value) and "\n" not in str(info.value)
    put(150_001, "12.5")
    put(180_001, "n/d")                                          # not a number
    with pytest.raises(DataError, match=f"^{path}:180001: column 'load': 'n/d' is not a number; expected numbers"):
        loaded(path, "data.target=load", "data.features=all")

    lines[120_000] = "2030-01-01T00:00,1,2\n"                     # line 120,001: 3 fields
    path.write_text("".join(lines))
    _, _, splits, _ = loaded(path, "data.target=load", "data.features=all", "data.skip_bad_rows=true")
    fit = splits.info["fit"]
    assert fit["bad_rows"] == 2 and fit["first_bad"].startswith(f"{path}:120001: expected 4 fields")
    assert len(splits.info["series"]) == 200_000 - 2
    assert "skipped 2 bad row(s)" in capsys.readouterr().err


def test_rows_out_of_order_are_sorted_and_a_big_unsorted_file_is_refused(cache, tmp_path, monkeypatch):
    import tasks.forecasting.fitting as fitting

    args = ("data.target=load", "data.features=all", "data.missing=interpolate")
    in_order = loaded(hourly_csv(tmp_path / "a.csv", 3000, gaps=True), *args)
    shuffled = loaded(hourly_csv(tmp_path / "b.csv", 3000, gaps=True, shuffle=True), *args)
    for part in ("train", "val", "test"):
        for a, b in zip(in_order[0].windows(in_order[3], getattr(in_order[2], part)),
                        shuffled[0].windows(shuffled[3], getattr(shuffled[2], part))):
            np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(fitting, "SORT_LIMIT", 1000)
    with pytest.raises(DataError, match=r"b.csv:\d+: the rows are not in date order \(.*\); a file over 1,000 rows "
                                        "must be sorted by date first"):
        loaded(tmp_path / "b.csv", *args, "data.val_size=7")


def test_small_chunks_read_as_the_whole_file(cache, tmp_path, monkeypatch):
    """Chunks of 7 rows: gaps across chunk edges fill as pandas fills the whole column (ffill, and linear
    interpolation inside), a column that turns out to hold text is read as categories from the start."""
    import tasks.forecasting.fitting as fitting

    rng = np.random.default_rng(3)
    n = 300
    value = np.round(rng.normal(10, 3, n), 3).astype(object)
    value[rng.random(n) < 0.3] = "NA"
    value[40:75] = "NA"                                              # a gap over several chunks
    other = rng.choice(["1", "2.5", "3"], n).astype(object)
    other[285] = "calm"                                              # text after the first chunks (test part)
    frame = pd.DataFrame({"step": np.arange(n), "value": value, "other": other})
    frame.to_csv(tmp_path / "s.csv", index=False)
    numbers = pd.to_numeric(frame["value"], errors="coerce")
    first = int(numbers.notna().to_numpy().argmax())
    for missing, filled in (("ffill", numbers.ffill()),
                            ("interpolate", numbers.interpolate(method="linear", limit_area="inside").ffill())):
        monkeypatch.setattr(fitting, "CHUNK_ROWS", 7)
        _, _, splits, prep = loaded(tmp_path / "s.csv", "data.target=value", "data.features=other",
                                    "data.date_column=none", "data.window=4", f"data.missing={missing}")
        series = splits.info["series"]
        np.testing.assert_array_equal(np.asarray(series.y), filled.to_numpy()[first:])
        assert series.observed.tolist() == numbers.notna().tolist()[first:]
        assert series.file_features == ["value", "other=1", "other=2.5", "other=3", "other=calm"]
        assert "other=calm" not in prep.encoding.features                  # not in the training part


def test_training_inputs_are_the_exports_encoding_of_the_raw_rows(cache, tmp_path):
    """Every training window is what the export's encoding (the predictor's, from the metadata it saves)
    makes of the raw rows before its time; so is every validation window."""
    from tasks.forecasting.data import ForecastingPrep
    from tasks.forecasting.inputs import last_window

    path = hourly_csv(tmp_path / "s.csv", 400)
    task, cfg, splits, prep = loaded(path, "data.target=load", "data.features=all", "data.window=6")
    served = ForecastingPrep.from_dict(task.metadata(prep))            # as an export reads it back
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    expected = {}
    for t in splits.train.times():
        window, last = last_window(raw.iloc[t - 6:t].sample(frac=1, random_state=int(t)), served, "", "test")
        expected[window.tobytes()] = t
        assert last == pd.Timestamp(raw["time"].iloc[t - 1])
    train, val = task.datasets(cfg, prep, splits)
    seen = [expected[w.tobytes()] for x, _ in train.as_numpy_iterator() for w in x]
    assert sorted(seen) == sorted(expected.values())
    for x, y in val.take(2).as_numpy_iterator():
        t = splits.val.times()[:len(x)]
        for i in range(len(x)):
            np.testing.assert_array_equal(x[i], last_window(raw.iloc[t[i] - 6:t[i]], served, "", "test")[0])
        np.testing.assert_array_equal(y[:, 0], raw["load"].astype("float64").astype("float32").to_numpy()[t])


# -- flat memory -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_forecasting_trains_from_a_file_larger_than_its_in_memory_form_allows(tmp_path):
    """In a child process, a 1,000,000-row file (read whole, its strings and windows took over 1 GB more
    than the demo) trains at about the peak memory of the demo data."""
    path = hourly_csv(tmp_path / "big.csv", 1_000_000)
    env = {**os.environ, "SEQAPPS_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def peak(data):
        argv = [sys.executable, "-m", "seqapps", "train", "forecasting", "--data", str(data), "--epochs", "1",
                "--preset", "none", "--set", "data.target=load", "--set", "data.features=all",
                "--set", "train.steps_per_epoch=3", "--set", "train.validation_steps=2", "--set", "model.units=8",
                "--no-eval", "--run-dir", str(tmp_path / "run"), "--overwrite"]
        return peak_memory_mb(argv, env)

    small, big = peak("demo"), peak(path)
    assert big < 1.3 * small, (small, big)
