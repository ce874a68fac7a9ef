"""forecasting — many-to-one regression: a window of past steps in, the next values out.

A window ``[batch, window, features]`` of raw values -> the target's transform (``none``,
``log``, Box-Cox) -> standardization (mean and std fitted on the training part only, stored
in the model) -> the shared recurrent stack (with ``model.linear``, a linear autoregressive
component beside it, as LSTNet's) -> a dense head for ``horizon`` steps. With
``model.residual`` (default) the head predicts the change from a base forecast and starts
at zero, so an untrained model is exactly that base: the last value (the naive forecast) or,
for a seasonal series, the last value plus the change one season ago, where the network reads
the window's seasonal differences. The transform and the base are chosen per series on the
validation part (``model.transform=auto``, ``model.base=auto``; :mod:`tasks.forecasting.space`).
The output is mapped back to the target's original units inside the model, so the export
takes raw values and returns forecasts in the original units. CSV parsing, missing values,
splits and windows are in :mod:`tasks.forecasting.data`.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqapps.core.config import AT_LEAST_0, AT_LEAST_1, Config, DataConfig, ModelConfig, TrainConfig
from tasks.forecasting import data as ts
from tasks.forecasting import fitting
from tasks.forecasting import space as spaces
from tasks.forecasting.layers import TRANSFORMS, SeasonalBase, SeasonalDifference, TargetTransform
from tasks.forecasting.data import ForecastingPrep
from seqapps.core.errors import DataError
from seqapps.layers import recurrent_stack
from tasks.forecasting.predicting import FAR, Predictions, window_limits
from seqapps.analysis.metrics import forecast_report, format_forecast
from seqapps.inference.predictor import Predictor
from seqapps.core.presets import Preset
from seqapps.core.registry import register
from seqapps.inference import checks
from seqapps.core.task import Endpoint, Task

EVAL_WINDOWS = 8192   # windows read and forecast at a time when scoring


@dataclasses.dataclass
class ForecastingData(DataConfig):
    target: str = ""            # the column to forecast; empty: the only numeric column
    features: list[str] = dataclasses.field(default_factory=list)  # extra inputs; "all": every column
    date_column: str = ""       # empty: detected; "none": no dates
    missing: str = "ffill"      # ffill | interpolate | error (see tasks.forecasting.data)
    window: int = 24            # past steps the model reads
    horizon: int = 1            # future steps it forecasts
    season: int = 0             # seasonal period in steps (seasonal-naive, MASE); 0: from the dates
    val_size: int = 0           # steps; 0: data.val_fraction of the series
    test_size: int = 0          # steps; 0: data.test_fraction of the series


@dataclasses.dataclass
class ForecastingModel(ModelConfig):
    units: int = 64
    bidirectional: bool = False
    residual: bool = True       # predict the change from a base forecast (model.base)
    transform: str = "auto"     # auto | none | log | boxcox: the target's transform inside the model
    base: str = "auto"          # auto | last | seasonal: the forecast the network corrects
    linear: bool = False        # a linear autoregressive component over the window beside the network


@dataclasses.dataclass
class ForecastingTrain(TrainConfig):
    epochs: int = 30
    batch_size: int = 64
    patience: int = 5


@dataclasses.dataclass
class ForecastingConfig(Config):
    data: ForecastingData = dataclasses.field(default_factory=ForecastingData)
    model: ForecastingModel = dataclasses.field(default_factory=ForecastingModel)
    train: ForecastingTrain = dataclasses.field(default_factory=ForecastingTrain)


class ForecastingPredictor(Predictions, Predictor):
    """``forecast(dataframe)`` and ``predict(windows)`` (:class:`tasks.forecasting.predicting.Predictions`,
    shared with the ONNX and LiteRT predictors)."""


@register
class Forecasting(Task):
    name = "forecasting"
    topology = "many-to-one (regression)"
    description = "window of a time series -> the next values"
    default_data = "airline_passengers"
    config_class = ForecastingConfig
    monitor, monitor_mode = "val_loss", "min"
    predictor_class = ForecastingPredictor
    prep_class = ForecastingPrep
    unused = {"data.max_length": "its inputs are data.window steps",
              "data.fit_sample": "the fitting pass reads every row to write the rows file"}
    ranges = {"data.window": AT_LEAST_1, "data.horizon": AT_LEAST_1, "data.season": AT_LEAST_0,
              "data.val_size": AT_LEAST_0, "data.test_size": AT_LEAST_0}
    choices = {"data.missing": ts.MISSING, "model.transform": ("auto", *TRANSFORMS),
               "model.base": ("auto", *spaces.BASES)}
    presets = (  # the benchmark protocol of each series: its test span, a window of one season, a budget
        Preset("airline", "last 24 months test, 36-month windows, GRU 16 and a linear component, up to 150 epochs",
               ("data.window=36", "data.horizon=1", "data.test_size=24", "data.val_size=12", "data.season=12",
                "model.cell=gru", "model.units=16", "model.linear=true", "train.epochs=150", "train.batch_size=16",
                "train.patience=15"),
               data="airline_passengers"),
        Preset("temperatures", "last 365 days test, 30-day windows, up to 40 epochs",
               ("data.window=30", "data.horizon=1", "data.test_size=365", "data.val_size=365", "data.season=365",
                "train.epochs=40", "train.batch_size=64", "train.patience=6"), data="daily_min_temperatures"),
        Preset("pollution", "next hour's pm2.5 from 24 hours of all variables, last 20% test",
               ("data.target=pm2.5", "data.features=all", "data.window=24", "data.horizon=1",
                "data.test_fraction=0.2", "data.val_fraction=0.1", "data.season=24", "train.epochs=20",
                "train.batch_size=128", "train.patience=4"), data="pollution"),
    )

    # -- data ------------------------------------------------------------------------------
    def load_data(self, cfg, data_dir=None):
        return fitting.load_series_splits(cfg.data, self.name, data_dir)

    def fit_preprocessing(self, cfg, splits):
        """The encoding, and the target space chosen on the validation part (:func:`spaces.choose`)."""
        return spaces.choose(self, cfg, ForecastingPrep.fit(cfg, splits), splits)

    def windows(self, prep, split):
        """Encoded windows and targets of ``split``, read whole (scoring, tests): ``(x, y, times)``."""
        return split.windows(prep.encoding)

    def datasets(self, cfg, prep, splits):
        """Windows read from the fitting pass's rows file batch by batch (:func:`ts.window_dataset`):
        the training part shuffled (whole up to ``data.shuffle_buffer`` windows), validation in order."""
        make = functools.partial(ts.window_dataset, encoding=prep.encoding, batch_size=cfg.train.batch_size,
                                 seed=cfg.train.seed, buffer=cfg.data.shuffle_buffer)
        return make(splits.train, shuffle=True), make(splits.val, shuffle=False)

    # -- model -----------------------------------------------------------------------------
    def build_model(self, cfg, prep):
        m, enc, space = cfg.model, prep.encoding, spaces.space_of(prep)
        n = len(enc.features)
        window = keras.Input(shape=(prep.window, n), name="window")
        if space.plain:  # the target as it is, the last value as base
            x = keras.layers.Normalization(mean=enc.mean, variance=np.square(enc.std).tolist(), name="scale_inputs",
                                         dtype="float32")(window)
        else:
            z = TargetTransform(space.transform, space.lam, name="transform", dtype="float32")(window[:, :, 0])
            if space.base == "seasonal":
                level = SeasonalDifference(prep.season, space.diff_mean, space.diff_std, name="differences",
                                           dtype="float32")(z)
            else:
                level = keras.layers.Rescaling(1.0 / space.std, offset=-space.mean / space.std, name="scale_target",
                                               dtype="float32")(z)
            x = keras.ops.expand_dims(level, -1)
            if n > 1:
                rest = keras.layers.Normalization(mean=enc.mean[1:], variance=np.square(enc.std[1:]).tolist(),
                                                  name="scale_inputs", dtype="float32")(window[:, :, 1:])
                x = keras.layers.Concatenate(name="inputs")([x, rest])
        h = recurrent_stack(x, m, name="encoder")
        init = "zeros" if m.residual else "glorot_uniform"
        out = keras.layers.Dense(prep.horizon, kernel_initializer=init, dtype="float32", name="head")(h)
        if m.linear:  # an autoregressive component: a linear map of the scaled window, starting at zero
            flat = keras.layers.Flatten(name="flat_window")(x)
            out = out + keras.layers.Dense(prep.horizon, kernel_initializer="zeros", dtype="float32",
                                           name="linear")(flat)
        if space.plain:
            if m.residual:
                out = out + keras.ops.cast(x[:, -1, :1], "float32")   # the last target value, scaled
            out = keras.layers.Rescaling(enc.target_std, offset=enc.target_mean, dtype="float32", name="unscale")(out)
            return keras.Model(window, out, name="forecasting")
        if not m.residual:
            z_hat = keras.layers.Rescaling(space.std, offset=space.mean, dtype="float32", name="unscale")(out)
        elif space.base == "seasonal":
            base = SeasonalBase(prep.season, prep.horizon, space.diff_mean, name="seasonal_base", dtype="float32")(z)
            z_hat = base + keras.layers.Rescaling(space.diff_std, dtype="float32", name="unscale")(out)
        else:
            z_hat = z[:, -1:] + keras.layers.Rescaling(space.std, dtype="float32", name="unscale")(out)
        out = TargetTransform(space.transform, space.lam, inverse=True, name="untransform", dtype="float32")(z_hat)
        return keras.Model(window, out, name="forecasting")

    def compile(self, model, cfg, optimizer, prep):
        # The loss is the MSE in standardized units (weighted by 1 / target variance), so
        # its size and the gradient clipping do not depend on the target's units; MAE is
        # reported in the original units.
        std = float(prep.encoding.target_std)
        model.compile(optimizer=optimizer, loss="mse", loss_weights=1.0 / std ** 2, metrics=["mae"])

    # -- serving and scoring -----------------------------------------------------------------
    def endpoints(self, model, prep, cfg):
        # a value this many training scales from the training mean is refused: the network's arithmetic
        # overflows long before (3e38 everywhere answered NaN)
        mean, scale = (tf.constant(v, tf.float32) for v in window_limits(prep))
        transform = spaces.space_of(prep).transform

        def serve(window):
            window = checks.shaped(window, "window", [None, prep.window, len(prep.encoding.features)])
            window = checks.require(window, checks.finite(window), "the window holds NaN or inf")
            window = checks.require(window, tf.reduce_all(tf.abs(window - mean) <= scale),
                                    f"the window holds a value over {FAR:g} training scales from the training "
                                    "mean; the model cannot forecast from it")
            if transform != "none":
                window = checks.require(window, tf.reduce_all(window[:, :, 0] > 0),
                                        f"the model forecasts the {transform} of the target "
                                        f"{prep.encoding.target}, so its values in the window must be above 0")
            return {"forecast": model(window, training=False)}

        spec = tf.TensorSpec([None, prep.window, len(prep.encoding.features)], tf.float32, name="window")
        return {"serving_default": Endpoint(
            serve, [spec], f"window: raw values [batch, {prep.window}, features] in the order of metadata "
                           f"'features' -> forecast [batch, {prep.horizon}] in the target's units; another shape, a NaN/inf "
                           "value or one over 1e6 training scales from the training mean"
                           + (", or a target value <= 0 (the model works on its " + transform + ")"
                              if transform != "none" else "") + " fails the call with 'invalid input: ...'")}

    def metadata(self, prep):
        return {**prep.to_dict(), "target": prep.encoding.target, "features": prep.encoding.features}

    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        split = examples
        prep = predictor.prep
        times = split.times()
        if not len(times):
            raise DataError(f"the {split.name} part has no window with observed targets")
        series, season = split.series, split.season
        columns = series.columns_for(prep.encoding)
        y, forecast = [], []
        for s in range(0, len(times), EVAL_WINDOWS):  # windows read and forecast a slice at a time
            x, y_part = series.windows(times[s:s + EVAL_WINDOWS], prep.window, prep.horizon, columns)
            forecast.append(predictor.predict_array(x))
            y.append(y_part)
        y, forecast = np.concatenate(y), np.concatenate(forecast)
        history = series.y
        baselines = {"naive": ts.naive_forecast(history, times, prep.horizon)}
        if times.min() - season * int(np.ceil(prep.horizon / season)) >= 0:
            baselines["seasonal_naive"] = ts.seasonal_naive_forecast(history, times, prep.horizon, season)
        del history
        metrics = forecast_report(y, {"model": forecast, **baselines}, split.mase_scale, split=split.name,
                                  windows=int(len(times)), horizon=prep.horizon, season=season, target=series.target)
        if out_dir is not None:
            from seqapps.analysis.plots import plot_forecast

            out = Path(out_dir) / f"forecast-{split.name}.png"
            axis = series.dates_at(times) if series.has_dates else times
            step = "" if prep.horizon == 1 else " (1 step ahead)"
            plot_forecast(axis, y[:, 0], {"seqapps": forecast[:, 0], **{k: v[:, 0] for k, v in baselines.items()}},
                          out, title=f"{series.target}: {split.name} part{step}", ylabel=series.target)
            metrics["plot"] = str(out)
        return metrics

    def format_metrics(self, metrics):
        return format_forecast(metrics)

    tiny_overrides = ["model.units=8", "data.window=12", "data.horizon=2", "train.epochs=1"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        enc = metadata["encoding"]
        mean, std = np.asarray(enc["mean"], "float32"), np.asarray(enc["std"], "float32")
        spread = rng.choice([0.1, 1.0, 5.0], size=(n, 1, 1))   # near the training values, and far from them
        shape = (n, int(metadata["window"]), len(enc["features"]))
        windows = mean + std * spread * rng.standard_normal(shape).astype("float32")
        if (metadata.get("space") or {}).get("transform", "none") != "none":  # a transformed target is above 0
            windows[..., 0] = np.abs(windows[..., 0]) + 1e-3 * max(float(std[0]), 1.0)
        return [{"window": w.astype("float32")} for w in windows]
