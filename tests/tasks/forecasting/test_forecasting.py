"""forecasting: CSV series reading, leak-free windows, scaling, baselines, and end to end
train -> export -> forecast on the demo data (the shared contract is in test_contract.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import seqapps
from conftest import needs_data, run_cli
from seqapps.core import registry
from tasks.forecasting import data as ts
from seqapps.core.errors import ConfigError, DataError
from seqapps.analysis.metrics import mae, mase, rmse

DATA = Path(os.environ.get("SEQAPPS_DATA", ""))
needs_series = pytest.mark.skipif(not (DATA / "timeseries" / "pollution.csv").exists(),
                                  reason="real time series not found under $SEQAPPS_DATA")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The fitting pass's cache in the test's folder."""
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path, text, *overrides, name="s.csv"):
    """Splits of a CSV written to ``tmp_path`` through the task's own loader."""
    task = registry.get("forecasting")
    cfg = task.default_config()
    cfg.data.source = str(write(tmp_path, name, text))
    cfg.override(overrides)
    return task, cfg, task.load_data(cfg)


def counting_csv(n=60):
    """A monthly series whose value is its own row number: leaks are visible."""
    months = pd.date_range("2000-01-01", periods=n, freq="MS").strftime("%Y-%m")
    return "month,value\n" + "\n".join(f"{m},{i}" for i, m in enumerate(months)) + "\n"


# -- reading -------------------------------------------------------------------------------------
def test_dates_numbers_categories_and_gaps_are_read(tmp_path, cache):
    text = ("No,year,month,day,hour,pm,wind,speed\n"
            "1,2020,1,1,1,NA,NE,1.0\n"       # leading missing target: row dropped
            "2,2020,1,1,0,NA,NW,2.0\n"       # out of order: sorted by date
            "3,2020,1,1,2,10,NE,\n"          # missing input: forward-filled
            "4,2020,1,1,3,NA,cv,4.5\n"       # missing target: filled as input, never a target
            "5,2020,1,1,4,12,NA,5\n"
            "6,2020,1,1,5,13,SE,6\n")
    task, cfg, splits = load(tmp_path, text, "data.target=pm", "data.features=all", "data.window=1",
                             "data.val_size=1", "data.test_fraction=0", name="p.csv")
    series = splits.info["series"]
    assert series.inputs == ["pm", "wind", "speed"]                     # No and the date parts are left out
    assert series.date_columns == ["year", "month", "day", "hour"] and series.freq == "h"
    assert str(series.dates[0]) == "2020-01-01 02:00:00" and series.dropped_rows == 2
    assert list(series.y) == [10, 10, 12, 13] and series.observed.tolist() == [True, False, True, True]
    speed = series.file_features.index("speed")
    assert series.rows()[:, speed].tolist() == [1.0, 4.5, 5, 6]          # carried from 01:00 (after sorting)
    enc = task.fit_preprocessing(cfg, splits).encoding                  # categories of the training part only
    assert enc.features == ["pm", "wind=NE", "wind=cv", "speed"]
    x, _ = series.windows([1, 2, 3], 1, 1, series.columns_for(enc))
    assert x[:, 0, 1:3].tolist() == [[1, 0], [0, 1], [0, 1]]
    assert series.windows([4], 1, 0, series.columns_for(enc))[0][0, 0, 1:3].tolist() == [0, 0]  # unseen SE: zeros
    assert enc.encode(pd.DataFrame({"pm": ["1"], "wind": ["cv"], "speed": ["2"]})).tolist() == [[1, 0, 1, 2]]


def test_season_and_dates_are_inferred(tmp_path, cache):
    _, cfg, splits = load(tmp_path, counting_csv())
    assert splits.train.season == 12 and splits.info["series"].freq == "MS"
    assert cfg.data.target == "value"                                   # the only numeric column
    days = pd.date_range("2000-01-01", periods=800, freq="D")
    assert ts.infer_season(days) == 365 and ts.infer_season(days[:100]) == 7 and ts.infer_season(None) == 1


def test_interpolate_and_error_policies(tmp_path, cache):
    text = "t,v\n1,1\n2,NA\n3,3\n4,4\n"
    common = ("data.date_column=none", "data.target=v", "data.window=1", "data.val_size=1", "data.test_fraction=0")
    y = lambda missing: list(load(tmp_path, text, *common, f"data.missing={missing}")[2].info["series"].y)  # noqa: E731
    assert y("interpolate") == [1, 2, 3, 4]
    assert y("ffill") == [1, 1, 3, 4]
    with pytest.raises(DataError, match="'v' has 1 missing value.*line 3"):
        y("error")
    with pytest.raises(ConfigError, match="data.missing"):
        y("zero")


