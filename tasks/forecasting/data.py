"""Time series from CSV files of any size: dates, numeric and categorical columns, missing
values, chronological splits, leak-free windows, scaling fitted on the training part, and the
naive baselines.

How a CSV becomes a series
--------------------------
* **Dates**: ``date_column`` names the column to parse with pandas; left empty, the
  first of ``year``+``month`` (+ ``day``, ``hour``) component columns, a column called
  date/datetime/time/timestamp/month/day/period/ds, or a first column that parses as
  dates, is used (decided on the first rows of a file). ``none`` means no dates
  (steps are numbered). Rows are put in date order; a repeated date is an error. Gaps in
  the dates are kept as they are (a step is a row).
* **Inputs**: the target is always the first input. ``features`` adds columns; ``all``
  adds every column except the dates and a row-number column (``No``, ``index``, ``id``).
  Numeric columns are used as they are; a non-numeric input column with at most
  :data:`MAX_CATEGORIES` values (a wind direction...) is one-hot encoded with the
  categories seen in the training part (unseen ones encode as all zeros in the validation
  and test parts, and are an error in a window given to forecast). The target must be
  numeric: a value that is neither a number nor a missing marker is a bad row, named by
  file and line (``data.skip_bad_rows=true`` skips and counts such rows).
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

Files of any size
-----------------
A file is never read whole. One cached pass (:mod:`tasks.forecasting.fitting`, through
:func:`seqapps.data.streaming.fitting_pass`, keyed by the file's size and modification time and
the settings that shape it) reads the CSV once and writes it as flat binary files in the cache
folder (as nanoGPT's ``train.bin``): the encoded inputs (``float32 [rows, features]``, every
category of the file one-hot, before scaling), the target, where it was observed and the dates;
it fits what the training part fixes (the categories it holds, the mean and standard deviation
of every input). A :class:`Series` reads those files through ``np.memmap`` when asked, and
:func:`window_dataset` cuts training and validation windows from them batch by batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from seqapps.core.errors import ConfigError, DataError
from seqapps.data.preprocessing import Preprocessing, save_json
from seqapps.data.splits import split_sizes

NA_STRINGS = {"", "na", "n/a", "nan", "null", "none", "?", "-", "#n/a"}
DATE_NAMES = ["date", "datetime", "time", "timestamp", "month", "day", "period", "ds", "week"]
INDEX_NAMES = {"no", "index", "id", "row", "unnamed: 0"}
DATE_PARTS = ["year", "month", "day", "hour"]
MAX_CATEGORIES = 50
MISSING = ("ffill", "interpolate", "error")

SCAN_ROWS = 1 << 18      # where the target was observed, read this many rows at a time
BLOCK = 4096             # consecutive window times read together (training shuffles blocks, then windows)


# -- raw values (shared by the fitting pass and the predictor's encoding) ----------------------------
def is_missing(values: pd.Series) -> np.ndarray:
    """True where a raw value is a missing marker (or already NaN)."""
    if _is_number(values):
        return values.isna().to_numpy()
    raw = values.to_numpy(dtype=object)
    try:  # text (as read from a file): one comprehension
        return np.array([v.strip().lower() in NA_STRINGS for v in raw], dtype=bool).reshape(len(raw))
    except AttributeError:
        pass
    return np.fromiter((v is None or (isinstance(v, float) and math.isnan(v))
                        or (isinstance(v, str) and v.strip().lower() in NA_STRINGS) for v in values),
                       dtype=bool, count=len(values))


def parse_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(numbers, missing)``: floats (NaN for missing markers and for values that are not numbers)
    and where the value was a missing marker; a NaN that is not missing was not a number.

    Text that Python's ``float`` reads whole (ASCII, no ``_``, no NaN) is converted at once; other
    text as ``pd.to_numeric`` reads it, value by value."""
    if _is_number(values):
        return values.to_numpy("float64"), values.isna().to_numpy()
    raw = values.to_numpy(dtype=object)
    if len(raw) and all(type(v) is str for v in raw[:1]):
        try:
            joined = "".join(raw)
            if joined.isascii() and "_" not in joined:
                numbers = raw.astype(np.float64)
                if not np.isnan(numbers).any():
                    return numbers, np.zeros(len(raw), bool)
        except (TypeError, ValueError):
            pass
    missing = is_missing(values)
    numbers = pd.to_numeric(pd.Series([None if m else (v.strip() if isinstance(v, str) else v)
                                       for v, m in zip(raw, missing)], dtype=object),
                            errors="coerce").astype("float64").to_numpy()
    return numbers, missing


