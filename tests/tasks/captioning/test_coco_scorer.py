"""The COCO caption evaluation (pycocoevalcap) against figures worked out by hand, its
behaviour without Java, and the captioning settings the generalization variants use."""

from __future__ import annotations

import types

import numpy as np
import pytest

from seqapps.analysis import metrics

NO_JAVA = metrics.java_missing()
needs_java = pytest.mark.skipif(NO_JAVA is not None, reason="no Java runtime: the PTB tokenizer and METEOR "
                                "run in Java (apt-get install default-jre-headless)")

# Upper case, attached punctuation and a comma the references lack: the PTB tokenizer
# lower-cases and drops punctuation, so the hypotheses become "a dog runs on the grass" (6 words)
# and "a man rides a bike" (5), the references "a dog runs on the grass", "a brown dog is running",
# "a man rides a bicycle", "a person on a bike".
HYPS = ["A dog runs on the grass.", "A man, rides a bike"]
REFS = [["A dog runs on the grass.", "A brown dog is running ."], ["A man rides a bicycle.", "A person on a bike ."]]


@needs_java
@pytest.mark.slow
def test_coco_scores_match_the_hand_computed_values():
    s = metrics.coco_caption_scores(HYPS, REFS)
    # clipped n-gram matches over both images: 1-grams 6+5 of 6+5, 2-grams 5+4 of 5+4,
    # 3-grams 4+2 of 4+3 ("rides a bike" is in no reference), 4-grams 3+1 of 3+2; the hypotheses'
    # 11 words equal the closest references' 6+5, so no brevity penalty
    assert s["bleu1"] == pytest.approx(100.0, abs=1e-6)
    assert s["bleu2"] == pytest.approx(100.0, abs=1e-6)
    assert s["bleu3"] == pytest.approx(100 * (6 / 7) ** (1 / 3), abs=1e-6)
    assert s["bleu4"] == pytest.approx(100 * (6 / 7 * 4 / 5) ** (1 / 4), abs=1e-6)
    # ROUGE-L (beta 1.2, best precision and recall over the references): image 1 is a reference
    # (1.0); image 2's longest common subsequence with "a man rides a bicycle" is 4 of 5 words both
    # ways (F = 0.8); the mean is 0.9
    assert s["rouge_l"] == pytest.approx(90.0, abs=1e-6)
    # METEOR (a caption equal to a reference, the other matching 4 of its 5 words) and CIDEr-D
    # (x100; the words the two images share, such as "a", weigh nothing) are high, not exact here
    assert 80 < s["meteor"] <= 100 and s["cider_d"] > 100


@needs_java
@pytest.mark.slow
def test_report_keeps_sacrebleu_whose_final_period_lifts_bleu1():
    report = metrics.caption_report(["a dog runs ."], [["the dog sits ."]])
    # COCO: "a dog runs" vs "the dog sits" -> 1 of 3 unigrams; sacreBLEU keeps "." -> 2 of 4
    assert report["bleu1"] == pytest.approx(100 / 3, abs=1e-6)
    assert report["sacrebleu1"] == pytest.approx(50.0, abs=1e-6)
    # CIDEr-D weighs n-grams by log(images / images whose references hold them): log(1/1) = 0 in a
    # one-image corpus, so every caption scores 0 there
    assert report["cider_d"] == 0.0 and report["meteor"] < 60
    assert "coco_note" not in report


@needs_java
@pytest.mark.slow
def test_meteor_keeps_one_jvm_and_scores_each_call_on_its_own():
    first = metrics.coco_caption_scores(HYPS, REFS)["meteor"]
    jvm = metrics._METEOR[0]
    other = metrics.coco_caption_scores(HYPS[:1], REFS[:1])["meteor"]
    assert metrics._METEOR[0] is jvm  # no new JVM for the next call
    assert metrics.coco_caption_scores(HYPS, REFS)["meteor"] == first and other != first  # no state carried


def test_a_failed_meteor_score_ends_its_jvm_and_the_next_call_starts_one():
    class Broken:
        def __init__(self):
            import threading

            self.lock = threading.Lock()

        def compute_score(self, gts, res):
            self.lock.acquire()  # as pycocoevalcap's does, then fails with the lock held
            raise BrokenPipeError("the JVM died")

    saved = list(metrics._METEOR)
    metrics._METEOR.clear()
    try:
        with pytest.raises(BrokenPipeError):
            metrics._meteor_score(Broken, {0: ["a"]}, {0: ["a"]})
        assert metrics._METEOR == []  # dropped: the next call starts a new scorer
    finally:
        metrics._METEOR[:] = saved


