"""The fitting pass of a forecasting series: a CSV file of any size read once, written as flat binary files.

:func:`fit_series` reads the CSV row by row in chunks of :data:`CHUNK_ROWS` (memory bounded by a
chunk), so the number of rows, and with it the chronological split, is known at its end (the
training part is a prefix): the rows go to a temporary file of parsed values, and two passes over
that binary file put them in date order, fill the gaps and encode them, fitting the training
part's categories and scaling on the way. :func:`load_series` caches the
result with :func:`seqapps.data.streaming.fitting_pass`. The rules for dates, inputs and missing
values are in :mod:`tasks.forecasting.data`; the first chunk decides the columns by them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from seqapps.core.errors import ConfigError, DataError
from seqapps.core.task import Splits
from seqapps.data.sources import resolve
from seqapps.data.streaming import BadRows, csv_records, fitting_pass, table_header
from tasks.forecasting.data import (DEMO_DEFAULTS, MAX_CATEGORIES, MISSING, Encoding, Series, SeriesSplit,
                                    dates_from_parts, find_column, guess_format, infer_freq, is_missing, mase_scale,
                                    median_of, numeric_or_none, parse_dates, parse_date_strings, parse_numbers,
                                    pick_features, pick_target, season_of, source_file, split_points)

FIT_VERSION = 1          # bumped when what the pass writes changes
CHUNK_ROWS = 1 << 16     # rows parsed at a time (the first chunk also decides the columns)
SORT_LIMIT = 2_000_000   # rows out of date order are sorted in memory up to this many rows


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
    fmt = guess_format(first[date_columns[0]]) if kind == "column" else None
    target = pick_target(first, opts["target"], date_columns, where)
    inputs = pick_features(first, target, opts["features"], date_columns, where)
    text = set(text) | {c for c in inputs[1:] if numeric_or_none(first[c]) is None}
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
    width = None
    for line, row in csv_records(_text_lines(path, counter), path):
        if width is None:
            width = len(row)
            continue
        if not row or row == [""]:
            continue
        if len(row) != width:
            bad.bad(f"{path}:{line}", f"expected {width} fields as in the header, got {len(row)}")
            continue
        yield line, row


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
                dates = parse_date_strings(values, plan.date_format)
                flag(np.isnat(dates), lambda i: f"column {column!r}: {values[i]!r} is not a date pandas can read")
            elif plan.dates == "parts":
                frame = pd.DataFrame({c: columns[plan.index(c)] for c in plan.date_columns})
                dates = dates_from_parts(frame, plan.date_columns)
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
        season = season_of(median_of(steps), n) if n >= 3 else 1
    return {"n": n, "rows_read": read["n"], "dropped_rows": first_valid, "filled": read["gaps"],
            "target": plan.inputs[0], "inputs": plan.inputs, "date_columns": plan.date_columns,
            "has_dates": read["has_dates"], "columns": columns, "file_features": features,
            "encoding": encoding.to_dict(), "train_stop": train_stop, "val_stop": val_stop,
            "freq": freq, "season": season or 1, "bad_rows": read["bad_rows"], "first_bad": read["first_bad"],
            "bytes": read["bytes"]}


# -- loading: the pass, cached ------------------------------------------------------------------------
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
