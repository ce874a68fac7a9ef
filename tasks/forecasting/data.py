"""Time series from CSV files of any size: dates, numeric and categorical columns, missing
values, chronological splits, leak-free windows, scaling fitted on the training part, and the
naive baselines.

How a CSV becomes a series
--------------------------
* **Dates**: ``date_column`` names the column to parse with pandas; left empty, the
  first of ``year``+``month`` (+ ``day``, ``hour``) component columns, a column called
  date/datetime/time/timestamp/month/day/period/ds, or a first column that parses as
  dates, is used (decided on the first :data:`CHUNK_ROWS` rows). ``none`` means no dates
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
A file is never read whole. One cached pass (:func:`seqapps.data.streaming.fitting_pass`,
keyed by the file's size and modification time and the settings below) reads the CSV once,
row by row in chunks of :data:`CHUNK_ROWS`, and writes it as flat binary files in the cache
folder (as nanoGPT's ``train.bin``): the encoded inputs (``float32 [rows, features]``, every
category of the file one-hot, before scaling), the target (``float64``), where the target was
observed and the dates. The same pass fits what the training part fixes (the categories it
holds, the mean and standard deviation of every input) once the number of rows, and so the
chronological split, is known: the CSV is read once into a temporary file of parsed values,
and two passes over that binary file fill the gaps and encode (see :func:`fit_series`).
Windows are then read from the encoded file batch by batch through ``np.memmap``
(:func:`window_dataset`). Rows out of date order are sorted through an argsort of their dates
(16 bytes a row in memory) for files up to :data:`SORT_LIMIT` rows; a larger file out of order
is an error naming the first line out of order.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import hashlib
import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from seqapps.core.errors import ConfigError, DataError
from seqapps.core.task import Splits
from seqapps.data.preprocessing import Preprocessing, save_json
from seqapps.data.sources import resolve
from seqapps.data.splits import split_sizes
from seqapps.data.streaming import BadRows, fitting_pass, is_tab_separated, table_header

NA_STRINGS = {"", "na", "n/a", "nan", "null", "none", "?", "-", "#n/a"}
DATE_NAMES = ["date", "datetime", "time", "timestamp", "month", "day", "period", "ds", "week"]
INDEX_NAMES = {"no", "index", "id", "row", "unnamed: 0"}
DATE_PARTS = ["year", "month", "day", "hour"]
MAX_CATEGORIES = 50
MISSING = ("ffill", "interpolate", "error")

FIT_VERSION = 1          # bumped when what the pass writes changes
CHUNK_ROWS = 1 << 16     # rows parsed at a time (the first chunk also decides the columns)
SORT_LIMIT = 2_000_000   # rows out of date order are sorted in memory up to this many rows
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


def _numeric_or_none(values: pd.Series) -> pd.Series | None:
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
        dates = _dates_from_parts(frame, used)
        if not np.isnat(dates).any():
            return pd.DatetimeIndex(dates), used
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


def _dates_from_parts(frame: pd.DataFrame, used: list[str]) -> np.ndarray:
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
    dates = _parse_date_strings(values, _guess_format(values))
    bad = np.flatnonzero(np.isnat(dates))
    if len(bad):
        raise DataError(f"{where}: column {column!r} does not hold dates pandas can parse "
                        f"({values.iloc[bad[0]]!r}); set data.date_column (or none)")
    return pd.DatetimeIndex(dates)


def _parse_date_strings(values, fmt: str | None = None) -> np.ndarray:
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


def _guess_format(values) -> str | None:
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
    return season_of(_median(dict(zip(values.tolist(), counts.tolist()))), len(dates))


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


def _median(counts: dict) -> float:
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


# -- the fitting pass ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Plan:
    """What the first chunk decided: the date columns and how to read them, the inputs and their kinds."""

    header: list[str]
    dates: str                 # none | column | parts
    date_columns: list[str]
    date_format: str | None
    inputs: list[str]          # target first
    text: set                  # input columns read as categories

    def index(self, column: str) -> int:
        return self.header.index(column)


class _Retext(Exception):
    """A column read as numbers met text after the first chunk: the pass starts again reading it as text."""

    def __init__(self, column: str):
        self.column = column


def make_plan(header: list[str], first: pd.DataFrame, opts: dict, text: set, where) -> Plan:
    """The columns and how to read them, from the first chunk of rows (the in-memory rules)."""
    if opts["date_column"] and opts["date_column"].lower() != "none":  # named: read row by row (bad rows)
        column = find_column(first, opts["date_column"])
        if column is None:
            raise DataError(f"{where}: no date column {opts['date_column']!r}; columns are: {', '.join(header)}")
        kind, date_columns = "column", [column]
    else:
        dates, date_columns = parse_dates(first, opts["date_column"], where)
        kind = "none" if dates is None else "parts" if len(date_columns) > 1 else "column"
    fmt = _guess_format(first[date_columns[0]]) if kind == "column" else None
    target = pick_target(first, opts["target"], date_columns, where)
    inputs = pick_features(first, target, opts["features"], date_columns, where)
    text = set(text) | {c for c in inputs[1:] if _numeric_or_none(first[c]) is None}
    return Plan(header, kind, date_columns, fmt, inputs, text)


def _text_lines(path: Path, counter: list):
    """The lines of a file (split at ``\\n`` only, endings kept, a leading BOM dropped), read in blocks of
    4 MiB: what :class:`seqapps.data.streaming.ByteLines` gives, faster; ``counter[0]`` counts the bytes."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: {e.strerror}") from None
    with f:
        rest, line, first = b"", 0, True
        while True:
            block = f.read(1 << 22)
            if not block:  # the end: a last line without a newline
                block, rest = rest, b""
                if not block:
                    break
            else:
                block = rest + block
                cut = block.rfind(b"\n") + 1
                rest, block = block[cut:], block[:cut]
                if not block:  # no line end yet: read on
                    continue
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError as e:
                at = block.rfind(b"\n", 0, e.start) + 1
                where = line + block.count(b"\n", 0, e.start) + 1
                raise DataError(f"{path}:{where}: not UTF-8 text (undecodable byte at column {e.start - at + 1})"
                                ) from None
            if first and text.startswith("\ufeff"):
                text = text[1:]
            first = False
            counter[0] += len(block)
            line += block.count(b"\n")
            yield from io.StringIO(text, newline="\n")


