"""translation: readers, text handling, and train -> export -> translate on tiny data (the shared
contract is in test_contract.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import needs_data, run_cli
from tasks.translation import data as parallel
from seqapps.core.errors import DataError
from seqapps.core.task import Splits

PAIRS = [  # (French, English): the tiny corpus the model must learn by heart
    ("Je suis fatigué.", "I'm tired."), ("Où est la gare ?", "Where is the station?"),
    ("Il fait froid.", "It's cold."), ("Nous avons faim.", "We are hungry."),
    ("Elle aime le café.", "She likes coffee."), ("Tu es en retard.", "You're late."),
    ("C'est l'été !", "It's summer!"), ("Je ne sais pas.", "I don't know."),
    ("Ils ont un chien.", "They have a dog."), ("Le chat dort.", "The cat is sleeping."),
    ("Merci beaucoup.", "Thank you very much."), ("Bonne nuit !", "Good night!"),
]
TINY = ["--set", "model.units=32", "--set", "model.embedding_dim=32", "--set", "model.attention_units=32",
        "--set", "train.learning_rate=0.01", "--set", "train.patience=0", "--set", "train.batch_size=16"]


def overrides(args):
    return [args[i + 1] for i in range(0, len(args), 2)]


# -- text --------------------------------------------------------------------------------------
def test_standardize_keeps_accents_and_splits_clitics():
    out = parallel.standardize(tf.constant(["L’été, c'est génial!", "Don't touch Tom's café\u202f?", "   "]))
    assert [s.decode() for s in out.numpy()] == ["l' été , c' est génial !", "do n't touch tom 's café ?", ""]
    cased = parallel.standardize_cased(tf.constant(["Où est-il ?"]))
    assert cased.numpy()[0].decode() == "Où est - il ?"


@pytest.mark.parametrize("text,french", [("I'm tired. Don't go, it's Tom's!", False),
                                         ("L'homme n'est pas là : c'est ça !", True),
                                         ("Peut-être (demain).", False)])
def test_detokenize_inverts_standardize(text, french):
    tokens = parallel.standardize_cased(tf.constant([text]))
    assert parallel.detokenize(tokens, french_spacing=french).numpy()[0].decode() == text


# -- readers --------------------------------------------------------------------------------------
class Cfg:
    source, source_lang, target_lang, columns, split_by = "", "fr", "en", [], ""
    val_fraction, test_fraction = 0.2, 0.2
    source_vocab_size, target_vocab_size, max_length, max_output_length, lowercase_target = 8000, 6000, 40, 50, False
    fit_sample, skip_bad_rows = 0, False

    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_pairs_file_header_extra_columns_and_direction(tmp_path):
    f = tmp_path / "pairs.tsv"
    f.write_text("en\tfr\tnote\n" + "".join(f"{en}\t{fr}\tCC-BY\n" for fr, en in PAIRS * 5), encoding="utf-8")
    splits = parallel.load_parallel(Cfg(source=str(f)), "translation")
    src, tgt = splits.train.materialize()
    assert all(s in {fr for fr, _ in PAIRS} for s in src) and all(t in {en for _, en in PAIRS} for t in tgt)
    # reversed direction
    rev = parallel.load_parallel(Cfg(source=str(f), source_lang="en", target_lang="fr"), "translation")
    assert rev.train.materialize()[0][0] in {en for _, en in PAIRS}
    # no target sentence in two splits
    seen = [set(getattr(splits, s).materialize()[1]) for s in ("train", "val", "test")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


def test_reader_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Bonjour\tHello\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv:2: expected 2 tab-separated columns"):
        parallel.load_parallel(Cfg(source=str(bad)), "translation")
    headed = tmp_path / "headed.tsv"
    headed.write_text("en\tfr\nHello\tBonjour\n", encoding="utf-8")
    with pytest.raises(DataError, match="no 'de' column; its columns are en, fr"):
        parallel.load_parallel(Cfg(source=str(headed), source_lang="de"), "translation")
    folder = tmp_path / "aligned"
    folder.mkdir()
    (folder / "corpus.fr").write_text("a\nb\nc\n")
    (folder / "corpus.en").write_text("a\nb\n")
    with pytest.raises(DataError, match="has 3 lines but"):
        parallel.load_parallel(Cfg(source=str(folder)), "translation")
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        parallel.load_parallel(Cfg(source=str(empty)), "translation")


@needs_data
@pytest.mark.slow
def test_anki_split_follows_the_protocol():
    from seqapps.data import catalog

    root = catalog.data_dir()
    if root is None or not (root / "anki_fra_eng" / "fra.txt").exists():
        pytest.skip("anki_fra_eng is not under $SEQAPPS_DATA")
    streams = parallel.load_parallel(Cfg(source="anki_fra_eng", val_fraction=0.1, test_fraction=0.1), "translation")
    splits = Splits(*(getattr(streams, s).materialize() for s in ("train", "val", "test")))
    import hashlib

    bucket = lambda s: int(hashlib.md5(s.encode("utf-8")).hexdigest(), 16) % 100  # noqa: E731
    assert all(bucket(en) == 0 for en in splits.test[1]) and all(bucket(en) == 1 for en in splits.val[1])
    total = sum(len(getattr(splits, s)[0]) for s in ("train", "val", "test"))
    assert total > 130000 and 800 < len(splits.test[0]) < 2000
    assert not set(splits.test[1]) & set(splits.train[1])


@pytest.mark.parametrize("attention,cell", [("none", "gru"), ("multiplicative", "lstm"), ("additive", "rnn")])
@pytest.mark.slow
def test_every_attention_kind_serves_after_a_checkpoint_round_trip(attention, cell, tmp_path):
    import keras

    from seqapps.core import registry
    from seqapps.inference.predictor import Predictor
    from seqapps.training.fit import resolve_config

    task = registry.get("translation")
    cfg = resolve_config(task, "demo", overrides=[f"model.attention={attention}", f"model.cell={cell}",
                                                   "model.units=8", "model.embedding_dim=8", "model.attention_units=8"])
    prep = task.fit_preprocessing(cfg, task.load_data(cfg))
    model = task.build_model(cfg, prep)
    model.save(tmp_path / "m.keras")
    model = keras.saving.load_model(tmp_path / "m.keras")
    predictor = Predictor.in_memory(task, task.endpoints(model, prep, cfg),
                                    {"config": cfg.to_dict(), "decoding": task.decoding(cfg)})
    out = predictor.translate(["Je suis fatigué.", ""], beam=2)
    assert len(out) == 2 and out[1] == ""
    assert predictor.attention(["Je suis fatigué."])[0]["weights"].shape[1] == 4


def test_label_smoothing_averages_over_the_real_tokens_whatever_the_padding():
    """``train.label_smoothing`` trains on the smoothed cross-entropy, its mean over the real target tokens:
    padding a batch wider (a longer bucket) leaves the loss unchanged, and 0 keeps the plain loss."""
    import keras

    from seqapps.core import registry
    from seqapps.training.losses import SmoothedTokenLoss
    from seqapps.training.fit import resolve_config

    task = registry.get("translation")
    rng = np.random.default_rng(0)
    targets = np.array([[5, 9, 2, 0], [7, 2, 0, 0]])
    logits = rng.normal(size=(2, 4, 12)).astype("float32")
    wider_targets = np.pad(targets, [(0, 0), (0, 3)])
    wider_logits = np.concatenate([logits, rng.normal(size=(2, 3, 12)).astype("float32")], axis=1)
    losses = {}
    for smoothing in (0.0, 0.1):
        cfg = resolve_config(task, "demo", overrides=[f"train.label_smoothing={smoothing}"])
        model = keras.Sequential([keras.layers.Identity()])
        task.compile(model, cfg, keras.optimizers.Adam(), None)
        loss = model.loss
        losses[smoothing] = [float(loss(t, p, sample_weight=(t > 0).astype("float32")))
                             for t, p in ((targets, logits), (wider_targets, wider_logits))]
    assert isinstance(model.loss, SmoothedTokenLoss) and model.loss.label_smoothing == 0.1
    assert losses[0.1][0] == pytest.approx(losses[0.1][1], rel=1e-5)  # the mean over the 5 real tokens
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    real = targets > 0
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    expected = (0.9 * nll - 0.1 * log_probs.mean(-1))[real].mean()
    assert losses[0.1][0] == pytest.approx(expected, rel=1e-5)
    assert losses[0.0][0] != pytest.approx(losses[0.1][0])  # 0: the recipe's plain loss, not the smoothed one


# -- end to end -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model that learns 12 pairs by heart (aligned files, dev = train), and its export."""
    from seqapps.training.fit import train

    root = tmp_path_factory.mktemp("translation")
    data = root / "corpus"
    data.mkdir()
    for split in ("train", "dev"):
        (data / f"{split}.fr").write_text("".join(fr + "\n" for fr, _ in PAIRS), encoding="utf-8")
        (data / f"{split}.en").write_text("".join(en + "\n" for _, en in PAIRS), encoding="utf-8")
    run = train("translation", str(data), epochs=8, overrides=overrides(TINY) + ["train.steps_per_epoch=10"], run_dir=root / "run", verbose=0)
    export = run.export(root / "export")
    return run, export


