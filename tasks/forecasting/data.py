"""Time series from CSV: dates, numeric and categorical columns, missing values,
chronological splits, leak-free windows, scaling fitted on the training part, and
the naive baselines.

How a CSV becomes a series
--------------------------
* **Dates**: ``date_column`` names the column to parse with pandas; left empty, the
  first of ``year``+``month`` (+ ``day``, ``hour``) component columns, a column called
  date/datetime/time/timestamp/month/day/period/ds, or a first column that parses as
  dates entirely, is used. ``none`` means no dates (steps are numbered). Rows are put in
  date order; a repeated date is an error. Gaps in the dates are kept as they are
  (a step is a row).
* **Inputs**: the target is always the first input. ``features`` adds columns; ``all``
  adds every column except the dates and a row-number column (``No``, ``index``, ``id``).
  Numeric columns are used as they are; a non-numeric input column with at most
  :data:`MAX_CATEGORIES` values (a wind direction...) is one-hot encoded with the
  categories seen in the training part (unseen ones encode as all zeros in the validation and test parts, and are
  an error in a window given to forecast). The target
  must be numeric: a value that is neither a number nor a missing marker is an error.
* **Missing values** (empty, ``NA``, ``NaN``, ``null``, ``?``), by ``missing``:
  ``ffill`` (default) carries the last observed value forward, so an input never looks
  at the future; ``interpolate`` fills numeric gaps linearly (uses the next observed
  value: smoother, but not causal); ``error`` refuses them. Rows before every input
  has its first value are dropped. Windows whose **targets** were missing are left out
  of training and of scoring, so metrics are on observed values only.

Windows
-------
A window for the target time ``t`` holds input rows ``[t - window, t)`` and its targets
are rows ``[t, t + horizon)``. Train, validation and test parts are consecutive
ranges of target times; a window belongs to the part that holds *all* its targets,
so no training target lies at or after a validation or test time, and no window's
inputs reach its own target time. Inputs may come from an earlier part (that is the
past, as in deployment).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from seqapps.data.preprocessing import Preprocessing, save_json
from seqapps.data.sources import Reader, read_pieces, resolve
from seqapps.data.splits import split_sizes
from seqapps.core.errors import ConfigError, DataError
from seqapps.core.task import Splits

NA_STRINGS = {"", "na", "n/a", "nan", "null", "none", "?", "-", "#n/a"}
DATE_NAMES = ["date", "datetime", "time", "timestamp", "month", "day", "period", "ds", "week"]
INDEX_NAMES = {"no", "index", "id", "row", "unnamed: 0"}
DATE_PARTS = ["year", "month", "day", "hour"]
MAX_CATEGORIES = 50
MISSING = ("ffill", "interpolate", "error")


# -- reading -----------------------------------------------------------------------------------
def read_csv(path) -> pd.DataFrame:
    """A CSV as strings (no value converted yet), via the shared table reader."""
    from seqapps.data.readers import read_table

    return read_table(path)


def is_missing(values: pd.Series) -> np.ndarray:
    """True where a raw value is a missing marker (or already NaN)."""
    if _is_number(values):
        return values.isna().to_numpy()
    return values.astype(object).map(lambda v: v is None or (isinstance(v, float) and math.isnan(v))
                      or (isinstance(v, str) and v.strip().lower() in NA_STRINGS)).to_numpy(dtype=bool)


def to_numeric(values: pd.Series, name: str, where) -> pd.Series:
    """Floats, NaN for missing markers; anything else non-numeric is a :class:`DataError`."""
    if _is_number(values):
        return values.astype("float64")
    values = values.astype(object)
    missing = is_missing(values)
    numbers = pd.to_numeric(values.where(~missing, None).map(lambda v: v.strip() if isinstance(v, str) else v),
                            errors="coerce").astype("float64")
    bad = np.flatnonzero(numbers.isna().to_numpy() & ~missing)
    if len(bad):
        i = bad[0]
        raise DataError(f"{where}: column {name!r} line {i + 2}: {values.iloc[i]!r} is not a number "
                        f"({len(bad)} such value{'s' if len(bad) > 1 else ''}); expected numbers or NA")
    return numbers


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def _numeric_or_none(values: pd.Series) -> pd.Series | None:
    try:
        return to_numeric(values, "", "")
    except DataError:
        return None


def find_column(frame: pd.DataFrame, name: str) -> str | None:
    """``name`` as written, else case-insensitively."""
    if name in frame.columns:
        return name
    matches = [c for c in frame.columns if str(c).lower() == name.lower()]
    return matches[0] if matches else None


def parse_dates(frame: pd.DataFrame, date_column: str, where) -> tuple[pd.DatetimeIndex | None, list[str]]:
    """The dates of ``frame`` and the columns they were read from (see the module notes)."""
    if date_column.lower() == "none":
        return None, []
    if date_column:
        column = find_column(frame, date_column)
        if column is None:
            raise DataError(f"{where}: no date column {date_column!r}; columns are: {', '.join(frame.columns)}")
        return _to_dates(frame[column], column, where), [column]
    parts = {p: find_column(frame, p) for p in DATE_PARTS}
    if parts["year"] and parts["month"]:
        used = [parts[p] for p in DATE_PARTS if parts[p]]
        numbers = {p: to_numeric(frame[parts[p]], parts[p], where) for p in DATE_PARTS if parts[p]}
        if not any(n.isna().any() for n in numbers.values()):
            pieces = pd.DataFrame({p: n.astype(int) for p, n in numbers.items()})
            if "day" not in pieces:
                pieces["day"] = 1
            try:
                return pd.DatetimeIndex(pd.to_datetime(pieces)), used
            except (ValueError, OverflowError) as e:
                raise DataError(f"{where}: cannot build dates from columns {', '.join(used)}: {e}") from None
    for name in DATE_NAMES:
        column = find_column(frame, name)
        if column is not None and _numeric_or_none(frame[column]) is None:
            return _to_dates(frame[column], column, where), [column]
    first = frame.columns[0]
    if not _is_number(frame[first]) and _numeric_or_none(frame[first]) is None:
        try:
            return _to_dates(frame[first], first, where), [first]
        except DataError:
            pass
    return None, []


def _to_dates(values: pd.Series, column: str, where) -> pd.DatetimeIndex:
    try:
        dates = pd.to_datetime(values.astype(str).str.strip(), errors="raise", format="mixed")
    except (ValueError, TypeError, OverflowError) as e:
        raise DataError(f"{where}: column {column!r} does not hold dates pandas can parse "
                        f"({str(e).splitlines()[0][:120]}); set data.date_column (or none)") from None
    return pd.DatetimeIndex(dates)


def infer_freq(dates: pd.DatetimeIndex | None) -> str | None:
    """A pandas frequency alias for regular dates (``MS``, ``D``, ``h``...), else None."""
    if dates is None or len(dates) < 3:
        return None
    try:
        return pd.infer_freq(dates[-min(len(dates), 500):])
    except (TypeError, ValueError):
        return None


def infer_season(dates: pd.DatetimeIndex | None) -> int:
    """The seasonal period in steps, from the typical spacing of the dates.

    Hourly -> 24, daily -> 365 when the series spans at least two years (else 7),
    weekly -> 52, monthly -> 12, quarterly -> 4; otherwise 1 (no season).
    """
    if dates is None or len(dates) < 3:
        return 1
    step = pd.Series(dates).diff().dropna().median()
    hours = step / pd.Timedelta(hours=1)
    days = hours / 24
    if 0.9 <= hours <= 1.1:
        return 24
    if 0.9 <= days <= 1.1:
        return 365 if len(dates) >= 2 * 365 else 7
    if 6.5 <= days <= 7.5:
        return 52
    if 27 <= days <= 32:
        return 12
    if 88 <= days <= 93:
        return 4
    return 1


# -- a prepared series -------------------------------------------------------------------------
@dataclasses.dataclass
class Series:
    """Inputs ready for windowing: ``frame`` (target first; numeric columns as float,
    categorical ones as str, no gaps), ``observed`` (where the target was really measured)."""

    frame: pd.DataFrame
    target: str
    observed: np.ndarray
    dates: pd.DatetimeIndex | None
    freq: str | None
    date_columns: list[str]
    dropped_rows: int = 0
    filled: dict = dataclasses.field(default_factory=dict)   # column -> values filled

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def y(self) -> np.ndarray:
        return self.frame[self.target].to_numpy(dtype="float64")


def pick_target(frame: pd.DataFrame, target: str, date_columns: list[str], where) -> str:
    if target:
        column = find_column(frame, target)
        if column is None:
            raise DataError(f"{where}: no target column {target!r}; columns are: {', '.join(frame.columns)}")
        return column
    candidates = [c for c in frame.columns if c not in date_columns and str(c).lower() not in INDEX_NAMES]
    if len(candidates) == 1:
        return candidates[0]
    numeric = [c for c in candidates if _numeric_or_none(frame[c]) is not None]
    if len(numeric) == 1:
        return numeric[0]
    raise DataError(f"{where}: cannot tell which column to forecast; set data.target "
                    f"(columns are: {', '.join(frame.columns)})")


def pick_features(frame: pd.DataFrame, target: str, features, date_columns: list[str], where) -> list[str]:
    """The input columns, target first."""
    wanted = [f for f in (features or []) if f]
    if [w.lower() for w in wanted] == ["all"]:
        chosen = [c for c in frame.columns if c not in date_columns and str(c).lower() not in INDEX_NAMES]
    else:
        chosen = []
        for name in wanted:
            column = find_column(frame, name)
            if column is None:
                raise DataError(f"{where}: no input column {name!r} (data.features); "
                                f"columns are: {', '.join(frame.columns)}")
            chosen.append(column)
    return [target] + [c for c in dict.fromkeys(chosen) if c != target]


def _column_values(raw: pd.DataFrame, column: str, is_target: bool, where) -> pd.Series:
    """One input column as numbers, or (an input that is not numeric) as category strings."""
    numbers = to_numeric(raw[column], column, where) if is_target else _numeric_or_none(raw[column])
    if numbers is None:
        values = raw[column].astype(str).str.strip()
        values = values.where(~is_missing(raw[column]), None)
        n = values.dropna().nunique()
        if n > MAX_CATEGORIES:
            raise DataError(f"{where}: input column {column!r} is neither numeric nor categorical "
                            f"({n} distinct text values, at most {MAX_CATEGORIES} are one-hot encoded)")
        return values.astype(object)
    if np.isinf(numbers.to_numpy()).any():
        i = int(np.flatnonzero(np.isinf(numbers.to_numpy()))[0])
        raise DataError(f"{where}: column {column!r} line {i + 2} is infinite; expected finite numbers")
    return numbers


def prepare(raw: pd.DataFrame, *, target: str = "", features=(), date_column: str = "", missing: str = "ffill",
            where="data") -> Series:
    """Turn a CSV's rows (strings) into a :class:`Series` (see the module notes)."""
    if missing not in MISSING:
        raise ConfigError(f"data.missing must be one of {', '.join(MISSING)}, got {missing!r}")
    if raw.empty:
        raise DataError(f"{where}: no data rows")
    dates, date_columns = parse_dates(raw, date_column, where)
    if dates is not None:
        if dates.has_duplicates:
            dup = dates[dates.duplicated()][0]
            raise DataError(f"{where}: the date {dup} appears more than once; expected one row per time step")
        if not dates.is_monotonic_increasing:
            order = np.argsort(dates.to_numpy(), kind="stable")
            raw, dates = raw.iloc[order].reset_index(drop=True), dates[order]
    target = pick_target(raw, target, date_columns, where)
    columns = pick_features(raw, target, features, date_columns, where)

    frame = pd.DataFrame({column: _column_values(raw, column, column == target, where) for column in columns})
    observed = frame[target].notna().to_numpy()
    if not observed.any():
        raise DataError(f"{where}: the target column {target!r} has no values")

    gaps = {c: int(frame[c].isna().sum()) for c in columns if frame[c].isna().any()}
    if gaps and missing == "error":
        column = next(iter(gaps))
        line = int(np.flatnonzero(frame[column].isna().to_numpy())[0]) + 2
        raise DataError(f"{where}: column {column!r} has {gaps[column]} missing value(s), first on line {line}; "
                        "set data.missing=ffill or interpolate to fill them")
    first_valid = max(int(frame[c].notna().to_numpy().argmax()) for c in columns)
    if not all(frame[c].notna().any() for c in columns):
        empty = [c for c in columns if not frame[c].notna().any()][0]
        raise DataError(f"{where}: input column {empty!r} has no values")
    for column in columns:
        if missing == "interpolate" and _is_number(frame[column]):
            frame[column] = frame[column].interpolate(method="linear", limit_area="inside")
        frame[column] = frame[column].ffill()
    frame = frame.iloc[first_valid:].reset_index(drop=True)
    observed = observed[first_valid:]
    if dates is not None:
        dates = dates[first_valid:]
        frame.index = dates
    return Series(frame, target, observed, dates, infer_freq(dates), date_columns, first_valid, gaps)