def to_numeric(values: pd.Series, name: str, where) -> pd.Series:
    """Floats, NaN for missing markers; anything else non-numeric is a :class:`DataError`."""
    numbers, missing = parse_numbers(values)
    bad = np.flatnonzero(np.isnan(numbers) & ~missing)
    if len(bad):
        i = bad[0]
        raise DataError(f"{where}: column {name!r} row {i + 1}: {values.iloc[i]!r} is not a number "
                        f"({len(bad)} such value{'s' if len(bad) > 1 else ''}); expected numbers or NA")
    return pd.Series(numbers, index=values.index)


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def numeric_or_none(values: pd.Series) -> pd.Series | None:
    numbers, missing = parse_numbers(values)
    return None if (np.isnan(numbers) & ~missing).any() else pd.Series(numbers)


def find_column(frame: pd.DataFrame, name: str) -> str | None:
    """``name`` as written, else case-insensitively."""
    if name in frame.columns:
        return name
    matches = [c for c in frame.columns if str(c).lower() == name.lower()]
    return matches[0] if matches else None


# -- dates ------------------------------------------------------------------------------------------
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
        dates = dates_from_parts(frame, used)
        if not np.isnat(dates).any():
            return pd.DatetimeIndex(dates), used
    for name in DATE_NAMES:
        column = find_column(frame, name)
        if column is not None and numeric_or_none(frame[column]) is None:
            return _to_dates(frame[column], column, where), [column]
    first = frame.columns[0]
    if not _is_number(frame[first]) and numeric_or_none(frame[first]) is None:
        try:
            return _to_dates(frame[first], first, where), [first]
        except DataError:
            pass
    return None, []


def dates_from_parts(frame: pd.DataFrame, used: list[str]) -> np.ndarray:
    """``datetime64[ns]`` from year, month (day, hour) columns (``used``, named as the parts in any
    case); NaT where a part is missing or the parts are not a date."""
    numbers = {c.lower(): parse_numbers(frame[c])[0] for c in used}
    bad = np.zeros(len(frame), bool)
    for values in numbers.values():
        bad |= ~np.isfinite(values) | (values != np.round(values))
    pieces = pd.DataFrame({p: np.where(bad, 1, v).astype(np.int64) for p, v in numbers.items()})
    if "day" not in pieces:
        pieces["day"] = 1
    try:
        dates = np.array(pd.to_datetime(pieces, errors="coerce").to_numpy("datetime64[ns]"))
    except (ValueError, OverflowError):
        dates = np.full(len(frame), np.datetime64("NaT"), "datetime64[ns]")
    dates[bad] = np.datetime64("NaT")
    return dates


def _to_dates(values: pd.Series, column: str, where) -> pd.DatetimeIndex:
    dates = parse_date_strings(values, guess_format(values))
    bad = np.flatnonzero(np.isnat(dates))
    if len(bad):
        raise DataError(f"{where}: column {column!r} does not hold dates pandas can parse "
                        f"({values.iloc[bad[0]]!r}); set data.date_column (or none)")
    return pd.DatetimeIndex(dates)


def parse_date_strings(values, fmt: str | None = None) -> np.ndarray:
    """``datetime64[ns]`` of date strings, NaT where pandas cannot read one. ``fmt`` (a format
    guessed from the first value) reads most rows at once; the rest are read one by one
    (``format="mixed"``), which gives the same dates."""
    text = pd.Series([str(v).strip() for v in np.asarray(values, dtype=object)], dtype=object)
    out = np.full(len(text), np.datetime64("NaT"), "datetime64[ns]")
    todo = np.ones(len(text), bool)
    if fmt:
        try:
            parsed = _naive(pd.to_datetime(text, format=fmt, errors="coerce"))
            out, todo = parsed, np.isnat(parsed)
        except (ValueError, TypeError, OverflowError):
            pass
    if todo.any():
        rest = text[todo]
        try:
            out[todo] = _naive(pd.to_datetime(rest, format="mixed", errors="coerce"))
        except (ValueError, TypeError, OverflowError):
            for i in np.flatnonzero(todo):
                try:
                    out[i] = _naive(pd.to_datetime(pd.Series([text.iloc[i]]), format="mixed"))[0]
                except (ValueError, TypeError, OverflowError):
                    pass
    return out