SAMPLE = [fr for fr, _ in PAIRS] + ["", "Xyzzy ☃ 🤖 plugh !", " ".join(["chat"] * 300)]


@pytest.mark.slow
def test_model_learns_the_tiny_corpus(trained):
    run, _ = trained
    predictor = run.predictor()
    out = predictor.translate([fr for fr, _ in PAIRS], beam=1)
    exact = sum(o == en for o, (_, en) in zip(out, PAIRS))
    assert exact >= 10, list(zip(out, [en for _, en in PAIRS]))
    assert run.metrics["val"]["bleu"] > 60


@pytest.mark.slow
def test_export_decodes_like_the_run_and_handles_odd_sources(trained):
    from seqapps import load

    run, export = trained
    memory, p = load(run.dir), load(export)
    expected = {"default": memory.translate(SAMPLE), "greedy": memory.translate(SAMPLE, beam=1),
                "beam3": memory.translate(SAMPLE, beam=3, length_penalty=1.0)}
    got = {"default": p.translate(SAMPLE), "greedy": p.translate(SAMPLE, beam=1),
           "beam3": p.translate(SAMPLE, beam=3, length_penalty=1.0)}
    att = p.call("attention", text=SAMPLE, beam_width=1)
    got["att_shape"], got["src_len"] = list(att["attention"].shape), att["source_lengths"].tolist()
    for key in ("default", "greedy", "beam3"):
        assert got[key] == expected[key], key
    assert got["default"][:12] == [en for _, en in PAIRS] or sum(
        a == en for a, (_, en) in zip(got["default"], PAIRS)) >= 10
    # bad input: empty -> empty; unknown words -> a translation; 300 words -> truncated to max_length
    assert got["default"][12] == ""
    assert isinstance(got["default"][13], str)
    max_length = json.loads((Path(export) / "metadata.json").read_text())["max_length"]
    assert got["src_len"][12] == 0 and got["src_len"][14] == max_length
    batch, steps, width = got["att_shape"]
    assert batch == len(SAMPLE) and width == max_length and steps >= 1


