"""A forecaster's inputs on the Python side of a predictor: recent rows in, encoded windows out.

``check_windows`` says what is wrong with float windows before they reach the graph;
``last_window`` takes the last ``window`` rows of a DataFrame (date-ordered when it has
dates) and encodes them as training did; ``read_recent`` reads those rows from a CSV
file or stdin; ``next_dates`` names the forecast steps.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pandas as pd

from tasks.forecasting import data as ts
from seqapps.core.errors import DataError


def check_windows(windows, window: int, features: list[str]) -> np.ndarray:
    """``windows`` as float32 ``[batch, window, len(features)]`` with finite values, else a DataError."""
    try:
        windows = np.asarray(windows, dtype="float32")
    except (TypeError, ValueError):
        raise DataError("windows must be numbers [batch, window, features] (a list of lists or an array), "
                        f"got {type(windows).__name__}") from None
    want = (window, len(features))
    if windows.ndim != 3 or windows.shape[1:] != want:
        raise DataError(f"windows have shape {list(windows.shape)}; expected [batch, {want[0]}, {want[1]}] "
                        f"(inputs: {', '.join(features)})")
    if not np.isfinite(windows).all():
        i = int(np.flatnonzero(~np.isfinite(windows).reshape(len(windows), -1).all(axis=1))[0])
        raise DataError(f"window {i} holds NaN or inf; expected finite values in every step")
    return windows


def last_window(frame: pd.DataFrame, prep, date_column: str, where) -> tuple[np.ndarray, object]:
    """The last ``prep.window`` rows of ``frame`` encoded by ``prep.encoding``, and the last date (or None)."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame with columns "
                        f"{', '.join(c['name'] for c in prep.encoding.columns)}")
    if date_column and date_column.lower() != "none" and ts.find_column(frame, date_column) is None:
        date_column = ""
    if isinstance(frame.index, pd.DatetimeIndex):
        dates = frame.index
    else:
        dates, _ = ts.parse_dates(frame.reset_index(drop=True), date_column, where)
    if dates is not None and not dates.is_monotonic_increasing:
        order = np.argsort(dates.to_numpy(), kind="stable")
        frame, dates = frame.iloc[order], dates[order]
    if len(frame) < prep.window:
        raise DataError(f"{where}: {len(frame)} rows; the model needs the last {prep.window} steps")
    values = prep.encoding.encode(frame.iloc[-prep.window:], where=where, unseen_ok=False)
    return values, (dates[-1] if dates is not None else None)


def read_recent(inputs: list[str], input_file: str | None) -> tuple[pd.DataFrame, str]:
    """``(rows, where)`` from ``--input FILE.csv``, one CSV path argument, or CSV text on stdin."""
    from seqapps.data.readers import read_table

    if input_file or inputs:
        if len(inputs) > 1 or (input_file and inputs):
            raise DataError("forecasting reads one CSV window: pass --input FILE.csv (or CSV on stdin)")
        path = input_file or inputs[0]
        return read_table(path), path
    try:
        text = sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"stdin is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise DataError("no input: pass --input FILE.csv with the last steps of the series, or CSV on stdin")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"stdin: not a CSV table ({str(e).strip().splitlines()[-1]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, "stdin"


def next_dates(last, freq: str | None, horizon: int) -> list[str] | None:
    """The ``horizon`` dates after ``last`` at frequency ``freq`` (whole days as dates), or None."""
    if last is None or not freq:
        return None
    dates = pd.date_range(last, periods=horizon + 1, freq=freq)
    whole_days = all(d == d.normalize() for d in dates)
    return [str(d.date()) if whole_days else d.isoformat(sep=" ") for d in dates[1:]]
