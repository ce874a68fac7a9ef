"""The named datasets of the translation task: what each name means under the data directory
(``--data-dir`` or ``$SEQAPPS_DATA``); :mod:`seqapps.data.catalog` gathers them from every task."""

from seqapps.data.catalog import NamedDataset

DATASETS = [
    NamedDataset("anki_fra_eng", "translation", {"all": "anki_fra_eng/fra.txt"},
                 "Tatoeba/Anki English-French pairs, split by MD5 of the English side",
                 {"columns": ["en", "fr"], "split_by": "en", "val_fraction": 0.01, "test_fraction": 0.01}),
]