def csv_rows(path: Path, bad: BadRows, counter: list):
    """``(line, fields)`` of each data row of a CSV/TSV file, as :func:`seqapps.data.streaming.table_rows`
    reads them (the header and blank lines skipped, a row with another number of fields than the header
    a bad row), from :func:`_text_lines`."""
    tab = is_tab_separated(path)
    reader = csv.reader(_text_lines(path, counter), delimiter="\t" if tab else ",",
                        quoting=csv.QUOTE_NONE if tab else csv.QUOTE_MINIMAL, strict=not tab)
    width = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"{path}:{reader.line_num}: malformed CSV: {e}") from None
        if width is None:
            width = len(row)
            continue
        if not row or row == [""]:
            continue
        if len(row) != width:
            bad.bad(f"{path}:{reader.line_num}", f"expected {width} fields as in the header, got {len(row)}")
            continue
        yield reader.line_num, row


def _chunks(rows, size: int):
    """``(lines, columns)`` of up to ``size`` rows: line numbers and one ``object`` array per column."""
    lines, buffer = [], []
    for line, row in rows:
        lines.append(line)
        buffer.append(row)
        if len(buffer) == size:
            yield np.asarray(lines, np.int64), [np.asarray(c, dtype=object) for c in zip(*buffer)]
            lines, buffer = [], []
    if buffer:
        yield np.asarray(lines, np.int64), [np.asarray(c, dtype=object) for c in zip(*buffer)]