def _naive(dates: pd.Series) -> np.ndarray:
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert(None)
    return np.array(dates.to_numpy("datetime64[ns]"))


def guess_format(values) -> str | None:
    from pandas.tseries.api import guess_datetime_format

    for v in values:
        v = str(v).strip()
        if v and v.lower() not in NA_STRINGS:
            try:
                return guess_datetime_format(v)
            except (ValueError, TypeError):
                return None
    return None


def infer_freq(dates) -> str | None:
    """A pandas frequency alias for regular dates (``MS``, ``D``, ``h``...), else None."""
    if dates is None or len(dates) < 3:
        return None
    try:
        return pd.infer_freq(pd.DatetimeIndex(dates[-min(len(dates), 500):]))
    except (TypeError, ValueError):
        return None


def infer_season(dates) -> int:
    """The seasonal period in steps, from the typical spacing of the dates.

    Hourly -> 24, daily -> 365 when the series spans at least two years (else 7),
    weekly -> 52, monthly -> 12, quarterly -> 4; otherwise 1 (no season).
    """
    if dates is None or len(dates) < 3:
        return 1
    steps = np.diff(np.asarray(dates, "datetime64[ns]").astype(np.int64))
    values, counts = np.unique(steps, return_counts=True)
    return season_of(median_of(dict(zip(values.tolist(), counts.tolist()))), len(dates))


def season_of(median_step_ns: float, n: int) -> int:
    hours = median_step_ns / 3.6e12
    days = hours / 24
    if 0.9 <= hours <= 1.1:
        return 24
    if 0.9 <= days <= 1.1:
        return 365 if n >= 2 * 365 else 7
    if 6.5 <= days <= 7.5:
        return 52
    if 27 <= days <= 32:
        return 12
    if 88 <= days <= 93:
        return 4
    return 1


