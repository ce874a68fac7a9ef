"""The named datasets of the pos task: what each name means under the data directory
(``--data-dir`` or ``$SEQAPPS_DATA``); :mod:`seqapps.data.catalog` gathers them from every task."""

from seqapps.data.catalog import NamedDataset

DATASETS = [
    NamedDataset("ud_english_ewt", "pos",
                 {"train": "ud_english_ewt/en_ewt-ud-dev.conllu", "test": "ud_english_ewt/en_ewt-ud-test.conllu"},
                 "UD English-EWT: train on dev (last 10% validates), test on test"),
    NamedDataset("ud_english_atis", "pos",
                 {"train": "ud_english_atis/en_atis-ud-train.conllu", "val": "ud_english_atis/en_atis-ud-dev.conllu",
                  "test": "ud_english_atis/en_atis-ud-test.conllu"},
                 "UD English-ATIS flight-booking queries"),
]
