"""The named datasets of the sentiment task: what each name means under the data directory
(``--data-dir`` or ``$SEQAPPS_DATA``); :mod:`seqapps.data.catalog` gathers them from every task."""

from seqapps.data.catalog import NamedDataset

DATASETS = [
    NamedDataset("sst2", "sentiment",
                 {"train": "sst2/train.tsv", "val": "sst2/dev.tsv", "test": "sst2/test.tsv"},
                 "SST-2 movie-review sentiment (GLUE), 67k phrases",
                 {"text_column": "sentence", "label_column": "label", "label_names": ["negative", "positive"]}),
]
