"""Plain text for character language models: reading a file or a folder, splitting it
into contiguous parts, and the character vocabulary.

Sources (read by :func:`seqapps.data.sources.load_splits`): ``demo``; a named dataset
(one text file); a text file; a folder, whose text files (by suffix, hidden ones
skipped) are read in sorted order, recursively, joined by blank lines; ``tfds:NAME``
with a ``text`` feature (``tfds:tiny_shakespeare``), each split's examples joined by
newlines. One text is split contiguously: the first part trains, then
``data.val_fraction`` of the characters validate, then ``data.test_fraction`` test.

Files and folders are never read whole: one cached pass over them
(:func:`seqapps.data.streaming.fitting_pass`, keyed by the files' sizes and modification
times and the split fractions) reads them in chunks, finds the characters of the training
part and writes the whole text once as ids into a flat binary file in the cache folder
(``uint8`` while the ids fit, else ``uint16``/``uint32``, as nanoGPT's ``train.bin``). Each
split is then a :class:`CharIds`, a range of that file read window by window through
``np.memmap``. ``demo`` and ``tfds:`` texts are small and stay strings.
"""

from __future__ import annotations

import codecs
import importlib
import os
from pathlib import Path

import keras
import numpy as np

from seqapps.data.preprocessing import Preprocessing, save_json
from seqapps.data.readers import read_text_file
from seqapps.data.sources import Reader, load_splits, resolve
from seqapps.data.splits import split, split_sizes
from seqapps.data.streaming import files_key, fitting_pass
from seqapps.core.errors import DataError
from seqapps.core.task import Splits

TEXT_SUFFIXES = {"", ".txt", ".text", ".md", ".rst", ".csv", ".tsv", ".py", ".tex", ".html", ".xml", ".json"}