def median_of(counts: dict) -> float:
    """The median of values given as ``{value: count}`` (the mean of the two middle ones for an even count)."""
    total = sum(counts.values())
    if not total:
        return float("nan")
    wanted, found, seen = sorted({(total - 1) // 2, total // 2}), [], 0
    for value in sorted(counts):
        seen += counts[value]
        while wanted and wanted[0] < seen:
            found.append(value)
            wanted.pop(0)
        if not wanted:
            break
    return float(sum(found)) / len(found) if len(found) == 2 else float(found[0])


# -- choosing the columns ---------------------------------------------------------------------------
def pick_target(frame: pd.DataFrame, target: str, date_columns: list[str], where) -> str:
    if target:
        column = find_column(frame, target)
        if column is None:
            raise DataError(f"{where}: no target column {target!r}; columns are: {', '.join(frame.columns)}")
        return column
    candidates = [c for c in frame.columns if c not in date_columns and str(c).lower() not in INDEX_NAMES]
    if len(candidates) == 1:
        return candidates[0]
    numeric = [c for c in candidates if numeric_or_none(frame[c]) is not None]
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


# -- encoding and scaling ------------------------------------------------------------------------------
@dataclasses.dataclass
class Encoding:
    """Columns -> float inputs (one-hot for categories), and the scaling fitted on the
    training part. ``features`` names the encoded inputs in order (``cbwd=NE``...).

    :meth:`encode_values` is the one encoding: the fitting pass writes the rows file with it and
    the predictor encodes the rows given to ``forecast`` with it (through :meth:`encode`)."""

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

    def encode_values(self, arrays: list[np.ndarray]) -> np.ndarray:
        """float32 ``[rows, features]`` from one array per column: numbers (``float64``, NaN where
        missing) for a numeric column, text (``object``, None where missing) for a categorical one,
        one-hot over its categories (all zeros for another value, NaN where missing)."""
        blocks = []
        for c, values in zip(self.columns, arrays):
            if c["kind"] == "numeric":
                blocks.append(np.asarray(values, "float64")[:, None])
                continue
            values = np.asarray(values, dtype=object)
            missing = pd.isna(values)
            one_hot = np.zeros((len(values), len(c["categories"])), "float64")
            for j, v in enumerate(c["categories"]):
                one_hot[:, j] = values == v
            one_hot[missing] = np.nan
            blocks.append(one_hot)
        if not blocks:
            return np.zeros((0, 0), "float32")
        return np.concatenate(blocks, axis=1).astype("float32")

    def encode(self, frame: pd.DataFrame, where="data", check: bool = True, unseen_ok: bool = True) -> np.ndarray:
        """Raw rows (strings or numbers) -> float32 ``[rows, features]`` by :meth:`encode_values`; with
        ``check``, a missing or non-finite value is an error; without ``unseen_ok``, so is a category
        the training part did not have (else all zeros)."""
        arrays = []
        for c in self.columns:
            column = find_column(frame, c["name"]) if c["name"] not in frame.columns else c["name"]
            if column is None:
                raise DataError(f"{where}: no column {c['name']!r}; the model reads: "
                                f"{', '.join(x['name'] for x in self.columns)}")
            raw = frame[column].reset_index(drop=True)
            if c["kind"] == "numeric":
                values = to_numeric(raw, column, where).to_numpy()
                bad = ~np.isfinite(values)
            else:
                missing = is_missing(raw)
                values = np.where(missing, None, raw.astype(str).str.strip().to_numpy(dtype=object))
                unseen = sorted(set(values[~missing]) - set(map(str, c["categories"])))
                if unseen and not unseen_ok:
                    raise DataError(f"{where}: column {column!r} has {unseen[:3]}, not among the categories the "
                                    f"model was trained with ({', '.join(map(str, c['categories'][:10]))})")
                bad = missing
            if check and bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{where}: column {column!r} row {i + 1} of the window is missing or not finite; "
                                "expected a value in every row (fill the gap first)")
            arrays.append(values)
        return self.encode_values(arrays)

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


# -- a series on disk ---------------------------------------------------------------------------------
class Series:
    """The series the fitting pass wrote: ``n`` rows from the first where every input has a value,
    in date order. Arrays are read from the cache files when asked for (``np.memmap``), never held."""

    def __init__(self, fit: dict, where: str = "data"):
        self.fit, self.where = fit, where
        self.n, self.target, self.inputs = int(fit["n"]), fit["target"], list(fit["inputs"])
        self.freq, self.date_columns = fit["freq"], list(fit["date_columns"])
        self.dropped_rows, self.filled = int(fit["dropped_rows"]), dict(fit["filled"])
        self.file_features = list(fit["file_features"])
        self.files = dict(fit["files"])

    def __len__(self) -> int:
        return self.n

    def _map(self, name: str, dtype, shape):
        return np.memmap(self.files[name], dtype=dtype, mode="r", shape=shape)

    @property
    def observed(self) -> np.ndarray:
        """Where the target was observed (``bool [n]``, read from the file)."""
        return self._map("observed", np.bool_, (self.n,))

    @property
    def y(self) -> np.ndarray:
        """The target, gaps filled (``float64 [n]``, read from the file)."""
        return self._map("y", np.float64, (self.n,))

    def rows(self) -> np.ndarray:
        """The encoded inputs ``float32 [n, file features]`` (every category of the file one-hot)."""
        return self._map("rows", np.float32, (self.n, len(self.file_features)))

    @property
    def has_dates(self) -> bool:
        return "dates" in self.files

    def dates_at(self, times) -> pd.DatetimeIndex | None:
        if not self.has_dates:
            return None
        dates = self._map("dates", np.int64, (self.n,))
        out = pd.DatetimeIndex(np.asarray(dates[np.asarray(times, np.int64)]).astype("datetime64[ns]"))
        del dates
        return out

    @property
    def dates(self) -> pd.DatetimeIndex | None:
        """Every date (tests and small series)."""
        return self.dates_at(np.arange(self.n))

    def columns_for(self, encoding: Encoding) -> np.ndarray | None:
        """Where each of ``encoding``'s features is among the file's (-1: a category the file has not,
        all zeros); None when they are the same."""
        if list(encoding.features) == self.file_features:
            return None
        index = {f: i for i, f in enumerate(self.file_features)}
        return np.array([index.get(f, -1) for f in encoding.features], np.int64)

    def windows(self, times, window: int, horizon: int, columns: np.ndarray | None = None):
        """``x[i] = rows[t - window:t]`` (float32, in ``columns``), ``y[i] = target[t:t + horizon]``
        (float32) for each ``t`` in ``times``, read through a fresh ``np.memmap``."""
        times = np.asarray(times, np.int64)
        width = len(self.file_features) if columns is None else len(columns)
        if not len(times):
            return np.zeros((0, window, width), "float32"), np.zeros((0, horizon), "float32")
        rows = self.rows()
        x = np.array(rows[times[:, None] + np.arange(-window, 0)[None, :]], "float32")
        y = np.array(rows[times[:, None] + np.arange(horizon)[None, :], 0], "float32")
        del rows
        if columns is not None:
            x = np.where(columns >= 0, x[..., np.maximum(columns, 0)], np.float32(0))
        return x, y


# -- splits and windows -------------------------------------------------------------------------------
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

    @property
    def first(self) -> int:
        return max(self.start, self.window)

    @property
    def last(self) -> int:
        return self.stop - self.horizon

    def times(self, lo: int | None = None, hi: int | None = None) -> np.ndarray:
        """The window times (targets observed) of the part, or of its times in ``[lo, hi)``."""
        lo = self.first if lo is None else max(lo, self.first)
        hi = self.last + 1 if hi is None else min(hi, self.last + 1)
        if hi <= lo:
            return np.zeros([0], np.int64)
        out = []
        for a in range(lo, hi, SCAN_ROWS):
            b = min(a + SCAN_ROWS, hi)
            observed = np.asarray(self.series.observed[a:b + self.horizon - 1])
            out.append(window_times(observed, 0, len(observed), 0, self.horizon) + a)
        return np.concatenate(out)

    def __len__(self) -> int:
        if not hasattr(self, "_count"):
            self._count = sum(len(self.times(a, a + SCAN_ROWS))
                              for a in range(self.first, self.last + 1, SCAN_ROWS))
        return self._count

    def blocks(self) -> int:
        """How many :data:`BLOCK` s of consecutive times the part spans."""
        return max(0, math.ceil((self.last + 1 - self.first) / BLOCK))

    def block_times(self, k: int) -> np.ndarray:
        lo = self.first + int(k) * BLOCK
        return self.times(lo, lo + BLOCK)

    def windows(self, encoding: Encoding, times=None):
        """``(x, y, times)`` of the part (or of ``times``) for ``encoding``'s inputs (scoring, tests)."""
        times = self.times() if times is None else np.asarray(times, np.int64)
        x, y = self.series.windows(times, self.window, self.horizon, self.series.columns_for(encoding))
        return x, y, times


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
        ok &= np.asarray(observed[times + h], bool)
    return times[ok]


def naive_forecast(y: np.ndarray, times: np.ndarray, horizon: int) -> np.ndarray:
    """The last value before ``t``, repeated for every step ahead."""
    return np.repeat(np.asarray(y[np.asarray(times) - 1], "float64")[:, None], horizon, axis=1)


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
    return np.asarray(y[idx], "float64")


def mase_scale(y: np.ndarray, observed: np.ndarray, stop: int, season: int) -> float:
    """Mean absolute seasonal difference on the training part: the MASE denominator (read in chunks)."""
    m = season if stop > season + 1 else 1
    total, count = 0.0, 0
    for a in range(m, stop, SCAN_ROWS):
        b = min(a + SCAN_ROWS, stop)
        ok = np.asarray(observed[a:b], bool) & np.asarray(observed[a - m:b - m], bool)
        diffs = np.abs(np.asarray(y[a:b], "float64") - np.asarray(y[a - m:b - m], "float64"))[ok]
        total += float(diffs.sum())
        count += len(diffs)
    mean = total / count if count else 0.0
    return float(mean) if count and mean > 0 else float("nan")


# -- tf.data: windows read batch by batch ---------------------------------------------------------------
def window_dataset(split: SeriesSplit, encoding: Encoding, batch_size: int, *, shuffle: bool, seed: int = 0,
                   buffer: int = 100_000):
    """Batches ``(x [b, window, features], y [b, horizon])`` of ``split``, each read from the rows file
    when it is needed. Training (``shuffle``): a part of at most ``buffer`` windows is shuffled whole
    (the in-memory batches, seed for seed); a longer one reads blocks of :data:`BLOCK` consecutive
    times in a random order through a shuffle buffer of ``buffer`` windows. Validation: in order.
    An epoch is every window once, ``ceil(windows / batch_size)`` batches."""
    import tensorflow as tf

    n = len(split)
    series, columns = split.series, split.series.columns_for(encoding)
    width = len(encoding.features)

    def read(times):
        return series.windows(times, split.window, split.horizon, columns)

    def batch_of(times):
        x, y = tf.numpy_function(read, [times], (tf.float32, tf.float32), stateful=False)
        x.set_shape([None, split.window, width])
        y.set_shape([None, split.horizon])
        return x, y

    if shuffle and n <= buffer:
        ds = tf.data.Dataset.from_tensor_slices(split.times())
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    else:
        blocks = split.blocks()
        ds = tf.data.Dataset.range(blocks)
        if shuffle:
            ds = ds.shuffle(max(blocks, 1), seed=seed, reshuffle_each_iteration=True)
        times = ds.map(lambda k: tf.numpy_function(lambda k: split.block_times(int(k)), [k], tf.int64,
                                                   stateful=False))
        ds = times.map(lambda t: tf.reshape(t, [-1])).unbatch()
        if shuffle:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(batch_of, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.apply(tf.data.experimental.assert_cardinality(math.ceil(n / batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)


# -- loading a forecasting source -----------------------------------------------------------------
DEMO_DEFAULTS = {"target": "load", "features": ["all"]}   # what the demo series means when unset


def demo_file() -> Path:
    """The demo series as a CSV in the cache folder (written once per content), read like any file."""
    from seqapps.data import cache_folder
    from tasks.forecasting.demo import frame as demo_frame

    text = demo_frame().astype(str).to_csv(index=False)
    path = cache_folder() / "fits" / f"forecasting-demo-{hashlib.sha1(text.encode()).hexdigest()[:12]}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


def source_file(source) -> Path:
    """The CSV file of a demo, named or path source (a folder holding exactly one)."""
    if source.kind == "demo":
        return demo_file()
    path = Path(next(iter(source.paths.values())))
    if path.is_dir():
        csvs = sorted(path.glob("*.csv"))
        if len(csvs) != 1:
            raise DataError(f"{path}: a folder; expected one CSV file (found {len(csvs)})")
        path = csvs[0]
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


@dataclasses.dataclass
class ForecastingPrep(Preprocessing):
    """What training fitted: the column encoding and scaling, and the window shape (``series.json``)."""

    encoding: Encoding
    window: int
    horizon: int
    season: int
    freq: str | None
    space: dict = dataclasses.field(default_factory=dict)       # tasks.forecasting.space.TargetSpace as a dict
    selection: list = dataclasses.field(default_factory=list)   # the candidates tried and their validation MAE
    FILE = "series.json"
    task = "forecasting"

    @classmethod
    def fit(cls, cfg, splits) -> "ForecastingPrep":
        """The encoding and window shape; the target space (transform, base) is chosen by
        :func:`tasks.forecasting.space.choose` (the task's ``fit_preprocessing``)."""
        fit = splits.info["fit"]
        return cls(Encoding.from_dict(fit["encoding"]), cfg.data.window, cfg.data.horizon, splits.info["season"],
                   fit["freq"])

    def to_dict(self) -> dict:
        return {"encoding": self.encoding.to_dict(), "window": self.window, "horizon": self.horizon,
                "season": self.season, "freq": self.freq, "space": self.space, "selection": self.selection}

    def save(self, run_dir) -> None:
        save_json(run_dir, self.FILE, self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "ForecastingPrep":
        return cls(Encoding.from_dict(d["encoding"]), int(d["window"]), int(d["horizon"]), int(d["season"]),
                   d.get("freq"), dict(d.get("space") or {}), list(d.get("selection") or []))

    @classmethod
    def load(cls, run_dir, cfg=None) -> "ForecastingPrep":
        return cls.from_dict(cls.read_json(run_dir, cls.FILE))
