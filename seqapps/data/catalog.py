"""Named datasets: what each name means under the data directory.

The data directory is ``--data-dir`` or the environment variable ``SEQAPPS_DATA``.
A name resolves to files inside it; ``path`` entries are relative to it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from seqapps.errors import DataError

ENV = "SEQAPPS_DATA"


@dataclasses.dataclass(frozen=True)
class NamedDataset:
    name: str
    task: str
    files: dict            # split -> path relative to the data directory
    description: str
    options: dict = dataclasses.field(default_factory=dict)  # task-specific reader options

    def paths(self, data_dir: Path) -> dict[str, Path]:
        return {split: data_dir / rel for split, rel in self.files.items()}

    def available(self, data_dir: Path | None) -> bool:
        return data_dir is not None and all(p.exists() for p in self.paths(data_dir).values())


CATALOG: dict[str, NamedDataset] = {d.name: d for d in [
    NamedDataset("sst2", "sentiment",
                 {"train": "sst2/train.tsv", "val": "sst2/dev.tsv", "test": "sst2/test.tsv"},
                 "SST-2 movie-review sentiment (GLUE), 67k phrases",
                 {"text_column": "sentence", "label_column": "label", "label_names": ["negative", "positive"]}),
    NamedDataset("ud_english_ewt", "pos",
                 {"train": "ud_english_ewt/en_ewt-ud-dev.conllu", "test": "ud_english_ewt/en_ewt-ud-test.conllu"},
                 "UD English-EWT: train on dev (last 10% validates), test on test"),
    NamedDataset("ud_english_atis", "pos",
                 {"train": "ud_english_atis/en_atis-ud-train.conllu", "val": "ud_english_atis/en_atis-ud-dev.conllu",
                  "test": "ud_english_atis/en_atis-ud-test.conllu"},
                 "UD English-ATIS flight-booking queries"),
    NamedDataset("anki_fra_eng", "translation", {"all": "anki_fra_eng/fra.txt"},
                 "Tatoeba/Anki English-French pairs, split by MD5 of the English side",
                 {"columns": ["en", "fr"], "split_by": "en", "val_fraction": 0.01, "test_fraction": 0.01}),
    NamedDataset("flickr8k_1000", "captioning",
                 {"all": "flickr8k_1000/captions.txt"},
                 "1,000 Flickr8k images with 5 captions each (images/ beside the captions)"),
    NamedDataset("tinyshakespeare", "char_lm", {"all": "tinyshakespeare/input.txt"},
                 "Tiny Shakespeare, 1.1M characters"),
    NamedDataset("airline_passengers", "forecasting", {"all": "timeseries/airline-passengers.csv"},
                 "monthly airline passengers 1949-1960", {"target": "Passengers"}),
    NamedDataset("daily_min_temperatures", "forecasting", {"all": "timeseries/daily-min-temperatures.csv"},
                 "daily minimum temperatures, Melbourne 1981-1990", {"target": "Temp"}),
    NamedDataset("monthly_sunspots", "forecasting", {"all": "timeseries/monthly-sunspots.csv"},
                 "monthly sunspot numbers 1749-1983", {"target": "Sunspots"}),
    NamedDataset("pollution", "forecasting", {"all": "timeseries/pollution.csv"},
                 "Beijing PM2.5, hourly, several variables", {"target": "pm2.5", "features": ["all"]}),
]}


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The data directory: the explicit argument, else $SEQAPPS_DATA, else None."""
    value = explicit or os.environ.get(ENV)
    return Path(value).expanduser() if value else None


def named(name: str, explicit_dir=None) -> tuple[NamedDataset, dict[str, Path]]:
    """Resolve a named dataset to its files, or fail with what to do."""
    if name not in CATALOG:
        raise DataError(f"unknown dataset {name!r}; expected demo, a path, tfds:NAME or one of: {', '.join(CATALOG)}")
    entry, root = CATALOG[name], data_dir(explicit_dir)
    if root is None:
        raise DataError(f"dataset {name!r} needs a data directory: set {ENV}=DIR or pass --data-dir DIR")
    missing = [str(p) for p in entry.paths(root).values() if not p.exists()]
    if missing:
        raise DataError(f"dataset {name!r} not found under {root}: missing {', '.join(missing)}")
    return entry, entry.paths(root)
