"""Readers for the file formats tasks train on. Each failure names the file."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from seqapps.core.errors import DataError


def read_table(path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV (``,``) or TSV (``.tsv``/``.tab``/``.txt``: tab) file with a header row.

    ``columns`` are required: a missing one is an error listing those present.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    tab = path.suffix.lower() in {".tsv", ".tab", ".txt"}
    try:
        frame = pd.read_csv(path, sep="\t" if tab else ",", quoting=csv.QUOTE_NONE if tab else csv.QUOTE_MINIMAL,
                            keep_default_na=False, dtype=str, encoding="utf-8", on_bad_lines="error")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header row and data") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: malformed {'TSV' if tab else 'CSV'}: {str(e).strip().splitlines()[-1]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in columns or ():
        if column not in frame.columns:
            raise DataError(f"{path}: no column {column!r}; columns are: {', '.join(frame.columns)}")
    if frame.empty:
        raise DataError(f"{path}: no data rows after the header")
    return frame


def pick_column(frame: pd.DataFrame, wanted: str | None, candidates: list[str], what: str, path) -> str:
    """The configured column, or the first of ``candidates`` present."""
    if wanted:
        if wanted not in frame.columns:
            raise DataError(f"{path}: no {what} column {wanted!r}; columns are: {', '.join(frame.columns)}")
        return wanted
    for name in candidates:
        for column in frame.columns:
            if column.lower() == name:
                return column
    raise DataError(f"{path}: cannot tell which column holds the {what}; set data.{what}_column "
                    f"(columns are: {', '.join(frame.columns)})")


def read_text_file(path) -> str:
    """A UTF-8 text file's content; binary or undecodable files fail with one line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: {e.strerror}") from None
    if b"\x00" in raw[:1 << 20]:
        raise DataError(f"{path}: looks like a binary file (NUL bytes); expected UTF-8 text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (undecodable byte at offset {e.start}); "
                        "expected a UTF-8 text file") from None
