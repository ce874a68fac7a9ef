"""The named datasets of the captioning task: what each name means under the data directory
(``--data-dir`` or ``$SEQAPPS_DATA``); :mod:`seqapps.data.catalog` gathers them from every task."""

from seqapps.data.catalog import NamedDataset

DATASETS = [
    NamedDataset("flickr8k_1000", "captioning",
                 {"all": "flickr8k_1000/captions.txt"},
                 "1,000 Flickr8k images with 5 captions each (images/ beside the captions)"),
]
