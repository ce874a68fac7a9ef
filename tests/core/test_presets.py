"""Presets: named recipes as data, chosen by dataset, listed by the CLI; the count-vector artifact."""

from __future__ import annotations

import pytest

from conftest import run_cli
from seqapps.core import presets, registry
from seqapps.data import vectors
from seqapps.core.errors import ConfigError, DataError
from seqapps.training.fit import resolve_config


@pytest.mark.parametrize("task", registry.names())
def test_every_preset_resolves_to_a_valid_config(task):
    task_obj = registry.get(task)
    for preset in task_obj.presets:
        cfg = resolve_config(task_obj, preset.data, preset=preset.name)  # checked like any --set
        expected = task_obj.default_config().override(preset.overrides)
        expected.data.source, expected.train.backend = cfg.data.source, cfg.train.backend
        assert cfg.to_dict() == expected.to_dict() and cfg.to_dict() != task_obj.default_config().to_dict() or \
            not preset.overrides, preset.name


def test_a_named_dataset_trains_with_its_preset_unless_told_otherwise():
    pos = registry.get("pos")
    assert resolve_config(pos, "ud_english_ewt").model.crf is True  # the EWT recipe
    assert resolve_config(pos, "ud_english_ewt", preset="none").model.crf is False  # the bare defaults
    assert resolve_config(pos, "demo").model.crf is False  # demo has no recipe
    assert resolve_config(pos, "ud_english_ewt", overrides=["model.crf=false"]).model.crf is False  # --set wins
    cfg = resolve_config(pos, "ud_english_ewt", epochs=2)
    assert cfg.train.epochs == 2 and cfg.train.ema == 0.99  # explicit arguments apply over the preset
    lm = resolve_config(registry.get("char_lm"), "tinyshakespeare")
    assert (lm.model.cell, lm.train.decay, lm.train.batch_size) == ("gru", "cosine", 64)
    with pytest.raises(ConfigError, match="pos has no preset 'bogus'; expected one of: ewt, atis, none"):
        presets.choose(pos, "ud_english_ewt", "bogus")


@pytest.mark.slow
def test_cli_lists_presets_and_refuses_an_unknown_one(tmp_path):
    listed = run_cli("presets", "pos")
    assert listed.returncode == 0 and "ewt" in listed.stdout and "ud_english_ewt" in listed.stdout
    bad = run_cli("train", "pos", "--data", "demo", "--preset", "bogus", "--run-dir", tmp_path / "run")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: pos has no preset 'bogus'; expected one of: ewt, atis, none"]
    assert not (tmp_path / "run").exists()


def test_count_vectors_are_built_once_from_named_text_and_cached(tmp_path, monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    reads = []
    lines = ["the cat sat on the mat", "the dog sat on the rug", "a cat and a dog"] * 40 + [
        f"word{i} sat on the mat with word{i + 1}" for i in range(120)]
    monkeypatch.setattr(vectors, "read_unlabeled", lambda name: reads.append(name) or lines)
    tokenize = lambda texts: tf.strings.split(tf.constant(texts))  # noqa: E731
    path = vectors.resolve_vectors("count:sst2+tinyshakespeare", tokenize, dim=8)
    words, matrix = vectors.read_vectors(path)
    assert reads == ["sst2", "tinyshakespeare"] and matrix.shape == (len(words), 8) and "cat" in words
    assert vectors.resolve_vectors("count:sst2+tinyshakespeare", tokenize, dim=8) == path
    assert reads == ["sst2", "tinyshakespeare"]  # the second call read the cache
    with pytest.raises(DataError, match="no such word-vectors file"):  # a plain path is checked before any work
        vectors.resolve_vectors(str(tmp_path / "v.txt"), tokenize)
    (tmp_path / "v.txt").write_text("cat 0.5 0.25\n")
    assert vectors.resolve_vectors(str(tmp_path / "v.txt"), tokenize) == tmp_path / "v.txt"
    with pytest.raises(DataError, match="count vectors read the text of sst2, anki_fra_eng, tinyshakespeare"):
        vectors.resolve_vectors("count:imdb", tokenize)