def fit_series(path: Path, where: str, opts: dict, stem: Path, progress) -> dict:
    """The fitting pass over one CSV file (memory bounded by a chunk of rows):

    1. **read**: the CSV row by row (chunks of :data:`CHUNK_ROWS`) into a temporary binary file of
       parsed values (``float64``: a number, or a category's code), with the dates and line numbers;
       bad rows stop the pass naming file and line, or are skipped and counted; the first chunk
       decides the columns, and a column read as numbers that later holds text starts the pass again
       reading it as text. The rows are counted, their date order checked.
    2. **fill**: the values in date order (sorted through an argsort of the dates when the file is not
       in order, up to :data:`SORT_LIMIT` rows), gaps filled (``data.missing``), where the target was
       observed; the first row where every input has a value fixes the rows dropped, so the
       chronological split (:func:`split_points`) is known.
    3. **encode**: the filled rows by :meth:`Encoding.encode_values` (every category of the file
       one-hot) into ``{stem}.rows.f32``, the target into ``{stem}.y.f64``, where it was observed
       into ``{stem}.observed.u8``, the dates into ``{stem}.dates.i8``; the mean and standard
       deviation of the training rows and the categories they hold fit the model's encoding.

    Each file is written under a temporary name and renamed when complete."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = {k: stem.with_name(f"{stem.name}.{k}.tmp{os.getpid()}")
           for k in ("raw", "lines", "rawdates", "filled", "observed_all", "rows", "y", "observed", "dates")}
    try:
        text: set = set()
        while True:
            try:
                with _collector_paused():
                    read = _read(path, where, opts, text, tmp, progress)
                break
            except _Retext as e:
                text.add(e.column)
        filled = _fill(read, opts, where, tmp)
        fit = _encode(read, filled, opts, where, tmp)
        final = {}
        for k in ("rows", "y", "observed", "dates"):
            if k == "dates" and not read["has_dates"]:
                continue
            target = stem.with_name(f"{stem.name}.{FILE_SUFFIX[k]}")
            os.replace(tmp[k], target)
            final[k] = str(target)
        fit["files"] = final
        return fit
    finally:
        for p in tmp.values():
            p.unlink(missing_ok=True)


@contextlib.contextmanager
def _collector_paused():
    """The cyclic garbage collector paused while rows are read: the pass makes millions of small lists
    (freed by reference counting, no cycles), and the collector's scans over them took half its time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


FILE_SUFFIX = {"rows": "rows.f32", "y": "y.f64", "observed": "observed.u8", "dates": "dates.i8"}