# -- splits and windows ------------------------------------------------------------------------
@dataclasses.dataclass
class SeriesSplit:
    """One part of a series: windows whose targets all lie in ``[start, stop)``."""

    series: Series
    start: int
    stop: int
    name: str
    window: int
    horizon: int
    season: int
    mase_scale: float

    def times(self) -> np.ndarray:
        return window_times(self.series.observed, self.start, self.stop, self.window, self.horizon)

    def __len__(self) -> int:
        return len(self.times())


def split_points(n: int, *, window: int, horizon: int, val_size: int = 0, test_size: int = 0,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, where="data") -> tuple[int, int]:
    """``(train_stop, val_stop)``: train targets ``[window, train_stop)``, validation
    ``[train_stop, val_stop)``, test ``[val_stop, n)``. Sizes are in steps; ``0``
    takes the fraction of the series."""
    if window < 1 or horizon < 1:
        raise ConfigError(f"data.window and data.horizon must be >= 1, got {window} and {horizon}")
    _, n_val, n_test = split_sizes(n, 0.0 if val_size else val_fraction, 0.0 if test_size else test_fraction,
                                   where, "steps")
    n_test, n_val = test_size or n_test, val_size or n_val
    train_stop = n - n_test - n_val
    if train_stop - window < horizon:
        raise DataError(f"{where}: data.window={window} is too long for this series: {n} steps, of which "
                        f"{max(train_stop, 0)} train (after {n_val} validation and {n_test} test steps); "
                        f"expected window + horizon <= {max(train_stop, 0)}")
    if n_val and n_val < horizon or n_test and n_test < horizon:
        raise DataError(f"{where}: the validation ({n_val}) and test ({n_test}) parts must each hold at least "
                        f"data.horizon={horizon} steps")
    return train_stop, train_stop + n_val