def text_files(path: Path) -> list[Path]:
    """The files a text source reads, in order: the file, or a folder's text files (sorted, recursively,
    hidden ones skipped)."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(path).parts) and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no text files in the folder (expected .txt files or files without suffix)")
    return files


def read_text_source(path: Path) -> str:
    """A text file, or every text file in a folder (sorted, recursively), joined by blank lines."""
    return "\n\n".join(read_text_file(p) for p in text_files(path))


def load_texts(data_cfg, task: str, data_dir=None, verbose: bool = True) -> Splits:
    """Training, validation and (optional) test text (see the module docstring): strings for
    ``demo`` and ``tfds:`` sources, :class:`CharIds` for files and folders."""
    source = resolve(data_cfg.source, task, data_dir)
    path = source.paths.get("path", source.paths.get("all")) if source.kind in ("path", "named") else None
    if path is not None and set(source.paths) <= {"path", "all"}:
        fractions = (source.options.get("val_fraction", data_cfg.val_fraction),
                     source.options.get("test_fraction", data_cfg.test_fraction))
        return load_char_ids(text_files(path), *fractions, what=data_cfg.source, verbose=verbose)

    def demo(cfg):
        return importlib.import_module(f"tasks.{task}.demo").text()

    def read(path, cfg, options):
        text = read_text_source(path)
        if not text.strip():
            raise DataError(f"{cfg.source}: the text is empty")
        return text

    def contiguous(text, val_fraction, test_fraction):
        train, val, test = split(text, val_fraction, test_fraction, what=data_cfg.source, unit="characters")
        if len(train) < 2 or len(val) < 2:
            raise DataError(f"{data_cfg.source}: {len(text)} characters are too few to split into training and "
                            "validation text")
        return train, val, test

    parts, _ = load_splits(data_cfg, task, Reader(demo, read, _from_tfds, (), contiguous, "characters"), data_dir,
                           source)
    return Splits(parts["train"], parts["val"], parts["test"] or None)


def _from_tfds(examples, name, split_name, data_cfg) -> str:
    pieces = []
    for ex in examples:
        if "text" not in ex:
            raise DataError(f"tfds:{name}: no 'text' feature (features: {', '.join(sorted(ex))})")
        pieces.append(ex["text"].decode("utf-8", "replace"))
    return "\n".join(pieces)


# -- the character vocabulary --------------------------------------------------------------------
class CharVocab(Preprocessing):
    """Characters of the training text; id 0 is the unknown character. File ``chars.json``.

    ``warmup`` is a passage of the training text ending at a paragraph break. Every
    serving function reads it before its input, so reading starts from the state the
    model is used to: a model trained with carried state almost never saw the zero
    state, and a stateful LSTM primed from zero can babble for a hundred characters.
    """

    FILE = "chars.json"
    task = "char_lm"
    WARMUP = 256

    def __init__(self, chars: list[str], start: str, warmup: str = ""):
        self.chars, self.start = list(chars), start
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}
        self.warmup = warmup or start

    @classmethod
    def fit(cls, cfg, splits) -> "CharVocab":
        fit = splits.info.get("fit")
        if fit is not None:  # found by the fitting pass over the files
            return cls(fit["chars"], fit["start"], fit["warmup"])
        return cls.from_text(splits.train)

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        counts: dict[str, int] = {}
        for c in text:
            counts[c] = counts.get(c, 0) + 1
        start = "\n" if "\n" in counts else max(counts, key=counts.get)
        end = text.rfind("\n\n")
        end = end + 2 if end + 2 >= cls.WARMUP else len(text)
        return cls(sorted(counts), start, text[max(0, end - cls.WARMUP):end])

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    @property
    def start_id(self) -> int:
        return self.index[self.start]

    def save(self, run_dir) -> None:
        save_json(run_dir, self.FILE, {"chars": self.chars, "start": self.start, "warmup": self.warmup})

    @classmethod
    def load(cls, run_dir, cfg=None) -> "CharVocab":
        data = cls.read_json(run_dir, cls.FILE)
        return cls(data["chars"], data["start"], data.get("warmup", ""))

    def encode(self, text: str) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(c, 0) for c in text), dtype=np.int32, count=len(text))

    def lookup(self):
        """char -> id in the graph (unknown -> 0); built once per vocabulary object."""
        if not hasattr(self, "_lookup"):
            self._lookup = keras.layers.StringLookup(vocabulary=self.chars, num_oov_indices=1, mask_token=None,
                                                     output_mode="int", name="char_lookup")
            self._lookup.build(None)
        return self._lookup


# -- files of any size: the fitting pass, the ids file, and the splits as ranges of it -----------
FIT_VERSION = 1          # bumped when what the pass writes changes
CHUNK_BYTES = 1 << 18    # read and encoded at a time: 256 KB (work arrays of a few MB; faster than 4 MB, cache-sized)
NUL_CHECK_BYTES = 1 << 20  # as read_text_file: NUL bytes in the first MiB of a file mean a binary file


def text_chunks(files: list[Path], counter: list | None = None):
    """The text of ``files`` (joined by blank lines, as :func:`read_text_source` joins them) in
    pieces of about :data:`CHUNK_BYTES`; ``counter[0]`` counts the bytes read. Fails as
    :func:`seqapps.data.readers.read_text_file` does on a binary or undecodable file."""
    counter = counter if counter is not None else [0]
    for k, path in enumerate(files):
        if k:
            yield "\n\n"
        decoder, done = codecs.getincrementaldecoder("utf-8-sig")(), 0
        try:
            f = open(path, "rb")
        except OSError as e:
            raise DataError(f"{path}: {e.strerror}") from None
        with f:
            while True:
                raw = f.read(CHUNK_BYTES)
                if done < NUL_CHECK_BYTES and b"\x00" in raw[:NUL_CHECK_BYTES - done]:
                    raise DataError(f"{path}: looks like a binary file (NUL bytes); expected UTF-8 text")
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:
                    raise DataError(f"{path}: not UTF-8 text (undecodable byte at offset {done - pending + e.start})"
                                    "; expected a UTF-8 text file") from None
                done += len(raw)
                counter[0] += len(raw)
                if text:
                    yield text
                if not raw:
                    break


def code_points(text: str) -> np.ndarray:
    """The characters of ``text`` as Unicode code points (``uint32``)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def id_dtype(size: int):
    """The smallest unsigned type holding the ids ``0..size-1``."""
    return np.uint8 if size <= 1 << 8 else np.uint16 if size <= 1 << 16 else np.uint32


def load_char_ids(files: list[Path], val_fraction: float, test_fraction: float, what: str = "the text",
                  verbose: bool = True) -> Splits:
    """The splits of ``files`` as :class:`CharIds` over the ids file of the cached fitting pass, and
    in ``info["fit"]`` what the pass found (characters, counts, split sizes, the ids file)."""
    from seqapps.data import cache_folder

    settings = {"task": "char_lm", "pass": "char_ids", "version": FIT_VERSION,
                "fractions": [val_fraction, test_fraction]}
    key = files_key(files, settings)
    ids_path = cache_folder() / "fits" / f"{key}.char-ids.bin"

    def run(progress):
        return fit_char_ids(files, val_fraction, test_fraction, ids_path, progress, what)

    fit = fitting_pass(f"char_lm on {what}", files, settings, run, verbose=verbose)
    if not _ids_file_ok(fit):  # the ids file was removed or cut short: fit again
        (cache_folder() / "fits" / f"{key}.json").unlink(missing_ok=True)
        fit = fitting_pass(f"char_lm on {what}", files, settings, run, verbose=verbose)
    n_train, n_val, n_test = fit["sizes"]
    ids = dict(path=fit["ids"]["path"], dtype=fit["ids"]["dtype"], chars=fit["chars"], files=list(map(str, files)))
    splits = [CharIds(start=a, stop=a + n, **ids)
              for a, n in ((0, n_train), (n_train, n_val), (n_train + n_val, n_test))]
    return Splits(splits[0], splits[1], splits[2] if n_test else None, {"fit": fit})