def _read(path: Path, where: str, opts: dict, text: set, tmp: dict, progress) -> dict:
    """Pass 1: the CSV into the temporary ``raw`` (``float64 [rows, inputs]``), ``rawdates`` and ``lines`` files."""
    header = table_header(path)
    counter = [0]
    bad = BadRows(opts["skip_bad_rows"])
    rows = csv_rows(path, bad, counter)
    plan, n, categories = None, 0, []
    missing_counts, first_missing = None, None
    prev_date, prev_line, order_issue = None, 0, None
    with open(tmp["raw"], "wb") as raw, open(tmp["lines"], "wb") as lines_out, open(tmp["rawdates"], "wb") as d_out:
        for lines, columns in _chunks(rows, CHUNK_ROWS):
            if plan is None:
                first = pd.DataFrame(dict(zip(header, columns)), columns=header)
                plan = make_plan(header, first, opts, text, where)
                categories = [{} if c in plan.text else None for c in plan.inputs]
                missing_counts, first_missing = np.zeros(len(plan.inputs), np.int64), [0] * len(plan.inputs)
            bad_row = np.zeros(len(lines), bool)
            why = [""] * len(lines)

            def flag(mask, message):
                for i in np.flatnonzero(mask & ~bad_row):
                    why[i] = message(i)
                bad_row[:] |= mask

            # dates
            if plan.dates == "column":
                column = plan.date_columns[0]
                values = columns[plan.index(column)]
                dates = _parse_date_strings(values, plan.date_format)
                flag(np.isnat(dates), lambda i: f"column {column!r}: {values[i]!r} is not a date pandas can read")
            elif plan.dates == "parts":
                frame = pd.DataFrame({c: columns[plan.index(c)] for c in plan.date_columns})
                dates = _dates_from_parts(frame, plan.date_columns)
                flag(np.isnat(dates), lambda i: f"columns {', '.join(plan.date_columns)}: "
                     f"{', '.join(repr(columns[plan.index(c)][i]) for c in plan.date_columns)} are not a date")
            else:
                dates = None
            # inputs
            block = np.empty((len(lines), len(plan.inputs)), "float64")
            missing_now = np.zeros((len(lines), len(plan.inputs)), bool)
            for j, column in enumerate(plan.inputs):
                values = columns[plan.index(column)]
                if categories[j] is None:
                    numbers, missing = parse_numbers(pd.Series(values, dtype=object))
                    wrong = np.isnan(numbers) & ~missing
                    if wrong.any():
                        if j > 0:  # an input column holding text: read as categories from the start
                            raise _Retext(column)
                        flag(wrong, lambda i: f"column {column!r}: {values[i]!r} is not a number; "
                                              "expected numbers or NA")
                    flag(np.isinf(numbers), lambda i: f"column {column!r}: {values[i]!r} is infinite; "
                                                      "expected finite numbers")
                    block[:, j] = numbers
                else:
                    missing = is_missing(pd.Series(values, dtype=object))
                    block[:, j] = _codes(values, missing, categories[j], column, where)
                missing_now[:, j] = missing
            for i in np.flatnonzero(bad_row):
                bad.bad(f"{where}:{lines[i]}", why[i])
            keep = ~bad_row
            lines, block, missing_now = lines[keep], block[keep], missing_now[keep]
            # date order
            if dates is not None:
                dates = dates[keep].astype(np.int64)
                if len(dates) and order_issue is None:
                    before = np.concatenate([[prev_date], dates[:-1]]) if prev_date is not None else None
                    steps = dates - before if before is not None else np.diff(dates)
                    offset = 0 if before is not None else 1
                    behind = np.flatnonzero(steps < 0)
                    same = np.flatnonzero(steps == 0)
                    if len(same) and (not len(behind) or same[0] < behind[0]):
                        i = same[0] + offset
                        other = lines[i - 1] if i > 0 else prev_line
                        raise DataError(f"{where}:{lines[i]}: the date {pd.Timestamp(dates[i])} appears more than "
                                        f"once (also on line {other}); expected one row per time step")
                    if len(behind):
                        i = behind[0] + offset
                        order_issue = (int(lines[i]), pd.Timestamp(dates[i]),
                                       pd.Timestamp(dates[i - 1] if i > 0 else prev_date))
                if len(dates):
                    prev_date, prev_line = int(dates[-1]), int(lines[-1])
                d_out.write(dates.tobytes())
            # missing values
            counts = missing_now.sum(axis=0)
            for j in np.flatnonzero(counts):
                if not missing_counts[j]:
                    first_missing[j] = int(lines[np.argmax(missing_now[:, j])])
            missing_counts += counts
            raw.write(np.ascontiguousarray(block).tobytes())
            lines_out.write(lines.tobytes())
            n += len(lines)
            progress(n, counter[0])
    if plan is None or n == 0:
        raise DataError(f"{where}: no data rows")
    if bad.count:
        import sys

        print(f"skipped {bad.count:,} bad row(s) (data.skip_bad_rows); the first: {bad.first}", file=sys.stderr)
    target = plan.inputs[0]
    if missing_counts[0] == n:
        raise DataError(f"{where}: the target column {target!r} has no values")
    gaps = {c: int(missing_counts[j]) for j, c in enumerate(plan.inputs) if missing_counts[j]}
    if gaps and opts["missing"] == "error":
        column = next(iter(gaps))
        raise DataError(f"{where}: column {column!r} has {gaps[column]} missing value(s), first on line "
                        f"{first_missing[plan.inputs.index(column)]}; set data.missing=ffill or interpolate to fill them")
    empty = [c for j, c in enumerate(plan.inputs) if missing_counts[j] == n]
    if empty:
        raise DataError(f"{where}: input column {empty[0]!r} has no values")
    if order_issue is not None and n > SORT_LIMIT:
        line, date, before = order_issue
        raise DataError(f"{where}:{line}: the rows are not in date order ({date} after {before}); a file over "
                        f"{SORT_LIMIT:,} rows must be sorted by date first")
    return {"plan": plan, "n": n, "categories": [list(c) if c is not None else None for c in categories],
            "gaps": gaps, "sorted": order_issue is None, "has_dates": plan.dates != "none",
            "bad_rows": bad.count, "first_bad": bad.first, "bytes": counter[0]}


