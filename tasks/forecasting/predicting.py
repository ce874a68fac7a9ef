"""What a forecaster's predictor says, over any runtime: ``predict(windows)``, ``forecast(frame)`` and the CLI's
lines, from the ``serving_default`` signature's ``forecast``. Imports no TensorFlow, so an ONNX or LiteRT
export answers through it too (:mod:`seqapps.inference.onnx_runtime` finds it as
``tasks.<task>.predicting.Predictions``); :func:`signatures` is that export's ``serving_default``: the
SavedModel's checks of a window, in the same order and words, in NumPy, then the graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seqapps.core import bounds
from seqapps.core.errors import DataError
from tasks.forecasting.data import ForecastingPrep
from tasks.forecasting.inputs import check_windows, last_window, next_dates, read_recent

CHECKS = "window.json"  # beside an ONNX or LiteRT graph: the constants of the SavedModel's checks of a window


class Predictions:
    """``forecast(dataframe)`` -> the next ``horizon`` values after its last row;
    ``predict(windows)`` for already-encoded float windows."""

    @property
    def prep(self) -> ForecastingPrep:
        return ForecastingPrep.from_dict(self.metadata)

    def predict_array(self, windows, batch_size: int = 2048) -> np.ndarray:
        prep = self.prep
        windows = check_windows(windows, prep.window, prep.encoding.features)
        # at most the rows the export takes in one call (metadata "bounds")
        batch_size = max(1, min(batch_size, bounds.of(self.metadata)["rows"]))
        if not len(windows):
            return np.zeros([0, prep.horizon], "float32")
        return np.concatenate([self.call(window=windows[s:s + batch_size])["forecast"]
                               for s in range(0, len(windows), batch_size)])

    def predict(self, windows) -> list[list[float]]:
        """Float windows ``[batch, window, features]`` (encoded inputs, in
        ``metadata["features"]`` order) -> ``horizon`` forecasts each."""
        return self.predict_array(windows).astype(float).tolist()

    def _window(self, frame, where):
        """The last ``window`` rows of ``frame`` (date-ordered when it has dates), encoded; the last date."""
        date_column = self.metadata.get("config", {}).get("data", {}).get("date_column", "")
        return last_window(frame, self.prep, date_column, where)

    def forecast(self, frame) -> list[float]:
        """The next ``horizon`` values of the target after the last row of ``frame``,
        in the target's units. ``frame`` holds at least ``window`` rows of the input
        columns (raw values; a text column as text); extra columns are ignored."""
        values, _ = self._window(frame, "forecast input")
        return self.predict_array(values[None])[0].astype(float).tolist()

    def cli_predict(self, inputs, input_file):
        """``--input recent.csv`` (or a CSV path argument, or CSV on stdin) -> one line
        per future step: date (when known) or step, then the forecast."""
        values, last = self._window(*read_recent(inputs, input_file))
        forecast = self.predict_array(values[None])[0]
        dates = next_dates(last, self.metadata.get("freq"), self.prep.horizon)
        head = f"{'date' if dates else 'step'}\t{self.prep.encoding.target}"
        return [head] + [f"{dates[i] if dates else i + 1}\t{v:.6g}" for i, v in enumerate(forecast)]


FAR = 1e6  # how many training scales from the training mean a window value may be


def window_limits(prep) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` float32 per input: a window value further than ``scale`` from ``mean`` is refused
    (the serving signature's check, and an ONNX or LiteRT export's, :mod:`tasks.forecasting.predicting`)."""
    mean = np.asarray(prep.encoding.mean, "float64")
    scale = FAR * np.maximum.reduce([np.asarray(prep.encoding.std, "float64"), np.abs(mean), np.ones_like(mean)])
    return mean.astype("float32"), scale.astype("float32")


def write_checks(folder: Path, mean, scale, far: float, transform: str, target: str) -> dict:
    """The constants of the SavedModel's window checks (``float32`` as its graph holds them) as :data:`CHECKS`."""
    spec = {"type": "window", "mean": np.asarray(mean, "float32").tolist(),
            "scale": np.asarray(scale, "float32").tolist(), "far": float(far), "transform": transform,
            "target": target}
    (Path(folder) / CHECKS).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return spec


def signatures(path: Path, metadata: dict, sess) -> dict:
    """``serving_default`` of an ONNX or LiteRT export: ``window`` float32 ``[batch, window, features]`` ->
    ``forecast`` float32 ``[batch, horizon]``, refused as the SavedModel refuses (one DataError line):
    more rows than the export's bound, a NaN or inf, a value too far from the training mean, a target value
    <= 0 when the model works on its log or Box-Cox."""
    from seqapps.inference.array_spec import ArraySpec

    spec = json.loads((Path(path) / CHECKS).read_text(encoding="utf-8"))
    mean, scale = np.asarray(spec["mean"], "float32"), np.asarray(spec["scale"], "float32")
    transform, rows = spec["transform"], int(bounds.of(metadata)["rows"])
    steps, features, horizon = int(metadata["window"]), len(metadata["features"]), int(metadata["horizon"])

    def serve(window):
        window = np.ascontiguousarray(window, "float32")
        if len(window) > rows:
            raise DataError(f"window has more than {rows} rows; send at most {rows} in one call")
        if not np.isfinite(window).all():
            raise DataError("the window holds NaN or inf")
        if not (np.abs(window - mean) <= scale).all():
            raise DataError(f"the window holds a value over {spec['far']:g} training scales from the training "
                            "mean; the model cannot forecast from it")
        if transform != "none" and not (window[:, :, 0] > 0).all():
            raise DataError(f"the model forecasts the {transform} of the target {spec['target']}, so its values "
                            "in the window must be above 0")
        if not len(window):
            return {"forecast": np.zeros((0, horizon), np.float32)}
        (forecast,) = sess.run(["forecast"], {"window": window})
        return {"forecast": forecast}

    return {"serving_default": (serve, {"window": ArraySpec("window", "float32", (None, steps, features))})}