def _ids_file_ok(fit: dict) -> bool:
    try:
        return os.path.getsize(fit["ids"]["path"]) == fit["n"] * np.dtype(fit["ids"]["dtype"]).itemsize
    except (OSError, KeyError, TypeError):
        return False


def fit_char_ids(files: list[Path], val_fraction: float, test_fraction: float, ids_path: Path, progress,
                 what: str = "the text") -> dict:
    """The fitting pass, in two reads of the files in chunks (memory bounded by a chunk):

    1. count every character and note where each first appears; the number of characters fixes
       the split, and the characters met in the training part are the vocabulary (sorted, ids from
       1, as :meth:`CharVocab.from_text` makes them);
    2. encode every chunk with that vocabulary (unknown: 0) into ``ids_path``, counting the
       training part's characters (for the start character).

    Then the warm-up passage is read back from the ids file, as :meth:`CharVocab.from_text` cuts it."""
    counter, total_bytes = [0], 0
    counts, first = np.zeros(0, np.int64), np.zeros(0, np.int64)
    n = 0
    for chunk in text_chunks(files, counter):
        cps = code_points(chunk)
        found = np.bincount(cps)
        if len(found) > len(counts):
            counts = np.concatenate([counts, np.zeros(len(found) - len(counts), np.int64)])
            first = np.concatenate([first, np.full(len(found) - len(first), -1, np.int64)])
        counts[:len(found)] += found
        new = np.flatnonzero((found > 0) & (first[:len(found)] < 0))
        if len(new) > 8:
            values, where = np.unique(cps, return_index=True)
            keep = first[values] < 0
            first[values[keep]] = n + where[keep]
        else:
            for cp in new:
                first[cp] = n + int(np.argmax(cps == cp))
        n += len(cps)
        progress(n, counter[0] // 2)
    total_bytes = counter[0]
    present = np.flatnonzero(counts)
    if not n or all(chr(c).isspace() for c in present):
        raise DataError(f"{what}: the text is empty")
    n_train, n_val, n_test = split_sizes(n, val_fraction, test_fraction, what, "characters")
    if n_train < 2 or n_val < 2:
        raise DataError(f"{what}: {n} characters are too few to split into training and validation text")
    vocab = present[first[present] < n_train]  # code points ascending: sorted characters
    chars = [chr(c) for c in vocab]
    dtype = id_dtype(len(chars) + 1)
    table = np.zeros(len(counts), dtype)
    table[vocab] = np.arange(1, len(chars) + 1)

    # 2. the ids file, written under a temporary name and renamed when complete
    ids_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = ids_path.with_name(f"{ids_path.name}.tmp{os.getpid()}")
    train_counts, done = np.zeros(len(chars) + 1, np.int64), 0
    try:
        with open(tmp, "wb") as out:
            for chunk in text_chunks(files, counter):
                ids = table[code_points(chunk)]
                out.write(ids.tobytes())
                if done < n_train:
                    train_counts += np.bincount(ids[:n_train - done], minlength=len(train_counts))
                done += len(ids)
                progress(n + done, counter[0] // 2)
        os.replace(tmp, ids_path)
    finally:
        tmp.unlink(missing_ok=True)
    if done != n:
        raise DataError(f"{what}: the files changed while being read; try again")

    index = {c: i + 1 for i, c in enumerate(chars)}
    if "\n" in index:
        start = "\n"
    else:  # the most frequent training character, ties to the one met first (as a dict's max does)
        best = train_counts[1:].max()
        start = min((c for c in chars if train_counts[index[c]] == best), key=lambda c: first[ord(c)])
    warmup = _warmup(ids_path, dtype, n_train, index.get("\n"), chars)
    return {"chars": chars, "start": start, "warmup": warmup, "n": n, "sizes": [n_train, n_val, n_test],
            "counts": {chr(c): int(counts[c]) for c in present},
            "train_counts": {c: int(train_counts[index[c]]) for c in chars},
            "ids": {"path": str(ids_path), "dtype": np.dtype(dtype).name}, "bytes": total_bytes}


def _warmup(ids_path: Path, dtype, n_train: int, newline: int | None, chars: list[str]) -> str:
    """The training text's last :data:`CharVocab.WARMUP` characters up to and including its last
    blank line (``"\\n\\n"``), or its last characters when that ends too early (as ``from_text``)."""
    end, step = -1, 1 << 16
    if newline is not None:
        ids = np.memmap(ids_path, dtype=dtype, mode="r", shape=(n_train,))
        stop = n_train
        while stop > 1 and end < 0:
            lo = max(0, stop - step)
            window = np.asarray(ids[lo:stop])
            pairs = np.flatnonzero((window[:-1] == newline) & (window[1:] == newline))
            if len(pairs):
                end = lo + int(pairs[-1])
            stop = lo + 1  # windows overlap by one, so a pair across their edge is seen
            if lo == 0:
                break
        del ids
    end = end + 2 if end + 2 >= CharVocab.WARMUP else n_train
    ids = np.memmap(ids_path, dtype=dtype, mode="r", shape=(n_train,))
    piece = np.asarray(ids[max(0, end - CharVocab.WARMUP):end])
    del ids
    return "".join(chars[i - 1] for i in piece)


class CharIds:
    """One split of a text as the ids ``start..stop`` of the fitting pass's ids file.

    :meth:`windows` reads rows of ids at given offsets through a fresh ``np.memmap`` each call (so
    the pages read do not stay mapped in the process); :meth:`materialize` re-reads the split's
    characters from the source files in chunks, for scoring, which reads a split whole."""

    def __init__(self, path, dtype, start: int, stop: int, chars: list[str], files: list[str]):
        self.path, self.dtype, self.start, self.stop = str(path), np.dtype(dtype), int(start), int(stop)
        self.chars, self.files, self.remap = list(chars), [Path(f) for f in files], None

    def __len__(self) -> int:
        return self.stop - self.start

    def with_vocab(self, vocab: "CharVocab") -> "CharIds":
        """The same split read with ``vocab``'s ids (a resumed run's saved vocabulary, if it differs
        from the one the ids file was written with: ids are mapped character by character)."""
        if list(vocab.chars) == self.chars:
            return self
        other = CharIds(self.path, self.dtype, self.start, self.stop, self.chars, list(map(str, self.files)))
        other.remap = np.array([0] + [vocab.index.get(c, 0) for c in self.chars], np.int32)
        return other

    def windows(self, starts, length: int) -> np.ndarray:
        """``int32 [len(starts), length]``: the ids ``starts[i]..starts[i]+length`` of the split."""
        starts = np.asarray(starts, np.int64)
        if len(self) == 0 or not len(starts):
            return np.zeros((len(starts), length), np.int32)
        ids = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.start * self.dtype.itemsize,
                        shape=(len(self),))
        rows = np.array(ids[starts[:, None] + np.arange(length)], dtype=np.int32)
        del ids
        return rows if self.remap is None else self.remap[rows]

    def ids(self) -> np.ndarray:
        """The whole split as ``int32`` ids (tests and small splits only)."""
        return self.windows([0], len(self))[0]

    def materialize(self) -> str:
        """The split's text, read from the source files (characters ``start..stop``)."""
        parts, at = [], 0
        for chunk in text_chunks(self.files):
            lo, hi = max(self.start - at, 0), min(self.stop - at, len(chunk))
            if lo < hi:
                parts.append(chunk[lo:hi])
            at += len(chunk)
            if at >= self.stop:
                break
        return "".join(parts)


def split_ids(part, vocab: CharVocab):
    """A split as something with ``len()`` and ``windows(starts, length)``: a :class:`CharIds` as it
    is (read with ``vocab``), a string encoded in memory."""
    if isinstance(part, CharIds):
        return part.with_vocab(vocab)
    return ArrayIds(vocab.encode(part))


class ArrayIds:
    """Ids in memory with the :class:`CharIds` reading interface."""

    def __init__(self, ids: np.ndarray):
        self.array = np.asarray(ids, np.int32)

    def __len__(self) -> int:
        return len(self.array)

    def windows(self, starts, length: int) -> np.ndarray:
        starts = np.asarray(starts, np.int64)
        return self.array[starts[:, None] + np.arange(length)] if len(starts) else np.zeros((0, length), np.int32)

    def ids(self) -> np.ndarray:
        return self.array
