"""forecasting's target space: the transform and its exact inverse, the seasonal base, the choice on the
validation part, and an export that answers raw windows as the run's model does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import seqapps
from seqapps.core import registry
from seqapps.core.errors import ConfigError, DataError
from tasks.forecasting import layers, space


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def monthly_csv(path, n=96, *, multiplicative=True, seed=0, shift=0.0):
    """A monthly series with a trend and a season: the season's swing grows with the level
    (multiplicative) or stays the same size (additive); a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    season = np.sin(2 * np.pi * t / 12)
    if multiplicative:
        y = 100 * np.exp(0.03 * t) * (1 + 0.35 * season) * np.exp(0.005 * rng.standard_normal(n))
    else:
        y = 100 + 2 * t + 30 * season + 0.5 * rng.standard_normal(n)
    months = pd.date_range("2000-01-01", periods=n, freq="MS").strftime("%Y-%m")
    pd.DataFrame({"month": months, "value": y + shift}).to_csv(path, index=False)
    return path


def splits_of(path, *overrides):
    task = registry.get("forecasting")
    cfg = task.default_config()
    cfg.data.source = str(path)
    cfg.override(["data.window=24", "data.val_size=12", "data.test_size=12", "model.units=4", "train.epochs=2",
                  "train.batch_size=16", *overrides])
    return task, cfg, task.load_data(cfg)


@pytest.mark.parametrize("kind,lam", [("log", 0.0), ("boxcox", 0.3), ("boxcox", -0.5), ("boxcox", 0.0)])
def test_transform_and_its_inverse_are_exact_in_numpy_and_in_the_layer(kind, lam):
    y = np.array([[0.5, 1.0, 17.25, 450.0, 1e4]], "float32")
    z = layers.transform(y, kind, lam)
    np.testing.assert_allclose(layers.inverse(z, kind, lam), y, rtol=1e-12)
    forward = layers.TargetTransform(kind, lam)
    back = layers.TargetTransform.from_config(layers.TargetTransform(kind, lam, inverse=True).get_config())
    np.testing.assert_allclose(np.asarray(forward(y)), z, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(back(forward(y))), y, rtol=1e-5)
    assert np.asarray(layers.TargetTransform("none")(y)).tolist() == y.tolist()


def test_seasonal_layers_are_the_seasonal_random_walk_and_its_differences():
    z = np.arange(30, dtype="float32")[None] ** 1.5            # a window of 30 steps, season 12
    base = np.asarray(layers.SeasonalBase(12, 3, drift=0.5)(z))[0]
    expected = [z[0, -1] + z[0, -12 + k] - z[0, -13] + 0.5 * (k + 1) for k in range(3)]
    np.testing.assert_allclose(base, expected, rtol=1e-6)
    d = np.asarray(layers.SeasonalDifference(12, mean=1.0, std=2.0)(z))[0]
    i = 20
    assert d[:13].tolist() == [0.0] * 13
    assert d[i] == pytest.approx((z[0, i] - z[0, i - 1] - z[0, i - 12] + z[0, i - 13] - 1.0) / 2.0, rel=1e-5)


def test_an_untrained_model_in_log_space_is_the_multiplicative_seasonal_random_walk(tmp_path, cache):
    task, cfg, splits = splits_of(monthly_csv(tmp_path / "m.csv"), "model.transform=log", "model.base=seasonal")
    prep = task.fit_preprocessing(cfg, splits)
    assert prep.selection == [] and prep.space["transform"] == "log" and prep.space["base"] == "seasonal"
    model = task.build_model(cfg, prep)
    x, y, times = task.windows(prep, splits.test)
    series = splits.info["series"].y
    drift = np.exp(prep.space["diff_mean"])
    expected = series[times - 1] * series[times - 12] / series[times - 13] * drift
    np.testing.assert_allclose(model(x).numpy()[:, 0], expected, rtol=1e-4)


@pytest.mark.slow
def test_the_validation_part_picks_log_on_a_multiplicative_series_and_none_on_an_additive_one(tmp_path, cache):
    chosen = {}
    for kind in ("multiplicative", "additive"):
        path = monthly_csv(tmp_path / f"{kind}.csv", multiplicative=kind == "multiplicative")
        task, cfg, splits = splits_of(path, "model.base=seasonal")
        prep = task.fit_preprocessing(cfg, splits)
        tried = {s["transform"]: s["val_mae"] for s in prep.selection}
        assert set(tried) == {"none", "log"} and all(np.isfinite(list(tried.values())))
        assert prep.space["transform"] == min(tried, key=tried.get)
        chosen[kind] = (prep.space["transform"], tried)
    assert chosen["multiplicative"][0] == "log", chosen
    assert chosen["additive"][0] == "none", chosen


def test_what_a_series_cannot_use_is_not_tried_or_is_one_error_line(tmp_path, cache):
    path = monthly_csv(tmp_path / "z.csv", multiplicative=False, shift=-100.0)   # values at and below 0
    task, cfg, splits = splits_of(path)
    y, val_stop = splits.info["series"].y, splits.info["val_stop"]
    assert space.candidates(cfg, y, val_stop, 12, "value") == [("none", "last"), ("none", "seasonal")]
    cfg.data.window = 12                                   # the season does not fit in the window
    assert space.candidates(cfg, y, val_stop, 12, "value") == [("none", "last")]
    cfg.model.transform = "log"
    with pytest.raises(DataError, match="model.transform=log needs a target above 0"):
        space.candidates(cfg, y, val_stop, 12, "value")
    cfg.model.transform, cfg.model.base = "auto", "seasonal"
    with pytest.raises(ConfigError, match="model.base=seasonal needs"):
        space.candidates(cfg, y, val_stop, 12, "value")


@pytest.mark.slow
def test_the_export_answers_raw_windows_like_the_run_and_refuses_a_target_at_or_below_0(tmp_path, cache):
    path = monthly_csv(tmp_path / "m.csv")
    run = seqapps.train("forecasting", str(path), epochs=2, run_dir=tmp_path / "run", verbose=0,
                        overrides=["data.window=24", "data.val_size=12", "data.test_size=12", "model.units=4",
                                   "model.linear=true", "model.transform=log", "model.base=seasonal"])
    predictor = seqapps.load(run.export(tmp_path / "export"))
    assert predictor.metadata["space"]["transform"] == "log"
    task = registry.get("forecasting")
    import keras

    model = keras.models.load_model(run.model_path)
    x, _, _ = task.windows(predictor.prep, task.load_data(run.config).test)
    np.testing.assert_allclose(predictor.predict(x), model(x).numpy(), rtol=1e-5)
    assert run.metrics["test"]["model"]["mae"] < run.metrics["test"]["naive"]["mae"]
    bad = x[:1].copy()
    bad[0, 5, 0] = 0.0
    with pytest.raises(DataError, match="forecasts the log of the target value, so its values in the window must be "
                                        "above 0"):
        predictor.predict(bad)
