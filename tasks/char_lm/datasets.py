"""The named datasets of the char_lm task: what each name means under the data directory
(``--data-dir`` or ``$SEQAPPS_DATA``); :mod:`seqapps.data.catalog` gathers them from every task."""

from seqapps.data.catalog import NamedDataset

DATASETS = [
    NamedDataset("tinyshakespeare", "char_lm", {"all": "tinyshakespeare/input.txt"},
                 "Tiny Shakespeare, 1.1M characters"),
]
