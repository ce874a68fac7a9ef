"""Readers for tagged sentences: CoNLL-U, ``word/TAG`` lines and two-column files.

Every reader returns a list of sentences, each a pair ``(words, tags)`` of equal-length
lists of strings. A malformed line fails with one :class:`~seqapps.core.errors.DataError`
naming the file and the line number.

CoNLL-U (https://universaldependencies.org/format.html):

- ``#`` lines are comments; a blank line ends a sentence (a missing final blank line is fine);
- a word line has 10 tab-separated columns: ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC;
- multi-word token lines (ID ``1-2``) give the surface form of several words and are skipped:
  the words they span carry the tags, as in UD's own UPOS scoring;
- empty nodes (ID ``8.1``) exist only in the enhanced graph and are skipped too.

``word/TAG`` files hold one sentence a line, tokens separated by whitespace, each token
split at its last ``/`` (so ``1/2/CD`` is the word ``1/2``). Two-column files hold one
``word TAG`` (tab or spaces) a line with blank lines between sentences; files with more
tab-separated columns (CoNLL-2000/2003 style) take the first as the word and the last as
the tag. :func:`read_tagged` picks the format from the file's name and contents.
"""

from __future__ import annotations

import re
from pathlib import Path

from seqapps.core.errors import DataError

TAGSETS = ("upos", "xpos")
_INT_ID = re.compile(r"[1-9][0-9]*$")
_RANGE_ID = re.compile(r"[1-9][0-9]*-[1-9][0-9]*$")
_EMPTY_ID = re.compile(r"[0-9]+\.[1-9][0-9]*$")

Sentence = tuple[list[str], list[str]]


def _lines(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text") from None
    return path, text.splitlines()


def read_conllu(path, tagset: str = "upos") -> list[Sentence]:
    """Sentences of a CoNLL-U file as ``(words, tags)`` with the UPOS or XPOS column."""
    if tagset not in TAGSETS:
        raise DataError(f"data.tagset must be upos or xpos, got {tagset!r}")
    column = 3 if tagset == "upos" else 4
    path, lines = _lines(path)
    sentences, words, tags, expected = [], [], [], 1

    def close():
        nonlocal words, tags, expected
        if words:
            sentences.append((words, tags))
        words, tags, expected = [], [], 1

    for number, line in enumerate(lines, 1):
        if not line.strip():
            close()
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        where = f"{path}:{number}"
        if len(cols) != 10:
            raise DataError(f"{where}: expected 10 tab-separated CoNLL-U columns, found {len(cols)}")
        token_id = cols[0]
        if _RANGE_ID.match(token_id) or _EMPTY_ID.match(token_id):
            continue
        if not _INT_ID.match(token_id):
            raise DataError(f"{where}: word ID must be an integer (or a range 1-2, or an empty node 8.1), "
                            f"got {token_id!r}")
        if int(token_id) != expected:
            raise DataError(f"{where}: word ID {token_id} out of order; expected {expected} "
                            "(is a blank line missing between sentences?)")
        form, tag = cols[1], cols[column].strip()
        if not form or not tag:
            raise DataError(f"{where}: empty FORM or {tagset.upper()} column")
        words.append(form)
        tags.append(tag)
        expected += 1
    close()
    if not sentences:
        raise DataError(f"{path}: no sentences found; expected CoNLL-U word lines")
    if all(t == "_" for _, ts in sentences for t in ts):
        raise DataError(f"{path}: the {tagset.upper()} column is empty (all '_'); try data.tagset="
                        f"{'upos' if tagset == 'xpos' else 'xpos'}")
    return sentences


def read_slash_tagged(path) -> list[Sentence]:
    """One sentence a line of ``word/TAG`` tokens."""
    path, lines = _lines(path)
    sentences = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        words, tags = [], []
        for token in line.split():
            word, slash, tag = token.rpartition("/")
            if not slash or not word or not tag:
                raise DataError(f"{path}:{number}: token {token!r} is not word/TAG")
            words.append(word)
            tags.append(tag)
        sentences.append((words, tags))
    if not sentences:
        raise DataError(f"{path}: no sentences found; expected lines of word/TAG tokens")
    return sentences


def read_columns(path) -> list[Sentence]:
    """One ``word TAG`` a line (tab- or space-separated), blank lines between sentences.

    With tabs, the first column is the word and the last the tag (extra columns between
    them are ignored), so CoNLL-2000/2003-style files read too.
    """
    path, lines = _lines(path)
    sentences, words, tags = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        if line.startswith("#") or line.startswith("-DOCSTART-"):
            continue
        cols = line.rstrip("\n").split("\t") if "\t" in line else line.split()
        if len(cols) < 2 or not cols[0].strip() or not cols[-1].strip():
            raise DataError(f"{path}:{number}: expected a word and a tag separated by a tab or spaces, "
                            f"got {line.strip()[:60]!r}")
        if "\t" not in line and len(cols) != 2:
            raise DataError(f"{path}:{number}: expected 2 space-separated columns (word TAG), found {len(cols)}")
        words.append(cols[0].strip())
        tags.append(cols[-1].strip())
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise DataError(f"{path}: no sentences found; expected word<TAB>TAG lines")
    return sentences


def sniff_format(path) -> str:
    """``conllu``, ``slash`` or ``columns`` from the name, then the first word lines."""
    path = Path(path)
    if path.suffix.lower() == ".conllu":
        return "conllu"
    _, lines = _lines(path)
    sample = [ln for ln in lines if ln.strip() and not ln.startswith("#")][:50]
    if not sample:
        raise DataError(f"{path}: the file has no sentences")
    if all(len(ln.split("\t")) == 10 for ln in sample) and re.match(r"[0-9]", sample[0]):
        return "conllu"
    if any("\t" in ln for ln in sample):
        return "columns"
    tokens = [t for ln in sample for t in ln.split()]
    if sum("/" in t for t in tokens) * 2 >= len(tokens):
        return "slash"
    return "columns"


def read_tagged(path, tagset: str = "upos") -> list[Sentence]:
    """Read any supported tagged file (see the module docstring)."""
    kind = sniff_format(path)
    if kind == "conllu":
        return read_conllu(path, tagset)
    return read_slash_tagged(path) if kind == "slash" else read_columns(path)


TAGGED_SUFFIXES = {".conllu", ".conll", ".txt", ".tsv", ".pos", ".tag", ".tagged"}  # what a folder is searched for
