"""Readers for tagged sentences: CoNLL-U, ``word/TAG`` lines and two-column files.

Every reader streams: it reads its file one line at a time and yields one sentence at a time, a
pair ``(words, tags)`` of equal-length lists of strings (:func:`tagged_sentences`); the ``read_*``
functions return them as a list. A malformed line is a bad row
(:class:`seqapps.data.streaming.BadRows`): one :class:`~seqapps.core.errors.DataError` naming the
file and the line number, or, when bad rows are skipped, the sentence holding it is left out and
counted.

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
the tag. :func:`sniff_format` picks the format from the file's name and first lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from seqapps.core.errors import DataError
from seqapps.data.streaming import BadRows

TAGSETS = ("upos", "xpos")
_RANGE_ID = re.compile(r"[1-9][0-9]*-[1-9][0-9]*$")
_EMPTY_ID = re.compile(r"[0-9]+\.[1-9][0-9]*$")

Sentence = tuple[list[str], list[str]]


class TextLines:
    """The lines of a UTF-8 file, split as ``str.splitlines`` splits the whole text (a BOM dropped),
    read in blocks of about a megabyte: :meth:`blocks` yields ``(lines before, [line, ...])``;
    ``bytes`` counts the bytes read so far (for a progress bar)."""

    block = 1 << 20

    def __init__(self, path):
        self.path, self.bytes = Path(path), 0

    def blocks(self) -> Iterator[tuple[int, list[str]]]:
        path = self.path
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        number, newlines, tail, first = 0, 0, b"", True
        with open(path, "rb") as f:
            while True:
                data = f.read(self.block)
                if data:
                    data = tail + data
                    cut = data.rfind(b"\n") + 1
                    if not cut:
                        tail = data
                        continue
                    chunk, tail = data[:cut], data[cut:]
                elif tail:
                    chunk, tail = tail, b""
                else:
                    return
                try:
                    text = chunk.decode("utf-8")
                except UnicodeDecodeError as e:
                    line = newlines + chunk[:e.start].count(b"\n") + 1
                    raise DataError(f"{path}:{line}: not UTF-8 text") from None
                newlines += chunk.count(b"\n")
                self.bytes += len(chunk)
                if first:
                    text, first = text.removeprefix("\ufeff"), False
                lines = text.splitlines()
                yield number, lines
                number += len(lines)


def numbered_lines(path, lines: TextLines | None = None) -> Iterator[tuple[int, str]]:
    """``(number, line)`` of a UTF-8 file read a block at a time (see :class:`TextLines`)."""
    for before, block in (lines if lines is not None else TextLines(path)).blocks():
        yield from enumerate(block, before + 1)


def conllu_sentences(path, tagset: str = "upos", bad: BadRows | None = None,
                     lines: TextLines | None = None) -> Iterator[Sentence]:
    """Sentences of a CoNLL-U file as ``(words, tags)`` with the UPOS or XPOS column, one at a time."""
    if tagset not in TAGSETS:
        raise DataError(f"data.tagset must be upos or xpos, got {tagset!r}")
    bad = bad if bad is not None else BadRows()
    column = 3 if tagset == "upos" else 4
    words, tags, expected, broken, found, tagged = [], [], 1, False, False, False
    for before, block in (lines if lines is not None else TextLines(path)).blocks():
        for number, line in enumerate(block, before + 1):
            if not line or line.isspace():
                if words and not broken:
                    found, tagged = True, tagged or any(t != "_" for t in tags)
                    yield words, tags
                words, tags, expected, broken = [], [], 1, False
                continue
            if broken or line[0] == "#":
                continue
            cols = line.split("\t")
            token_id, why = cols[0], None
            if len(cols) != 10:
                why = f"expected 10 tab-separated CoNLL-U columns, found {len(cols)}"
            elif token_id.isdigit() and token_id.isascii() and token_id[0] != "0":  # a word (most lines)
                if int(token_id) != expected:
                    why = (f"word ID {token_id} out of order; expected {expected} "
                           "(is a blank line missing between sentences?)")
                elif not cols[1] or not cols[column].strip():
                    why = f"empty FORM or {tagset.upper()} column"
            elif _RANGE_ID.match(token_id) or _EMPTY_ID.match(token_id):
                continue
            else:
                why = f"word ID must be an integer (or a range 1-2, or an empty node 8.1), got {token_id!r}"
            if why is not None:
                bad.bad(f"{path}:{number}", why)
                broken = True  # skipped: the rest of its sentence goes with it
                continue
            words.append(cols[1])
            tags.append(cols[column].strip())
            expected += 1
    if words and not broken:
        found, tagged = True, tagged or any(t != "_" for t in tags)
        yield words, tags
    if not found:
        raise DataError(f"{path}: no sentences found; expected CoNLL-U word lines")
    if not tagged:
        raise DataError(f"{path}: the {tagset.upper()} column is empty (all '_'); try data.tagset="
                        f"{'upos' if tagset == 'xpos' else 'xpos'}")


def slash_sentences(path, bad: BadRows | None = None, lines: TextLines | None = None) -> Iterator[Sentence]:
    """One sentence a line of ``word/TAG`` tokens, one at a time."""
    bad = bad if bad is not None else BadRows()
    found = False
    for number, line in numbered_lines(path, lines):
        if not line.strip() or line.startswith("#"):
            continue
        words, tags = [], []
        for token in line.split():
            word, slash, tag = token.rpartition("/")
            if not slash or not word or not tag:
                bad.bad(f"{path}:{number}", f"token {token!r} is not word/TAG")
                break
            words.append(word)
            tags.append(tag)
        else:
            found = True
            yield words, tags
    if not found:
        raise DataError(f"{path}: no sentences found; expected lines of word/TAG tokens")


def column_sentences(path, bad: BadRows | None = None, lines: TextLines | None = None) -> Iterator[Sentence]:
    """One ``word TAG`` a line (tab- or space-separated), blank lines between sentences, one
    sentence at a time. With tabs, the first column is the word and the last the tag (extra
    columns between them are ignored), so CoNLL-2000/2003-style files read too."""
    bad = bad if bad is not None else BadRows()
    words, tags, broken, found = [], [], False, False
    for number, line in numbered_lines(path, lines):
        if not line.strip():
            if words and not broken:
                found = True
                yield words, tags
            words, tags, broken = [], [], False
            continue
        if broken or line.startswith("#") or line.startswith("-DOCSTART-"):
            continue
        tab = "\t" in line
        cols = line.split("\t") if tab else line.split()
        why = None
        if len(cols) < 2 or not cols[0].strip() or not cols[-1].strip():
            why = f"expected a word and a tag separated by a tab or spaces, got {line.strip()[:60]!r}"
        elif not tab and len(cols) != 2:
            why = f"expected 2 space-separated columns (word TAG), found {len(cols)}"
        if why is not None:
            bad.bad(f"{path}:{number}", why)
            broken = True
            continue
        words.append(cols[0].strip())
        tags.append(cols[-1].strip())
    if words and not broken:
        found = True
        yield words, tags
    if not found:
        raise DataError(f"{path}: no sentences found; expected word<TAB>TAG lines")


def sniff_format(path) -> str:
    """``conllu``, ``slash`` or ``columns`` from the name, then the first 50 word lines."""
    path = Path(path)
    if path.suffix.lower() == ".conllu":
        return "conllu"
    sample = []
    for _, line in numbered_lines(path):
        if line.strip() and not line.startswith("#"):
            sample.append(line)
            if len(sample) == 50:
                break
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


def tagged_sentences(path, tagset: str = "upos", bad: BadRows | None = None, lines: TextLines | None = None,
                     kind: str | None = None) -> Iterator[Sentence]:
    """The sentences of any supported tagged file, one at a time; ``kind`` is its format
    (:func:`sniff_format` when not given)."""
    kind = kind or sniff_format(path)
    if kind == "conllu":
        return conllu_sentences(path, tagset, bad, lines)
    return slash_sentences(path, bad, lines) if kind == "slash" else column_sentences(path, bad, lines)


def read_conllu(path, tagset: str = "upos") -> list[Sentence]:
    """Sentences of a CoNLL-U file as ``(words, tags)`` with the UPOS or XPOS column."""
    return list(conllu_sentences(path, tagset))


def read_slash_tagged(path) -> list[Sentence]:
    """One sentence a line of ``word/TAG`` tokens."""
    return list(slash_sentences(path))


def read_columns(path) -> list[Sentence]:
    """One ``word TAG`` a line (tab- or space-separated), blank lines between sentences."""
    return list(column_sentences(path))


def read_tagged(path, tagset: str = "upos") -> list[Sentence]:
    """Read any supported tagged file (see the module docstring) into a list."""
    return list(tagged_sentences(path, tagset))


TAGGED_SUFFIXES = {".conllu", ".conll", ".txt", ".tsv", ".pos", ".tag", ".tagged"}  # what a folder is searched for