def _codes(values: np.ndarray, missing: np.ndarray, seen: dict, column: str, where) -> np.ndarray:
    """Category codes (in order of first appearance, NaN where missing), adding new categories to ``seen``."""
    codes, uniques = pd.factorize(pd.Series([None if m else str(v).strip() for v, m in zip(values, missing)],
                                            dtype=object))
    for u in uniques:
        if u not in seen:
            seen[u] = len(seen)
            if len(seen) > MAX_CATEGORIES:
                raise DataError(f"{where}: input column {column!r} is neither numeric nor categorical "
                                f"(more than {MAX_CATEGORIES} distinct text values; at most {MAX_CATEGORIES} "
                                "are one-hot encoded)")
    table = np.array([seen[u] for u in uniques] + [np.nan], "float64")
    return table[codes]  # code -1 (missing) picks the NaN at the end


def _fill(read: dict, opts: dict, where: str, tmp: dict) -> dict:
    """Pass 2: the raw values in date order, gaps filled, into the temporary ``filled`` file; where the
    target was observed into ``observed_all``; the rows before every input has a value are dropped."""
    n, plan = read["n"], read["plan"]
    width = len(plan.inputs)
    order = None
    if not read["sorted"]:
        dates = np.fromfile(tmp["rawdates"], np.int64)
        order = np.argsort(dates, kind="stable")
        dates = dates[order]
        same = np.flatnonzero(dates[1:] == dates[:-1])
        if len(same):
            lines = np.memmap(tmp["lines"], np.int64, "r", shape=(n,))
            a, b = sorted([int(lines[order[same[0]]]), int(lines[order[same[0] + 1]])])
            del lines
            raise DataError(f"{where}:{b}: the date {pd.Timestamp(dates[same[0]])} appears more than once "
                            f"(also on line {a}); expected one row per time step")
        dates.tofile(tmp["rawdates"])  # in date order from here on
        del dates
    interpolate = [opts["missing"] == "interpolate" and c not in plan.text for c in plan.inputs]
    first_value = np.full(width, -1, np.int64)
    last_value = np.full(width, np.nan)            # carried forward (ffill)
    last_at = np.full(width, -1, np.int64)         # where the last value was (interpolation)
    raw = np.memmap(tmp["raw"], np.float64, "r", shape=(n, width)) if order is not None else None
    with open(tmp["raw"], "rb") as source, open(tmp["filled"], "w+b") as out, \
            open(tmp["observed_all"], "wb") as observed_out:
        for start in range(0, n, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, n)
            if order is None:
                values = np.fromfile(source, np.float64, (stop - start) * width).reshape(-1, width)
            else:
                values = np.array(raw[order[start:stop]])
            observed_out.write((~np.isnan(values[:, 0])).astype(np.uint8).tobytes())
            for j in range(width):
                column = values[:, j]
                has = ~np.isnan(column)
                if not has.any():
                    if not np.isnan(last_value[j]):
                        column[:] = last_value[j]
                    continue
                at = np.flatnonzero(has)
                if first_value[j] < 0:
                    first_value[j] = start + at[0]
                if interpolate[j] and last_at[j] >= 0 and last_at[j] < start + at[0] - 1:
                    # a gap that began in an earlier chunk ends here: fill its earlier rows in the file
                    _interpolate_back(out, width, j, int(last_at[j]), float(last_value[j]), start + int(at[0]),
                                      float(column[at[0]]), start)
                if interpolate[j]:
                    xp = np.concatenate([[last_at[j]], start + at]) if last_at[j] >= 0 else start + at
                    fp = np.concatenate([[last_value[j]], column[at]]) if last_at[j] >= 0 else column[at]
                    inside = ~has & (np.arange(start, stop) > xp[0]) & (np.arange(start, stop) < xp[-1])
                    if inside.any():
                        column[inside] = np.interp(np.flatnonzero(inside).astype(np.float64) + start,
                                                   xp.astype(np.float64), fp)
                        has = has | inside
                # forward fill: each row takes the last value at or before it
                idx = np.where(has, np.arange(len(column)), -1)
                np.maximum.accumulate(idx, out=idx)
                filled = np.where(idx >= 0, column[np.maximum(idx, 0)], last_value[j])
                last_value[j], last_at[j] = column[at[-1]], start + at[-1]
                values[:, j] = filled
            out.seek(0, os.SEEK_END)
            out.write(np.ascontiguousarray(values).tobytes())
    del raw
    first_valid = int(first_value.max())
    return {"first_valid": first_valid, "n": n - first_valid}