def test_without_java_only_sacrebleu_and_one_line_saying_why(monkeypatch):
    import shutil

    from seqapps.core import registry

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "java" else "/bin/" + name)
    with pytest.raises(metrics.JavaMissing, match="need a Java runtime"):
        metrics.coco_caption_scores(HYPS, REFS)
    report = metrics.caption_report(HYPS, REFS)
    assert set(report) == {"sacrebleu1", "sacrebleu2", "sacrebleu3", "sacrebleu4", "coco_note"}
    assert report["sacrebleu1"] > 80
    task = registry.get("captioning")
    shown = task.format_metrics({"images": 2, **{f"{k}_greedy": v for k, v in report.items() if k != "coco_note"},
                                 "coco_note": report["coco_note"]})
    assert shown.splitlines()[1].startswith("  greedy: sacreBLEU-1 ") and "METEOR" not in shown.splitlines()[1]
    assert [line for line in shown.splitlines() if "Java" in line] == [f"  note: {metrics.COCO_NEEDS_JAVA}"]


# -- the settings of the generalization variants -------------------------------------------------
def test_label_smoothing_loss_is_the_sparse_loss_at_zero_and_smooths_by_hand():
    import keras

    from seqapps.training.losses import SmoothedTokenLoss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    targets = np.array([[2, 4, 0], [1, 0, 0]], "int32")  # three real words, three padding
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)(targets, logits)
    assert float(SmoothedTokenLoss(0.0)(targets, logits)) == pytest.approx(float(plain), rel=1e-5)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    real = [(0, 0), (0, 1), (1, 0)]
    want = np.mean([-(0.9 * logp[b, t, targets[b, t]] + 0.1 * logp[b, t].mean()) for b, t in real])
    loss = SmoothedTokenLoss(0.1)
    assert float(loss(targets, logits)) == pytest.approx(float(want), rel=1e-5)
    assert SmoothedTokenLoss.from_config(loss.get_config()).label_smoothing == 0.1


def test_settings_are_validated_and_context_dropout_round_trips():
    from seqapps.core import registry
    from seqapps.core.errors import ConfigError
    from tasks.captioning.model import ImageCaptioner
    from seqapps.training.fit import resolve_config

    task = registry.get("captioning")
    cfg = resolve_config(task, "demo", overrides=["train.label_smoothing=0.1", "model.context_dropout=0.2",
                                                  "data.flip=true", "data.min_count=1"])
    assert (cfg.train.label_smoothing, cfg.model.context_dropout, cfg.data.flip) == (0.1, 0.2, True)
    for bad, message in [("train.label_smoothing=1", "train.label_smoothing must be in [0, 1)"),
                         ("model.context_dropout=-0.1", "model.context_dropout must be in [0, 1)"),
                         ("data.min_count=0", "data.min_count must be >= 1")]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            resolve_config(task, "demo", overrides=[bad])
    model = ImageCaptioner(12, encoder="small_cnn", image_size=32, units=8, embedding_dim=8, feature_units=8,
                           attention_units=8, dropout=0.0, context_dropout=0.5)
    assert ImageCaptioner.from_config(model.get_config()).settings["context_dropout"] == 0.5
    inputs = {"image": np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32"),
              "tokens": np.array([[2, 5, 6], [2, 7, 0]], "int32")}
    # inference ignores it; training drops context units (a different output)
    np.testing.assert_allclose(model(inputs, training=False), model(inputs, training=False))
    assert not np.allclose(model(inputs, training=True), model(inputs, training=False))