@pytest.mark.parametrize("text, overrides, message", [
    ("m,v\n2000-01,1\n2000-02,x1\n2000-03,3\n", [], r"s.csv:3: column 'v': 'x1' is not a number"),
    (counting_csv(), ["data.target=sales"], r"no target column 'sales'; columns are: month, value"),
    (counting_csv(), ["data.features=price"], r"no input column 'price'"),
    (counting_csv(), ["data.date_column=when"], r"no date column 'when'"),
    (counting_csv(30), ["data.window=40"], r"data.window=40 is too long for this series: 30 steps"),
    ("m,v\n2000-01,1\n2000-01,2\n2000-03,3\n", [], r"s.csv:3: the date 2000-01-01 00:00:00 appears more than once "
                                                     r"\(also on line 2\)"),
    ("m,v\n2000-01,1\n2000-02,inf\n2000-03,3\n", [], r"s.csv:3: column 'v': 'inf' is infinite"),
    ("a,b\n1,2\n3,4\n", [], r"cannot tell which column to forecast; set data.target"),
    ("m,v\n", [], r"no data rows"),
])
def test_bad_series_fail_with_one_line(tmp_path, cache, text, overrides, message):
    with pytest.raises(DataError, match=message) as info:
        load(tmp_path, text, *overrides)
    assert "\n" not in str(info.value)


# -- windows, leakage, scaling, baselines ------------------------------------------------------------
def test_windows_never_see_their_own_or_later_targets(tmp_path, cache):
    task, cfg, splits = load(tmp_path, counting_csv(80), "data.window=6", "data.horizon=3",
                             "data.val_size=12", "data.test_size=12")
    prep = task.fit_preprocessing(cfg, splits)
    train_stop, val_stop = splits.info["train_stop"], splits.info["val_stop"]
    assert (train_stop, val_stop) == (56, 68)
    seen = {}
    for split in (splits.train, splits.val, splits.test):
        x, y, times = task.windows(prep, split)
        assert len(x) == len(times) > 0 and x.shape[1:] == (6, 1) and y.shape[1] == 3
        # the value is the row number, so inputs and targets show which rows they came from
        assert (x[:, :, 0].max(axis=1) == times - 1).all() and (y[:, 0] == times).all()
        assert (x[:, :, 0].max(axis=1) < y.min(axis=1)).all()
        seen[split.name] = (y.min(), y.max())
    assert seen["train"][1] < train_stop <= seen["val"][0] and seen["val"][1] < val_stop <= seen["test"][0]
    assert seen["test"][1] == 79


def test_scaling_is_fitted_on_the_training_part_only(tmp_path, cache):
    task, cfg, splits = load(tmp_path, counting_csv(80), "data.window=6", "data.val_size=12", "data.test_size=12")
    prep = task.fit_preprocessing(cfg, splits)
    assert prep.encoding.mean[0] == pytest.approx(np.arange(56).mean(), rel=1e-6)
    assert prep.encoding.std[0] == pytest.approx(np.arange(56).std(), rel=1e-6)
    later = counting_csv(80).replace("\n2006-01,72\n", "\n2006-01,99999\n")   # a test-part value changes
    assert later != counting_csv(80)
    _, cfg2, splits2 = load(tmp_path, later, "data.window=6", "data.val_size=12", "data.test_size=12", name="b.csv")
    assert task.fit_preprocessing(cfg2, splits2).encoding.to_dict() == prep.encoding.to_dict()


def test_scaling_round_trips_numpy_and_in_the_model(tmp_path, cache):
    task, cfg, splits = load(tmp_path, counting_csv(80), "data.window=6", "model.units=4")
    prep = task.fit_preprocessing(cfg, splits)
    values = np.array([[0.0], [17.5], [123.0]])
    np.testing.assert_allclose(prep.encoding.unscale_target(prep.encoding.scale(values)[:, 0]), values[:, 0])
    # an untrained residual model is exactly the naive forecast: scale in, unscale out
    model = task.build_model(cfg, prep)
    x, _, times = task.windows(prep, splits.test)
    np.testing.assert_allclose(model(x).numpy()[:, 0], times - 1, rtol=1e-5, atol=1e-3)