@pytest.mark.slow
def test_predictor_api_and_attention_weights(trained):
    from seqapps import load

    _, export = trained
    predictor = load(export)
    assert predictor.translate([]) == []
    rows = predictor.attention(["Je suis fatigué.", ""])
    first = rows[0]
    assert first["source_tokens"] == ["je", "suis", "fatigué", "."]
    assert first["weights"].shape[1] == 4 and first["weights"].shape[0] >= len(first["output_tokens"])
    np.testing.assert_allclose(first["weights"].sum(-1), 1.0, rtol=1e-4)
    assert rows[1]["translation"] == "" and rows[1]["source_tokens"] == []
    assert predictor.translate("Je suis fatigué.") == predictor.translate(["Je suis fatigué."])[0]  # one in, one out
    with pytest.raises(DataError, match="texts"):
        predictor.translate(None)


@pytest.mark.slow
def test_cli_predict_and_evaluate_with_plots(trained, tmp_path):
    run, export = trained
    proc = run_cli("predict", export, "Je suis fatigué.", "")
    assert proc.returncode == 0, proc.stderr
    from seqapps import load

    assert proc.stdout.splitlines() == load(export).translate(["Je suis fatigué.", ""])
    proc = run_cli("evaluate", export, "--data", str(Path(run.dir).parent / "corpus"), "--split", "val",
                   "--out", tmp_path, "--plot")
    assert proc.returncode == 0, proc.stderr
    assert "BLEU" in proc.stdout and "by source length" in proc.stdout
    assert list(tmp_path.glob("attention-*.png"))
    report = json.loads((tmp_path / "evaluation-val.json").read_text())
    assert report["examples"] == len(PAIRS) and "1-5" in report["by_source_length"]