def test_flip_reads_the_mirrored_feature_view_for_about_half_the_rows(tmp_path):
    from tasks.captioning.data import SPECIALS, CaptionSet, CaptionVocab
    from tasks.captioning.demo import examples
    from seqapps.encoders import build_encoder
    from tasks.captioning.features import feature_cache_dir, frozen_features, image_batches

    rows = examples(n=6, size=32, seed=3)
    data = CaptionSet([b for b, _ in rows], [[f"caption {j}" for j in range(20)] for _ in rows],
                      [f"img{i}.png" for i in range(len(rows))])
    weights = tmp_path / "encoder.weights.h5"  # a weights file: the same encoder each time, and cached features
    build_encoder("small_cnn", "none", 32).save_weights(weights)
    m = types.SimpleNamespace(encoder="small_cnn", encoder_weights=str(weights), encoder_trainable=False,
                              image_size=32)
    cache = str(tmp_path / "cache")
    plain, mirrored = frozen_features(m, data, cache), frozen_features(m, data, cache, flip=True)
    assert feature_cache_dir(m, cache) != feature_cache_dir(m, cache, flip=True)  # two views side by side
    assert plain.shape == mirrored.shape and not np.allclose(plain, mirrored)
    ids = np.repeat(np.arange(len(data)), 20)  # the rows in order: each image's 20 captions
    prep = CaptionVocab(SPECIALS + ["caption"], max_length=2)

    def views(**kw):
        seen = []
        for x, _ in image_batches(data, prep, m, 3, 40, shuffle=False, feature_cache=cache, **kw):
            for image, row in zip(ids[len(seen):], x["features"].numpy()):
                seen.append([np.array_equal(row, plain[image]), np.array_equal(row, mirrored[image])])
        return np.array(seen)
    flipped = views(flip=True)
    assert len(flipped) == len(ids) and (flipped.sum(axis=1) == 1).all()  # each row is its image, one view
    assert 0.3 < flipped[:, 1].mean() < 0.7
    assert views()[:, 0].all()  # without flip every row reads the plain view


@pytest.mark.slow
def test_scheduled_sampling_feeds_the_greedy_guess_at_rate_one_and_ramps():
    from seqapps.core import registry
    from seqapps.core.errors import ConfigError
    from tasks.captioning.model import ImageCaptioner
    from tasks.captioning.model import SamplingRamp
    from seqapps.training.fit import resolve_config

    task = registry.get("captioning")
    assert resolve_config(task, "demo", overrides=["train.scheduled_sampling=0.25"]).train.scheduled_sampling == 0.25
    with pytest.raises(ConfigError, match=r"train.scheduled_sampling must be in \[0, 1\)"):
        resolve_config(task, "demo", overrides=["train.scheduled_sampling=1"])
    assert [SamplingRamp(0.4, 8).rate(e) for e in (0, 2, 4, 7)] == [0.0, 0.2, 0.4, 0.4]

    model = ImageCaptioner(12, encoder="small_cnn", image_size=32, units=8, embedding_dim=8, feature_units=8,
                           attention_units=8, dropout=0.0, scheduled_sampling=0.5)
    assert ImageCaptioner.from_config(model.get_config()).settings["scheduled_sampling"] == 0.5
    plain = ImageCaptioner(12, encoder="small_cnn", image_size=32, units=8, embedding_dim=8, feature_units=8,
                           attention_units=8)
    assert plain.sampling_rate is None and len(plain.weights) == len(model.weights) - 1  # default: no new weight
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    tokens = np.array([[2, 5, 6, 7, 3], [2, 7, 8, 3, 0], [2, 9, 3, 0, 0]], "int32")
    teacher = np.asarray(model({"image": images, "tokens": tokens}, training=False))
    # rate 0 (where the ramp starts): training reads the references, as inference does
    np.testing.assert_allclose(model({"image": images, "tokens": tokens}, training=True), teacher, atol=1e-6)
    # rate 1: every input after the first is the greedy guess of the step before, padding kept
    model.sampling_rate.assign(1.0)
    own = tokens.copy()
    for t in range(1, tokens.shape[1]):
        logits = np.asarray(model({"image": images, "tokens": own}, training=False))
        own[:, t] = np.where(tokens[:, t] > 0, logits[:, t - 1].argmax(-1), 0)
    assert (own != tokens).any()  # an untrained model guesses other words than the references
    np.testing.assert_allclose(model({"image": images, "tokens": tokens}, training=True),
                               model({"image": images, "tokens": own}, training=False), atol=1e-5)
    # the callback sets the rate each epoch: 0, then the peak from epoch epochs // 2 = 1 on
    model.sampling_rate.assign(0.0)
    import keras
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    model.fit({"image": images, "tokens": tokens[:, :-1]}, tokens[:, 1:], epochs=2, verbose=0,
              callbacks=[SamplingRamp(0.5, 2)])
    assert float(model.sampling_rate.numpy()) == 0.5