def _interpolate_back(out, width: int, j: int, a: int, va: float, b: int, vb: float, stop: int) -> None:
    """Rows ``a+1 .. stop-1`` of column ``j`` in the ``filled`` file, linearly between ``(a, va)`` and ``(b, vb)``."""
    item = np.dtype(np.float64).itemsize
    for lo in range(a + 1, stop, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, stop)
        out.flush()
        out.seek(lo * width * item)
        block = np.frombuffer(out.read((hi - lo) * width * item), np.float64).reshape(-1, width).copy()
        block[:, j] = np.interp(np.arange(lo, hi, dtype=np.float64), np.array([a, b], np.float64),
                                np.array([va, vb]))
        out.seek(lo * width * item)
        out.write(np.ascontiguousarray(block).tobytes())


def _encode(read: dict, filled: dict, opts: dict, where: str, tmp: dict) -> dict:
    """Pass 3: the filled rows from the first with every input on, encoded, into the rows, target,
    observed and dates files; the training rows' mean, standard deviation and categories."""
    plan, width = read["plan"], len(read["plan"].inputs)
    first_valid, n = filled["first_valid"], filled["n"]
    train_stop, val_stop = split_points(n, window=opts["window"], horizon=opts["horizon"], val_size=opts["val_size"],
                                        test_size=opts["test_size"], val_fraction=opts["val_fraction"],
                                        test_fraction=opts["test_fraction"], where=where)
    names = [np.array(list(c), dtype=object) if c is not None else None for c in read["categories"]]
    columns = [{"name": c, "kind": "numeric"} if names[j] is None else
               {"name": c, "kind": "categorical", "categories": sorted(read["categories"][j])}
               for j, c in enumerate(plan.inputs)]
    every = Encoding(plan.inputs[0], columns, [], [])    # every category of the file
    features = every.features
    count, mean, m2 = 0, np.zeros(len(features)), np.zeros(len(features))
    steps: dict = {}
    previous_date = None
    item = np.dtype(np.float64).itemsize
    with open(tmp["filled"], "rb") as source, open(tmp["observed_all"], "rb") as observed_in, \
            open(tmp["rawdates"], "rb") as dates_in, open(tmp["rows"], "wb") as rows_out, \
            open(tmp["y"], "wb") as y_out, open(tmp["observed"], "wb") as observed_out, \
            open(tmp["dates"], "wb") as dates_out:
        source.seek(first_valid * width * item)
        observed_in.seek(first_valid)
        dates_in.seek(first_valid * 8)
        for start in range(0, n, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, n)
            values = np.fromfile(source, np.float64, (stop - start) * width).reshape(-1, width)
            arrays = [values[:, j] if names[j] is None else
                      np.where(np.isnan(values[:, j]), None, names[j][np.nan_to_num(values[:, j]).astype(np.int64)])
                      for j in range(width)]
            encoded = every.encode_values(arrays)
            rows_out.write(encoded.tobytes())
            y_out.write(np.ascontiguousarray(values[:, 0]).tobytes())
            observed_out.write(np.fromfile(observed_in, np.uint8, stop - start).tobytes())
            if start < train_stop:  # the training rows: mean and variance merged chunk by chunk (Chan et al.)
                part = encoded[:min(stop, train_stop) - start].astype(np.float64)
                k, part_mean = len(part), part.mean(axis=0)
                part_m2 = ((part - part_mean) ** 2).sum(axis=0)
                delta, total = part_mean - mean, count + k
                mean = mean + delta * k / total
                m2 = m2 + part_m2 + delta ** 2 * count * k / total
                count = total
            if read["has_dates"]:
                dates = np.fromfile(dates_in, np.int64, stop - start)
                dates_out.write(dates.tobytes())
                chained = np.concatenate([[previous_date], dates]) if previous_date is not None else dates
                diffs, counts = np.unique(np.diff(chained), return_counts=True)
                for d, c in zip(diffs.tolist(), counts.tolist()):
                    steps[d] = steps.get(d, 0) + c
                if len(steps) > 100_000:  # irregular dates: spacings to the minute are enough to tell a season
                    coarse: dict = {}
                    for d, c in steps.items():
                        key = round(d / 6e10) * 60_000_000_000
                        coarse[key] = coarse.get(key, 0) + c
                    steps = coarse
                previous_date = int(dates[-1])
    std = np.sqrt(m2 / max(count, 1))
    std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    # the model's inputs: numeric columns and the categories the training rows hold
    keep, model_columns, at = [], [], 0
    for c in columns:
        if c["kind"] == "numeric":
            keep.append(at)
            model_columns.append(dict(c))
            at += 1
            continue
        held = [v for k, v in enumerate(c["categories"]) if mean[at + k] > 0]
        keep += [at + k for k, v in enumerate(c["categories"]) if mean[at + k] > 0]
        model_columns.append({**c, "categories": held})
        at += len(c["categories"])
    encoding = Encoding(plan.inputs[0], model_columns, [float(mean[k]) for k in keep], [float(std[k]) for k in keep])
    freq = season = None
    if read["has_dates"]:
        tail = np.fromfile(tmp["dates"], np.int64, offset=max(0, n - 500) * 8)
        freq = infer_freq(tail.astype("datetime64[ns]"))
        season = season_of(_median(steps), n) if n >= 3 else 1
    return {"n": n, "rows_read": read["n"], "dropped_rows": first_valid, "filled": read["gaps"],
            "target": plan.inputs[0], "inputs": plan.inputs, "date_columns": plan.date_columns,
            "has_dates": read["has_dates"], "columns": columns, "file_features": features,
            "encoding": encoding.to_dict(), "train_stop": train_stop, "val_stop": val_stop,
            "freq": freq, "season": season or 1, "bad_rows": read["bad_rows"], "first_bad": read["first_bad"],
            "bytes": read["bytes"]}


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
        for a in range(lo, hi, CHUNK_ROWS * 4):
            b = min(a + CHUNK_ROWS * 4, hi)
            observed = np.asarray(self.series.observed[a:b + self.horizon - 1])
            out.append(window_times(observed, 0, len(observed), 0, self.horizon) + a)
        return np.concatenate(out)

    def __len__(self) -> int:
        if not hasattr(self, "_count"):
            self._count = sum(len(self.times(a, a + CHUNK_ROWS * 4))
                              for a in range(self.first, self.last + 1, CHUNK_ROWS * 4))
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
    for a in range(m, stop, CHUNK_ROWS * 4):
        b = min(a + CHUNK_ROWS * 4, stop)
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


