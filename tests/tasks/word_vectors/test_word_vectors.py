"""word_vectors on the demo text (its planted pair ends up nearest), its analogy scoring, and the text
tasks reading the vectors it writes (model.word_vectors=RUN_DIR), frozen or fine-tuned."""

from __future__ import annotations

import json

import numpy as np
import pytest

import seqapps
from seqapps.core.errors import DataError
from seqapps.data.vectors import read_vectors
from tasks.word_vectors.demo import PLANTED

pytestmark = pytest.mark.slow  # each test trains or uses the trained run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("word_vectors")
    run = seqapps.train("word_vectors", "demo", run_dir=root / "run", verbose=0,
                        overrides=["model.dim=16", "data.min_count=1", "train.epochs=6", "train.batch_size=256",
                                   "train.learning_rate=0.01", "train.patience=0"])
    return run, run.export(root / "export")


def test_the_planted_pair_are_each_others_nearest_neighbours(trained):
    run, export = trained
    words, matrix = read_vectors(run.dir / "vectors.txt")
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    a, b = (words.index(w) for w in PLANTED)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -2)
    assert sims[a].argmax() == b and sims[b].argmax() == a
    # the export serves the same vectors and neighbours as the file
    predictor = seqapps.load(export)
    assert np.allclose(predictor.vectors([PLANTED[0]])[0], matrix[a], atol=1e-5)
    assert predictor.neighbours(PLANTED[0], k=1)[0][0] == PLANTED[1]
    assert predictor.neighbours(["no-such-word"], k=3) == [[]]
    assert predictor.analogy(["violin"], ["cello"], ["violin"])[0] != "violin"
    with pytest.raises(DataError, match=r"^a, b and c must hold as many words each; got 2, 1 and 1$"):
        predictor.analogy(["violin", "cello"], ["cello"], ["violin"])


def test_evaluate_scores_an_analogy_file_and_names_a_bad_line(trained, tmp_path):
    run, export = trained
    questions = tmp_path / "questions-words.txt"
    questions.write_text(": kinds\ncat dog cat dog\nviolin cello violin cello\ncat dog unknownword x\n"
                         ": more\nbread cheese violin cello\n", encoding="utf-8")
    cfg = run.config
    cfg.data.source = str(questions)
    metrics = run.task.evaluate(seqapps.load(export), run.task.load_data(cfg).test, cfg)
    a = metrics["analogies"]
    assert a["questions"] == 4 and a["answered"] == 3 and set(a["sections"]) == {"kinds", "more"}
    assert a["sections"]["more"]["answered"] == 1 and 0 <= a["accuracy"] <= 1
    assert PLANTED[0] in metrics["neighbours"] or metrics["neighbours"]
    questions.write_text(": kinds\ncat dog cat\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"questions-words.txt:2: expected four words"):
        run.task.load_data(cfg)


@pytest.mark.parametrize("task, overrides", [
    ("sentiment", ["model.units=8", "model.subword_buckets=500"]),
    ("pos", ["model.units=8", "model.embedding_dim=8", "model.char_dim=4", "model.char_features=8"]),
    ("translation", ["model.units=8", "model.attention_units=8", "train.batch_size=16", "train.steps_per_epoch=3",
                     "model.target_word_vectors={vectors}"]),  # French sources: hardly a word has a vector
])
def test_a_text_task_reads_the_trained_vectors_frozen_and_its_export_answers_like_the_run(trained, tmp_path, task,
                                                                                           overrides):
    from conftest import assert_same_outputs, sample_batches

    run, _ = trained
    vectors = str(run.dir)
    text_run = seqapps.train(task, "demo", run_dir=tmp_path / "run", verbose=0, evaluate=False,
                             overrides=["train.epochs=1", f"model.word_vectors={vectors}",
                                        *[o.format(vectors=vectors) for o in overrides]])
    words, matrix = read_vectors(run.dir / "vectors.txt")
    import keras

    model = keras.saving.load_model(text_run.model_path, compile=False)
    layer = {"sentiment": "embedding", "pos": "word_vectors", "translation": "target_embedding"}[task]
    table = keras.ops.convert_to_numpy(model.get_layer(layer).embeddings)
    assert table.shape[1] == matrix.shape[1]  # the embedding takes the vectors' width
    vocab = {"sentiment": "vocab.txt", "pos": "vector_words.txt", "translation": "target_vocab.txt"}[task]
    rows = (text_run.dir / vocab).read_text(encoding="utf-8").split("\n")
    offset = 2 if task == "pos" else 0  # pos's table: padding and unknown rows before the file's words
    shared = [(i + offset, words.index(w)) for i, w in enumerate(rows) if w in words]
    assert shared, "no word of the vocabulary has a vector"
    ids, file_rows = zip(*shared)
    assert np.allclose(table[list(ids)], matrix[list(file_rows)], atol=1e-5)  # frozen: still the file's numbers
    export = text_run.export(tmp_path / "export")
    memory, loaded = seqapps.load(text_run.dir), seqapps.load(export)
    t = {"task": text_run.task, "memory": memory, "loaded": loaded,
         "meta": json.loads((export / "metadata.json").read_text())}
    for name, calls in sample_batches(t, n=3).items():
        assert_same_outputs(loaded.call(name, **calls["batch"]), memory.call(name, **calls["batch"]), f"{task}:{name}")


def test_fine_tuned_vectors_move(trained, tmp_path):
    import keras

    run, _ = trained
    text_run = seqapps.train("sentiment", "demo", run_dir=tmp_path / "run", verbose=0, evaluate=False,
                             overrides=["train.epochs=1", "model.units=8", "model.subword_buckets=500",
                                        f"model.word_vectors={run.dir / 'vectors.txt'}",
                                        "model.word_vectors_trainable=true"])
    words, matrix = read_vectors(run.dir / "vectors.txt")
    table = keras.ops.convert_to_numpy(
        keras.saving.load_model(text_run.model_path, compile=False).get_layer("embedding").embeddings)
    vocab = (text_run.dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    i = vocab.index("the")
    assert not np.allclose(table[i], matrix[words.index("the")], atol=1e-4)  # trained away from the file's numbers
    assert np.abs(table[i] - matrix[words.index("the")]).max() < 0.5         # ... starting from them


def test_a_missing_vectors_file_fails_before_the_run_is_written(tmp_path):
    with pytest.raises(DataError, match="no such word-vectors file"):
        seqapps.train("sentiment", "demo", run_dir=tmp_path / "run", verbose=0,
                      overrides=["train.epochs=1", f"model.word_vectors={tmp_path / 'none.txt'}"])
    assert not (tmp_path / "run").exists()