def test_windows_with_missing_targets_are_skipped():
    observed = np.ones(12, bool)
    observed[[5, 9]] = False
    assert ts.window_times(observed, 0, 12, 3, 1).tolist() == [3, 4, 6, 7, 8, 10, 11]
    assert ts.window_times(observed, 0, 12, 3, 2).tolist() == [3, 6, 7, 10]
    assert ts.window_times(observed, 8, 12, 3, 1).tolist() == [8, 10, 11]
    assert ts.window_times(observed, 11, 12, 3, 2).tolist() == []


def test_baselines_and_scores():
    y = np.arange(20, dtype=float) * 10
    times = np.array([8, 9])
    np.testing.assert_array_equal(ts.naive_forecast(y, times, 3), [[70, 70, 70], [80, 80, 80]])
    # season 2, horizon 3: steps t, t+1 from t-2, t-1; step t+2 from t (unknown) -> t-2 again
    np.testing.assert_array_equal(ts.seasonal_naive_forecast(y, times, 3, 2), [[60, 70, 60], [70, 80, 70]])
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(np.sqrt(5 / 3))
    assert mase([1, 2, 3], [2, 2, 5], 0.5) == pytest.approx(2.0)
    observed = np.ones(20, bool)
    assert ts.mase_scale(y, observed, 10, 1) == pytest.approx(10.0)
    assert ts.mase_scale(y, observed, 10, 4) == pytest.approx(40.0)


@pytest.mark.slow
def test_small_batch_is_overfit(tmp_path, cache):
    import keras

    task, cfg, splits = load(tmp_path, counting_csv(80), "data.window=6", "model.units=16")
    prep = task.fit_preprocessing(cfg, splits)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 55, (16, 6, 1)).astype("float32")                 # random windows and targets:
    y = rng.uniform(0, 55, (16, 1))                                       # only memorising fits them
    keras.utils.set_random_seed(0)
    model = task.build_model(cfg, prep)
    task.compile(model, cfg, keras.optimizers.Adam(0.03), prep)
    before = model.evaluate(x, y, verbose=0)[1]
    model.fit(x, y, epochs=100, batch_size=16, verbose=0)
    after = model.evaluate(x, y, verbose=0)[1]
    assert after < 0.05 * before, (before, after)


@needs_data
@needs_series
def test_pollution_reads_with_its_gaps_and_wind_direction(cache):
    task = registry.get("forecasting")
    cfg = task.default_config()
    cfg.data.source, cfg.data.test_fraction = "pollution", 0.2
    splits = task.load_data(cfg)
    series = splits.info["series"]
    assert cfg.data.target == "pm2.5" and cfg.data.features == ["all"]
    assert series.inputs == ["pm2.5", "DEWP", "TEMP", "PRES", "cbwd", "Iws", "Is", "Ir"]
    assert series.dropped_rows == 24 and len(series) == 43800 and series.freq == "h" and splits.train.season == 24
    assert int((~np.asarray(series.observed)).sum()) == 2067 - 24 and np.isfinite(series.rows()).all()
    assert len(series) - splits.info["val_stop"] == 8760                       # the last 20% of hours
    prep = task.fit_preprocessing(cfg, splits)
    assert prep.encoding.features[4:8] == ["cbwd=NE", "cbwd=NW", "cbwd=SE", "cbwd=cv"]


# -- end to end ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecasting")
    run = seqapps.train("forecasting", "demo", epochs=3, run_dir=root / "run", verbose=0,
                        overrides=["model.units=8", "data.window=12", "data.horizon=2"])
    return run, run.export(root / "export"), root


def recent_rows(n=20):
    from tasks.forecasting.demo import frame

    return frame().iloc[-n - 8:-8].reset_index(drop=True)   # no gaps in these rows


@pytest.mark.slow
def test_run_and_export_describe_the_model(trained):
    run, export_dir, _ = trained
    for name in ["config.json", "series.json", "best.keras", "history.csv", "metrics.json"]:
        assert (run.dir / name).exists(), name
    meta = json.loads((export_dir / "metadata.json").read_text())
    assert meta["features"] == ["load", "temperature", "day_type=weekday", "day_type=weekend"]
    assert meta["window"] == 12 and meta["horizon"] == 2 and meta["freq"] == "h" and meta["season"] == 24
    assert meta["signatures"]["serving_default"]["inputs"] == {"window": {"dtype": "float32", "shape": [None, 12, 4]}}
    test = run.metrics["test"]
    assert set(test) >= {"model", "naive", "seasonal_naive"} and set(test["model"]) == {"mae", "rmse", "mase"}