def _files_ok(fit: dict) -> bool:
    try:
        width = len(fit["file_features"])
        sizes = {"rows": 4 * width, "y": 8, "observed": 1, "dates": 8}
        return all(os.path.getsize(fit["files"][k]) == fit["n"] * sizes[k] for k in fit["files"]) and \
            ("dates" in fit["files"]) == fit["has_dates"]
    except (OSError, KeyError, TypeError):
        return False


def load_series(data_cfg, task: str, data_dir=None, verbose: bool = True) -> tuple[Series, dict, str]:
    """The cached fitting pass over ``data_cfg.source`` (:func:`fit_series`): ``(series, fit, where)``.
    Sets ``data_cfg.target`` (and ``features``, when empty) to what the series resolved to."""
    from seqapps.data import cache_folder
    from seqapps.data.streaming import files_key

    d = data_cfg
    if d.missing not in MISSING:
        raise ConfigError(f"data.missing must be one of {', '.join(MISSING)}, got {d.missing!r}")
    source = resolve(d.source, task, data_dir)
    if source.kind == "tfds":
        raise DataError(f"{source.spec}: the {task} task reads CSV files; expected demo, a named dataset or a path")
    path = source_file(source)
    where = "demo" if source.kind == "demo" else str(path)
    defaults = DEMO_DEFAULTS if source.kind == "demo" else source.options
    d.target = d.target or defaults.get("target", "")
    d.features = list(d.features or defaults.get("features", []))
    opts = {"target": d.target, "features": list(d.features), "date_column": d.date_column, "missing": d.missing,
            "val_size": d.val_size, "test_size": d.test_size, "val_fraction": d.val_fraction,
            "test_fraction": d.test_fraction, "skip_bad_rows": bool(getattr(d, "skip_bad_rows", False))}
    settings = {"task": "forecasting", "pass": "series", "version": FIT_VERSION, **opts}
    stem = cache_folder() / "fits" / f"{files_key([path], settings)}"
    run_opts = {**opts, "window": d.window, "horizon": d.horizon}

    def run(progress):
        return fit_series(path, where, run_opts, stem, progress)

    what = f"forecasting on {d.source}"
    fit = fitting_pass(what, [path], settings, run, verbose=verbose)
    if not _files_ok(fit):  # a cache file was removed or cut short: fit again
        (cache_folder() / "fits" / f"{stem.name}.json").unlink(missing_ok=True)
        fit = fitting_pass(what, [path], settings, run, verbose=verbose)
    d.target = fit["target"]   # the resolved config names the column it picked
    return Series(fit, where), fit, where


