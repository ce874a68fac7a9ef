"""The named datasets of the video_frames task: what each name means under the data directory
(``--data-dir`` or ``$SEQAPPS_DATA``); :mod:`seqapps.data.catalog` gathers them from every task."""

from seqapps.data.catalog import NamedDataset

DATASETS = [
    NamedDataset("moving_digits", "video_frames", {},
                 "generated: sklearn's 8x8 handwritten digits moving on a canvas, label = direction per frame",
                 {"generated": "moving_digits"}),
]