@pytest.mark.slow
def test_cli_bad_options_fail_with_one_line(tmp_path):
    proc = run_cli("train", "translation", "--data", "demo", "--set", "model.attention=dot", "--run-dir", tmp_path / "r")
    assert proc.returncode == 2 and "model.attention must be one of" in proc.stderr
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    task = registry.get("translation")
    with pytest.raises(DataError, match="demo pairs are in en and fr"):
        task.load_data(resolve_config(task, "demo", overrides=["data.source_lang=de"]))


def test_tfds_source_offline_with_mock_data():
    """tfds: pairs read their language features and keep the dataset's own splits."""
    import tensorflow_datasets as tfds

    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    task = registry.get("translation")
    cfg = resolve_config(task, "tfds:ted_hrlr_translate/pt_to_en", overrides=["data.source_lang=pt"])
    with tfds.testing.mock_data(num_examples=6):
        streams = task.load_data(cfg)
        splits = Splits(*(getattr(streams, s).materialize() for s in ("train", "val", "test")))
        assert len(splits.test[0]) == 6 and len(splits.val[0]) == 6 and len(splits.train[0]) == 6
        assert all(isinstance(s, str) and s for s in splits.train[0] + splits.train[1])
        with pytest.raises(DataError, match="set data.source_lang and data.target_lang"):
            task.load_data(resolve_config(task, "tfds:ted_hrlr_translate/pt_to_en", overrides=["data.source_lang=fr"]))


@pytest.mark.slow
def test_an_export_answering_in_slices_answers_as_one_call(trained, tmp_path, monkeypatch):
    """Decoding runs a slice of rows at a time (bounds.DECODE_VALUES): one row per slice gives the
    same translations, scores and attention as one slice of every row."""
    from seqapps import load
    from seqapps.core import bounds

    run, export = trained
    monkeypatch.setattr(bounds, "DECODE_VALUES", 1)  # every row alone
    sliced, whole = load(run.export(tmp_path / "sliced")), load(export)
    for beam in (1, 3):
        a = whole.call("translate", text=SAMPLE, beam_width=beam, length_penalty=0.6)
        b = sliced.call("translate", text=SAMPLE, beam_width=beam, length_penalty=0.6)
        assert b["translation"].tolist() == a["translation"].tolist()
        np.testing.assert_allclose(b["score"], a["score"], rtol=1e-5, atol=1e-6)
    a, b = (p.call("attention", text=SAMPLE, beam_width=2) for p in (whole, sliced))
    for key in a:
        assert b[key].shape == a[key].shape, key
        if key != "attention":
            assert b[key].tolist() == a[key].tolist(), key
    for row, n in enumerate(a["output_lengths"]):  # a row's weights up to its end step (past it: padding)
        np.testing.assert_allclose(b["attention"][row, :n + 1], a["attention"][row, :n + 1], atol=1e-6)