@pytest.mark.slow
def test_export_forecasts_a_frame_and_its_signature_refuses_nan(trained):
    _, export_dir, _ = trained
    predictor = seqapps.load(export_dir)
    window = predictor.prep.encoding.encode(recent_rows(12))[None]
    from_frame = predictor.forecast(recent_rows())
    np.testing.assert_allclose(from_frame, predictor.predict(window)[0], rtol=1e-5)
    assert 30 < from_frame[0] < 90                                  # in the original units of the load
    with pytest.raises(DataError, match="NaN or inf"):  # the raw signature checks it too (in the graph)
        predictor.call(window=np.full([1, 12, 4], np.nan, "float32"))
    with pytest.raises(DataError, match=r"over 1e\+06 training scales from the training mean"):  # answered NaN before
        predictor.predict(np.full([1, 12, 4], 3e38, "float32"))
    assert np.isfinite(predictor.predict(window * 10)).all()  # far from the training data, within reason


@pytest.mark.slow
def test_forecast_rejects_bad_windows(trained):
    _, export_dir, _ = trained
    predictor = seqapps.load(export_dir)
    rows = recent_rows()
    with pytest.raises(DataError, match="6 rows; the model needs the last 12 steps"):
        predictor.forecast(rows.iloc[:6])
    broken = rows.copy()
    broken.loc[15, "temperature"] = "NA"
    with pytest.raises(DataError, match="column 'temperature' row 8 of the window is missing"):
        predictor.forecast(broken)
    broken.loc[15, "temperature"] = "inf"
    with pytest.raises(DataError, match="not finite"):
        predictor.forecast(broken)
    with pytest.raises(DataError, match="no column 'day_type'"):
        predictor.forecast(rows.drop(columns=["day_type"]))
    with pytest.raises(DataError, match="window 0 holds NaN or inf"):
        predictor.predict(np.full([1, 12, 4], np.nan))
    with pytest.raises(DataError, match=r"expected \[batch, 12, 4\]"):
        predictor.predict(np.zeros([1, 12, 3]))


@pytest.mark.slow
def test_cli_predict_and_evaluate(trained):
    run, export_dir, root = trained
    rows = recent_rows()
    rows.to_csv(root / "recent.csv", index=False)
    out = run_cli("predict", export_dir, "--input", root / "recent.csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    expected = seqapps.load(export_dir).forecast(rows)
    last = pd.Timestamp(rows["time"].iloc[-1])
    assert lines[0] == "date\tload" and len(lines) == 3
    assert lines[1].split("\t")[0] == str(last + pd.Timedelta(hours=1))
    np.testing.assert_allclose([float(line.split("\t")[1]) for line in lines[1:]], expected, rtol=1e-4)

    bad = rows.copy()
    bad.loc[19, "load"] = "NA"
    bad.to_csv(root / "bad.csv", index=False)
    out = run_cli("predict", export_dir, "--input", root / "bad.csv")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "column 'load' row 12 of the window is missing" in out.stderr

    out = run_cli("evaluate", export_dir, "--out", root)
    assert out.returncode == 0, out.stderr
    assert "MAE" in out.stdout and "RMSE" in out.stdout and "MASE" in out.stdout
    assert "naive" in out.stdout and "seasonal_naive" in out.stdout
    assert (root / "forecast-test.png").stat().st_size > 10_000
    scores = json.loads((root / "evaluation-test.json").read_text())
    assert scores["model"]["mae"] == pytest.approx(run.metrics["test"]["model"]["mae"], rel=1e-5)


@pytest.mark.slow
def test_cli_train_bad_input_is_one_line(tmp_path):
    path = write(tmp_path, "x.csv", "m,v\n2000-01,1\n2000-02,oops\n")
    out = run_cli("train", "forecasting", "--data", path, "--run-dir", tmp_path / "r")
    assert out.returncode == 2 and out.stderr.strip().startswith("error: ") and "'oops' is not a number" in out.stderr
    assert not (tmp_path / "r").exists()