def window_times(observed: np.ndarray, start: int, stop: int, window: int, horizon: int) -> np.ndarray:
    """Target start times ``t`` in ``[start, stop - horizon]`` with ``t >= window`` whose
    ``horizon`` targets were all observed."""
    first = max(start, window)
    last = stop - horizon
    if last < first:
        return np.zeros([0], dtype=np.int64)
    times = np.arange(first, last + 1)
    ok = np.ones(len(times), dtype=bool)
    for h in range(horizon):
        ok &= observed[times + h]
    return times[ok]


def make_windows(values: np.ndarray, y: np.ndarray, times: np.ndarray, window: int, horizon: int):
    """``x[i] = values[t - window:t]``, ``targets[i] = y[t:t + horizon]`` for each ``t`` in ``times``."""
    times = np.asarray(times, dtype=np.int64)
    x = values[times[:, None] + np.arange(-window, 0)[None, :]]
    targets = y[times[:, None] + np.arange(horizon)[None, :]]
    return x, targets


def naive_forecast(y: np.ndarray, times: np.ndarray, horizon: int) -> np.ndarray:
    """The last value before ``t``, repeated for every step ahead."""
    return np.repeat(y[np.asarray(times) - 1][:, None], horizon, axis=1)


def seasonal_naive_forecast(y: np.ndarray, times: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The value one season before each target time, taken from before ``t``:
    ``y[t + h - season * ceil((h + 1) / season)]`` for step ``h`` (0-based)."""
    times = np.asarray(times)
    h = np.arange(horizon)
    lag = season * np.ceil((h + 1) / season).astype(int)
    idx = times[:, None] + h[None, :] - lag[None, :]
    if len(idx) and idx.min() < 0:
        raise DataError(f"the seasonal-naive baseline needs {int(lag.max())} steps of history before the first "
                        f"scored time; lower data.season or score later times")
    return y[idx]


def mase_scale(y: np.ndarray, observed: np.ndarray, stop: int, season: int) -> float:
    """Mean absolute seasonal difference on the training part: the MASE denominator."""
    m = season if stop > season + 1 else 1
    a, b = np.arange(m, stop), np.arange(0, stop - m)
    ok = observed[a] & observed[b]
    diffs = np.abs(y[a][ok] - y[b][ok])
    return float(diffs.mean()) if len(diffs) and diffs.mean() > 0 else float("nan")


# -- encoding and scaling ----------------------------------------------------------------------
@dataclasses.dataclass
class Encoding:
    """Columns -> float inputs (one-hot for categories), and the scaling fitted on the
    training part. ``features`` names the encoded inputs in order (``cbwd=NE``...)."""

    target: str
    columns: list[dict]       # {"name", "kind": numeric|categorical, "categories"?}
    mean: list[float]
    std: list[float]

    @property
    def features(self) -> list[str]:
        out = []
        for c in self.columns:
            out += [c["name"]] if c["kind"] == "numeric" else [f"{c['name']}={v}" for v in c["categories"]]
        return out

    @property
    def target_mean(self) -> float:
        return self.mean[0]

    @property
    def target_std(self) -> float:
        return self.std[0]

    @classmethod
    def fit(cls, frame: pd.DataFrame, target: str) -> "Encoding":
        """Categories and mean/std from ``frame`` (the training rows only)."""
        columns = []
        for name in frame.columns:
            if not _is_number(frame[name]):
                columns.append({"name": name, "kind": "categorical",
                                "categories": sorted(frame[name].dropna().unique().tolist())})
            else:
                columns.append({"name": name, "kind": "numeric"})
        enc = cls(target, columns, [], [])
        values = enc.encode(frame, where="training part", check=False)
        mean, std = values.mean(axis=0), values.std(axis=0)
        std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        enc.mean, enc.std = [float(v) for v in mean], [float(v) for v in std]
        return enc

    def encode(self, frame: pd.DataFrame, where="data", check: bool = True, unseen_ok: bool = True) -> np.ndarray:
        """float32 ``[rows, features]``; with ``check``, a missing or non-finite value is an error;
        without ``unseen_ok``, so is a category the training part did not have (else all zeros)."""
        blocks = []
        for c in self.columns:
            column = find_column(frame, c["name"]) if c["name"] not in frame.columns else c["name"]
            if column is None:
                raise DataError(f"{where}: no column {c['name']!r}; the model reads: "
                                f"{', '.join(x['name'] for x in self.columns)}")
            if c["kind"] == "numeric":
                values = to_numeric(frame[column].reset_index(drop=True), column, where).to_numpy()[:, None]
            else:
                raw = frame[column].reset_index(drop=True)
                missing = is_missing(raw)
                text = raw.astype(str).str.strip().to_numpy()
                unseen = sorted(set(text[~missing]) - set(map(str, c["categories"])))
                if unseen and not unseen_ok:
                    raise DataError(f"{where}: column {column!r} has {unseen[:3]}, not among the categories the "
                                    f"model was trained with ({', '.join(map(str, c['categories'][:10]))})")
                values = np.stack([(text == v) & ~missing for v in c["categories"]], axis=1).astype("float64")
                values[missing] = np.nan
            if check and not np.isfinite(values).all():
                i = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
                raise DataError(f"{where}: column {column!r} row {i + 1} of the window is missing or not finite; "
                                "expected a value in every row (fill the gap first)")
            blocks.append(values)
        return np.concatenate(blocks, axis=1).astype("float32")

    def scale(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, "float64") - np.asarray(self.mean)) / np.asarray(self.std)

    def unscale_target(self, scaled: np.ndarray) -> np.ndarray:
        return np.asarray(scaled, "float64") * self.target_std + self.target_mean

    def to_dict(self) -> dict:
        return {"target": self.target, "columns": self.columns, "features": self.features,
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict) -> "Encoding":
        return cls(data["target"], data["columns"], list(data["mean"]), list(data["std"]))


# -- loading a forecasting source -----------------------------------------------------------------
DEMO_DEFAULTS = {"target": "load", "features": ["all"]}   # what the demo series means when unset


def series_reader() -> Reader:
    """Demo rows or one CSV file (a folder holding exactly one); no TFDS source."""
    def demo(cfg):
        from tasks.forecasting.demo import frame as demo_frame

        return demo_frame().astype(str)

    def read(path, cfg, options):
        path = Path(path)
        if path.is_dir():
            csvs = sorted(path.glob("*.csv"))
            if len(csvs) != 1:
                raise DataError(f"{path}: a folder; expected one CSV file (found {len(csvs)})")
            path = csvs[0]
        return read_csv(path)

    return Reader(demo, read, None, (), unit="steps")


def _source_path(source) -> str:
    return "demo" if source.kind == "demo" else str(next(iter(source.paths.values())))


def load_series_splits(data_cfg, task: str, data_dir=None) -> Splits:
    """Chronological train / validation / test parts of one series (:func:`split_points`).
    Sets ``data_cfg.target`` (and ``features``, when empty) to what the series resolved to."""
    d = data_cfg
    source = resolve(d.source, task, data_dir)
    if source.kind == "tfds":
        raise DataError(f"{source.spec}: the {task} task reads CSV files; expected demo, a named dataset or a path")
    raw, where = read_pieces(d, source, series_reader())["all"], _source_path(source)
    defaults = DEMO_DEFAULTS if source.kind == "demo" else source.options
    d.target = d.target or defaults.get("target", "")
    d.features = list(d.features or defaults.get("features", []))
    series = prepare(raw, target=d.target, features=d.features, date_column=d.date_column, missing=d.missing,
                     where=where)
    d.target = series.target   # the resolved config names the column it picked
    season = d.season or infer_season(series.dates)
    if season < 1:
        raise DataError(f"data.season must be >= 1 (or 0 to infer it), got {season}")
    train_stop, val_stop = split_points(len(series), window=d.window, horizon=d.horizon, val_size=d.val_size,
                                        test_size=d.test_size, val_fraction=d.val_fraction,
                                        test_fraction=d.test_fraction, where=where)
    scale = mase_scale(series.y, series.observed, train_stop, season)
    part = lambda a, b, name: SeriesSplit(series, a, b, name, d.window, d.horizon, season, scale)  # noqa: E731
    splits = Splits(part(0, train_stop, "train"), part(train_stop, val_stop, "val") if val_stop > train_stop
                    else None, part(val_stop, len(series), "test") if len(series) > val_stop else None,
                    info={"series": series, "season": season, "train_stop": train_stop, "val_stop": val_stop})
    for split_part in (splits.train, splits.val):
        if split_part is not None and not len(split_part):
            raise DataError(f"{where}: no {split_part.name} window has all {d.horizon} target(s) observed; "
                            "lower data.window or data.horizon, or change data.val_size")
    if splits.val is None:
        raise DataError(f"{where}: no validation part; set data.val_size or data.val_fraction above 0")
    return splits


@dataclasses.dataclass
class ForecastingPrep(Preprocessing):
    """What training fitted: the column encoding and scaling, and the window shape (``series.json``)."""

    encoding: Encoding
    window: int
    horizon: int
    season: int
    freq: str | None
    FILE = "series.json"
    task = "forecasting"

    @classmethod
    def fit(cls, cfg, splits) -> "ForecastingPrep":
        series = splits.info["series"]
        encoding = Encoding.fit(series.frame.iloc[:splits.info["train_stop"]], series.target)
        return cls(encoding, cfg.data.window, cfg.data.horizon, splits.info["season"], series.freq)

    def to_dict(self) -> dict:
        return {"encoding": self.encoding.to_dict(), "window": self.window, "horizon": self.horizon,
                "season": self.season, "freq": self.freq}

    def save(self, run_dir) -> None:
        save_json(run_dir, self.FILE, self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "ForecastingPrep":
        return cls(Encoding.from_dict(d["encoding"]), int(d["window"]), int(d["horizon"]), int(d["season"]),
                   d.get("freq"))

    @classmethod
    def load(cls, run_dir, cfg=None) -> "ForecastingPrep":
        return cls.from_dict(cls.read_json(run_dir, cls.FILE))
