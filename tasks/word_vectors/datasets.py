"""The word_vectors task declares no datasets of its own: it reads the text of other tasks' named
datasets (their training splits' English text, never a test split) by name; see :mod:`tasks.word_vectors.data`."""

DATASETS = []