def load_series_splits(data_cfg, task: str, data_dir=None, verbose: bool = True) -> Splits:
    """Chronological train / validation / test parts of one series (:func:`split_points`)."""
    d = data_cfg
    series, fit, where = load_series(d, task, data_dir, verbose)
    season = d.season or fit["season"]
    if season < 1:
        raise DataError(f"data.season must be >= 1 (or 0 to infer it), got {season}")
    train_stop, val_stop = split_points(len(series), window=d.window, horizon=d.horizon, val_size=d.val_size,
                                        test_size=d.test_size, val_fraction=d.val_fraction,
                                        test_fraction=d.test_fraction, where=where)
    scale = mase_scale(series.y, series.observed, train_stop, season)
    part = lambda a, b, name: SeriesSplit(series, a, b, name, d.window, d.horizon, season, scale)  # noqa: E731
    splits = Splits(part(0, train_stop, "train"), part(train_stop, val_stop, "val") if val_stop > train_stop
                    else None, part(val_stop, len(series), "test") if len(series) > val_stop else None,
                    info={"series": series, "season": season, "train_stop": train_stop, "val_stop": val_stop,
                          "fit": fit})
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
        fit = splits.info["fit"]
        return cls(Encoding.from_dict(fit["encoding"]), cfg.data.window, cfg.data.horizon, splits.info["season"],
                   fit["freq"])

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
