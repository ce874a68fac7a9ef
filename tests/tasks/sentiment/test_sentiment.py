"""sentiment end to end on the demo data, its data sources, and its bad-input contract."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest

import seqapps
from conftest import cli_here, needs_data, run_cli
from seqapps.core import registry
from tasks.sentiment.data import load_labelled_texts
from seqapps.core.errors import DataError

TEXTS = ["the film is wonderful !", "this movie was boring", "", "   ", "😀 très bien, 東京", "x" * 100_000,
         "a gripping , beautiful film", "dull and far too long"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment")
    # a narrow n-gram table projected to the word width, as the sst2 recipe trains it
    run = seqapps.train("sentiment", "demo", epochs=4, run_dir=root / "run", verbose=0,
                        overrides=["model.units=16", "model.embedding_dim=16", "model.subword_dim=8",
                                   "train.learning_rate=0.005"])
    export_dir = run.export(root / "export")
    return run, export_dir


@pytest.mark.slow
def test_run_directory_holds_everything(trained):
    run, _ = trained
    for name in ["config.json", "run.json", "vocab.txt", "labels.txt", "best.keras", "history.csv",
                 "curves.png", "metrics.json"]:
        assert (run.dir / name).exists(), name
    assert any((run.dir / "logs").rglob("*tfevents*"))
    assert set(run.metrics) >= {"val", "test"} and 0 <= run.metrics["test"]["accuracy"] <= 1


@pytest.mark.slow
def test_predictor_returns_plain_python(trained):
    _, export_dir = trained
    results = seqapps.load(export_dir).predict(TEXTS)  # empty, blank, emoji and 100,000-character texts too
    assert len(results) == len(TEXTS) and all(isinstance(r["label"], str) and isinstance(r["probability"], float)
                                    for r in results)
    assert abs(sum(results[0]["probabilities"].values()) - 1) < 1e-5
    assert all(r["label"] == max(r["probabilities"], key=r["probabilities"].get) for r in results)
    assert seqapps.load(export_dir).predict([]) == []


@pytest.mark.slow
def test_demo_model_learns_the_demo_task(trained):
    run, _ = trained
    results = run.predictor().predict(["the acting was brilliant", "the script is tedious , shallow and slow"])
    assert [r["label"] for r in results] == ["positive", "negative"]


@pytest.mark.slow
def test_metadata_describes_the_export(trained):
    _, export_dir = trained
    meta = json.loads((export_dir / "metadata.json").read_text())
    assert meta["task"] == "sentiment" and meta["topology"] == "many-to-one" and meta["dataset"] == "demo"
    assert meta["labels"] == ["negative", "positive"] and "test" in meta["metrics"]
    assert meta["config"]["model"]["units"] == 16 and set(meta["versions"]) >= {"tensorflow", "keras"}
    assert meta["signatures"]["serving_default"]["inputs"] == {"text": {"dtype": "string", "shape": [None]}}
    # the recurrent model has no self-attention: the signature is there (the same as the transformer's), empty
    maps = seqapps.load(export_dir).self_attention(["the film is wonderful !"])
    assert maps[0]["tokens"] == ["the", "film", "is", "wonderful", "!"] and maps[0]["attention"].shape == (0, 0, 5, 5)


@pytest.mark.slow
def test_cli_predict_evaluate_and_export(trained, tmp_path, capsys):
    run, export_dir = trained
    out = run_cli("predict", export_dir, "the film is wonderful !", "this movie was boring")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in {"positive", "negative"}
    (tmp_path / "in.txt").write_text("one\ntwo\nthree\n")
    assert len(cli_here(capsys, "predict", export_dir, "--input", tmp_path / "in.txt").stdout.strip().splitlines()) == 3
    assert len(cli_here(capsys, "predict", export_dir, input="a\nb\n").stdout.strip().splitlines()) == 2
    for target, cli in ((run.dir, run_cli), (export_dir, partial(cli_here, capsys))):
        out = cli("evaluate", target, "--data", "demo", "--out", tmp_path)
        assert out.returncode == 0, out.stderr
        assert "accuracy" in out.stdout and "confusion matrix" in out.stdout and "precision" in out.stdout
    assert (tmp_path / "confusion.png").exists()
    out = run_cli("export", run.dir, tmp_path / "again")
    assert out.returncode == 0 and (tmp_path / "again" / "saved_model.pb").exists()


@pytest.mark.slow
def test_failed_export_keeps_the_existing_one(trained, monkeypatch):
    run, export_dir = trained
    before = (export_dir / "saved_model.pb").read_bytes()
    import seqapps.inference.export as export_mod

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_mod, "build_archive", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run.export(export_dir)
    assert (export_dir / "saved_model.pb").read_bytes() == before
    # no temporary export folder is left beside it (the run directory's lock file may be there)
    assert [p.name for p in export_dir.parent.iterdir() if p.name.startswith(f".{export_dir.name}.")] == []
    assert seqapps.load(export_dir).predict(["fine"])[0]["label"] in {"positive", "negative"}


@pytest.mark.parametrize("subword_dim", [0, 8])
@pytest.mark.slow
def test_small_batch_is_overfit(subword_dim):
    import keras

    task = registry.get("sentiment")
    cfg = task.default_config().override(["model.units=16", "model.embedding_dropout=0", "model.head_dropout=0",
                                          "data.source=demo", f"model.subword_dim={subword_dim}"])
    import numpy as np
    import tensorflow as tf

    splits = task.load_data(cfg)
    texts, labels = splits.train.materialize()
    texts, labels = texts[:16], labels[:16]
    prep = task.fit_preprocessing(cfg, splits)
    features = task.encoder(cfg, prep)(tf.constant(texts))[0]
    y = np.asarray([prep.label_ids()[label] for label in labels])
    assert set(features) == {"tokens", "subwords"}
    keras.utils.set_random_seed(0)
    model = task.build_model(cfg, prep)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(features, y, epochs=40, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] == 1.0 and history.history["loss"][-1] < 0.05


# -- data sources ----------------------------------------------------------------------------------------
def _cfg(source, *overrides):
    cfg = registry.get("sentiment").default_config().override(list(overrides))
    cfg.data.source = source
    return cfg


def test_csv_with_string_labels_and_named_columns(tmp_path):
    rows = "\n".join(f'"{t}, really",{y}' for t, y in [("great", "pos"), ("awful", "neg")] * 10)
    (tmp_path / "reviews.csv").write_text("review_body,stars\n" + rows + "\n")
    cfg = _cfg(str(tmp_path / "reviews.csv"), "data.text_column=review_body", "data.label_column=stars")
    splits = load_labelled_texts(cfg.data, "sentiment")
    assert splits.info["labels"] == ["neg", "pos"]
    assert len(splits.train[0]) + len(splits.val[0]) + len(splits.test[0]) == 20
    assert splits.train[0][0].endswith(", really")
    with pytest.raises(DataError, match="no label column 'label'; columns are: review_body, stars"):
        load_labelled_texts(_cfg(str(tmp_path / "reviews.csv"), "data.text_column=review_body",
                                 "data.label_column=label").data, "sentiment")


def test_folder_with_splits_and_integer_labels(tmp_path):
    for name in ["train.tsv", "dev.tsv", "test.tsv"]:
        (tmp_path / name).write_text("sentence\tlabel\n" + "good\t1\nbad\t0\n" * 5)
    splits = load_labelled_texts(_cfg(str(tmp_path), "data.label_names=neg,pos").data, "sentiment")
    assert splits.info["labels"] == ["neg", "pos"] and len(splits.val[0]) == 10 and len(splits.test[0]) == 10


@needs_data
def test_named_sst2_resolves_under_the_data_directory():
    splits = load_labelled_texts(_cfg("sst2").data, "sentiment")
    assert splits.info["labels"] == ["negative", "positive"]
    assert (len(splits.train[0]), len(splits.val[0]), len(splits.test[0])) == (67349, 872, 1821)


def test_tfds_source_offline_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        splits = load_labelled_texts(_cfg("tfds:imdb_reviews").data, "sentiment")
    assert len(splits.train[0]) + len(splits.val[0]) > 0 and len(splits.test[0]) == 12
    assert set(splits.info["labels"]) <= {"0", "1"} and all(isinstance(t, str) for t in splits.train[0])


@pytest.mark.slow
def test_an_export_answering_in_slices_answers_as_one_call(trained, tmp_path, monkeypatch):
    """The n-gram model answers a slice of rows at a time (bounds.SUBWORD_VALUES): one row per slice
    gives the labels and probabilities of one slice of every row."""
    from seqapps.core import bounds

    run, export_dir = trained
    monkeypatch.setattr(bounds, "SUBWORD_VALUES", 1)  # every row alone
    sliced, whole = seqapps.load(run.export(tmp_path / "sliced")), seqapps.load(export_dir)
    a, b = (p.call("serving_default", text=TEXTS) for p in (whole, sliced))
    assert b["label"].tolist() == a["label"].tolist()
    np.testing.assert_allclose(b["probabilities"], a["probabilities"], atol=1e-6)
    assert b["probabilities"].shape == (len(TEXTS), 2)
    assert json.loads((tmp_path / "sliced" / "metadata.json").read_text())["bounds"]["subword_values"] == 1
