"""Scores shared by tasks (classification reports, token accuracy...)."""

from __future__ import annotations

import numpy as np


def classification_report(y_true, y_pred, labels: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = list(y_true), list(y_pred)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    accuracy = float(np.mean([a == b for a, b in zip(y_true, y_pred)])) if y_true else 0.0
    return {
        "accuracy": accuracy,
        "macro_f1": float(np.mean(f)) if len(f) else 0.0,
        "examples": len(y_true),
        "per_class": {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                              "support": int(s[i])} for i, label in enumerate(labels)},
        "confusion_matrix": {"labels": labels,
                             "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()},
    }


def format_classification(report: dict) -> str:
    """A readable table of :func:`classification_report`."""
    labels = report["confusion_matrix"]["labels"]
    width = max([len(x) for x in labels] + [9])
    lines = [f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  ({report['examples']} examples)",
             "", f"{'class':<{width}}  precision  recall     f1  support"]
    for label in labels:
        c = report["per_class"][label]
        lines.append(f"{label:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:.4f}  {c['support']:7d}")
    lines += ["", "confusion matrix (rows = true, columns = predicted)",
              " " * width + "  " + " ".join(f"{x[:8]:>8}" for x in labels)]
    for label, row in zip(labels, report["confusion_matrix"]["matrix"]):
        lines.append(f"{label:<{width}}  " + " ".join(f"{v:8d}" for v in row))
    lines += [f"self-attention maps: {p}" for p in report.get("self_attention_plots", [])]
    return "\n".join(lines)


# -- regression (forecasting) ------------------------------------------------------------------
def mae(y_true, y_pred) -> float:
    """Mean absolute error over every element."""
    return float(np.mean(np.abs(np.asarray(y_true, "float64") - np.asarray(y_pred, "float64"))))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error over every element."""
    return float(np.sqrt(np.mean(np.square(np.asarray(y_true, "float64") - np.asarray(y_pred, "float64")))))


def mase(y_true, y_pred, scale: float) -> float:
    """Mean absolute scaled error: MAE divided by ``scale``, the in-sample MAE of the
    (seasonal-)naive forecast on the training part (Hyndman & Koehler, 2006)."""
    return mae(y_true, y_pred) / scale if scale and np.isfinite(scale) else float("nan")


def regression_scores(y_true, y_pred, mase_scale: float | None = None) -> dict:
    """``{"mae", "rmse"[, "mase"]}`` as floats."""
    out = {"mae": mae(y_true, y_pred), "rmse": rmse(y_true, y_pred)}
    if mase_scale is not None:
        out["mase"] = mase(y_true, y_pred, mase_scale)
    return out


def tagging_report(gold: list[list[str]], predicted: list[list[str]], labels: list[str], oov=None) -> dict:
    """Token-level scores of a sequence tagger.

    ``gold`` and ``predicted`` are per-sentence tag lists of equal lengths; ``oov`` (optional)
    per-sentence booleans marking words unseen in training. Returns token accuracy,
    sentence accuracy, OOV accuracy, and :func:`classification_report` over the tokens
    (per-tag precision/recall/F1 and the confusion matrix); gold tags outside ``labels``
    are added to it.
    """
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("gold and predicted tag sequences differ in number or length")
    flat_gold = [t for sent in gold for t in sent]
    flat_pred = [t for sent in predicted for t in sent]
    labels = list(labels) + sorted(set(flat_gold) - set(labels))
    report = classification_report(flat_gold, flat_pred, labels)
    report = {"accuracy": report.pop("accuracy"), "tokens": len(flat_gold), "sentences": len(gold),
              "sentence_accuracy": float(np.mean([g == p for g, p in zip(gold, predicted)])) if gold else 0.0,
              **{k: v for k, v in report.items() if k != "examples"}}
    if oov is not None:
        flags = np.array([bool(f) for sent in oov for f in sent], dtype=bool)
        hits = np.array([a == b for a, b in zip(flat_gold, flat_pred)], dtype=bool)
        report["oov_tokens"] = int(flags.sum())
        report["oov_accuracy"] = float(hits[flags].mean()) if flags.any() else None
        report["in_vocabulary_accuracy"] = float(hits[~flags].mean()) if (~flags).any() else None
    return report


def format_tagging(report: dict) -> str:
    """A readable summary of :func:`tagging_report`, then the per-tag table."""
    line = f"token accuracy {report['accuracy']:.4f} ({report['tokens']} tokens, {report['sentences']} sentences)"
    if report.get("oov_accuracy") is not None:
        line += f"\nOOV accuracy {report['oov_accuracy']:.4f} ({report['oov_tokens']} tokens unseen in training)"
    elif "oov_tokens" in report:
        line += "\nOOV accuracy n/a (no tokens unseen in training)"
    line += f"\nsentence accuracy {report['sentence_accuracy']:.4f}"
    table = format_classification({**report, "examples": report["tokens"]}).split("\n", 1)[1]
    return line + "\n" + table


# -- translation ------------------------------------------------------------------------------------
LENGTH_BUCKETS = [(1, 5), (6, 10), (11, 15), (16, 20), (21, None)]  # source words


def bucket_name(lo, hi) -> str:
    return f"{lo}-{hi}" if hi else f"{lo}+"


def length_buckets(sources, buckets=LENGTH_BUCKETS) -> dict[str, list[int]]:
    """``{"1-5": [indices of the sources of 1 to 5 words], ...}`` for the non-empty buckets, in order."""
    lengths = [len(s.split()) for s in sources]
    named = {bucket_name(lo, hi): [i for i, n in enumerate(lengths) if n >= lo and (hi is None or n <= hi)]
             for lo, hi in buckets}
    return {name: idx for name, idx in named.items() if idx}


def bleu_chrf(hypotheses, references) -> dict:
    """Corpus BLEU and chrF of single-reference ``hypotheses`` (sacreBLEU defaults, 13a, cased)."""
    import sacrebleu

    if not hypotheses:
        return {"bleu": 0.0, "chrf": 0.0, "examples": 0}
    return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score), "examples": len(hypotheses)}


def score_translations(sources, hypotheses, references, unseen=None) -> dict:
    """Corpus BLEU and chrF (sacreBLEU defaults, 13a tokenization), overall and by source length in words;
    with ``unseen`` (indices of the pairs whose source is no training source), ``unseen_source``: the
    same over those pairs alone."""
    report = bleu_chrf(hypotheses, references)
    report["by_source_length"] = {name: bleu_chrf([hypotheses[i] for i in idx], [references[i] for i in idx])
                                  for name, idx in length_buckets(sources).items()}
    if unseen is not None:
        report["unseen_source"] = bleu_chrf([hypotheses[i] for i in unseen], [references[i] for i in unseen])
    return report


def format_translation(metrics: dict) -> str:
    """A readable summary of :func:`score_translations` (with ``decoding``, ``samples`` and plots when present)."""
    lines = [f"BLEU {metrics['bleu']:.2f}  chrF {metrics['chrf']:.2f}  ({metrics['examples']} sentences, "
             f"{metrics.get('decoding', '')}; sacreBLEU 13a, cased)"]
    if "unseen_source" in metrics:
        u = metrics["unseen_source"]
        lines.append(f"unseen sources: BLEU {u['bleu']:.2f}  chrF {u['chrf']:.2f}  ({u['examples']} of "
                     f"{metrics['examples']} sentences, source not in the training split)")
    lines += ["", "by source length (words):"]
    for name, m in metrics.get("by_source_length", {}).items():
        lines.append(f"  {name:>6}  BLEU {m['bleu']:6.2f}  chrF {m['chrf']:6.2f}  ({m['examples']} sentences)")
    for s in metrics.get("samples", [])[:3]:
        lines += ["", f"  source:      {s['source']}", f"  reference:   {s['reference']}",
                  f"  translation: {s['translation']}"]
    for p in metrics.get("attention_plots", []):
        lines.append(f"attention map: {p}")
    return "\n".join(lines)


# -- forecasts beside their baselines ------------------------------------------------------------
def forecast_report(y_true, forecasts: dict, mase_scale: float | None = None, **facts) -> dict:
    """``facts`` and, per method (``{"model": ..., "naive": ...}``), :func:`regression_scores` on ``y_true``."""
    return {**facts, **{name: regression_scores(y_true, values, mase_scale) for name, values in forecasts.items()}}


def format_forecast(metrics: dict) -> str:
    """A table of :func:`forecast_report` (MAE, RMSE, MASE of the model and each baseline)."""
    rows = [k for k in ("model", "naive", "seasonal_naive") if k in metrics]
    lines = [f"{metrics['target']}, {metrics['split']} part: {metrics['windows']} windows, horizon "
             f"{metrics['horizon']}, season {metrics['season']} steps",
             f"{'':<16}{'MAE':>12}{'RMSE':>12}{'MASE':>9}"]
    for k in rows:
        s = metrics[k]
        lines.append(f"{'seqapps' if k == 'model' else k:<16}{s['mae']:>12.4f}{s['rmse']:>12.4f}"
                     f"{s.get('mase', float('nan')):>9.4f}")
    if "plot" in metrics:
        lines.append(f"plot: {metrics['plot']}")
    return "\n".join(lines)


# -- captioning: the COCO caption evaluation ---------------------------------------------------------
COCO_NEEDS_JAVA = ("COCO caption figures (BLEU, METEOR, ROUGE-L, CIDEr-D) need a Java runtime "
                   "(apt-get install default-jre-headless); sacreBLEU figures only")


class JavaMissing(RuntimeError):
    """The COCO caption evaluation's tokenizer and METEOR run in Java, and none is on PATH."""


def java_missing() -> str | None:
    """None when a working ``java`` is on PATH, else :data:`COCO_NEEDS_JAVA`."""
    import shutil
    import subprocess

    java = shutil.which("java")
    if java is None:
        return COCO_NEEDS_JAVA
    try:
        subprocess.run([java, "-version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return COCO_NEEDS_JAVA
    return None


def coco_caption_scores(hypotheses, references) -> dict[str, float]:
    """The COCO caption evaluation (``pycocoevalcap``, the coco-caption code) of one caption per
    image against all of its references: ``bleu1``..``bleu4``, ``meteor`` (METEOR 1.5),
    ``rouge_l`` and ``cider_d`` (coco-caption's CIDEr is CIDEr-D: sigma 6, clipped counts,
    document frequencies from these references), each x100 like sacreBLEU's figures.

    Captions and references are lower-cased and split by Stanford's PTB tokenizer with the
    punctuation tokens dropped, as on the COCO server. Raises :class:`JavaMissing` without Java.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} captions for {len(references)} reference sets")
    if not hypotheses:
        return {**{f"bleu{n}": 0.0 for n in range(1, 5)}, "meteor": 0.0, "rouge_l": 0.0, "cider_d": 0.0}
    why = java_missing()
    if why:
        raise JavaMissing(why)
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # one tokenizer run (one JVM) for both: keys (0, image) are references, (1, image) the captions
    tokens = PTBTokenizer().tokenize({**{(0, i): [{"caption": r} for r in refs] for i, refs in enumerate(references)},
                                      **{(1, i): [{"caption": h}] for i, h in enumerate(hypotheses)}})
    gts = {i: tokens[(0, i)] for i in range(len(references))}
    res = {i: tokens[(1, i)] for i in range(len(hypotheses))}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor_score = _meteor_score(Meteor, gts, res)
    scores = {f"bleu{n + 1}": 100.0 * float(b) for n, b in enumerate(bleu)}
    scores["meteor"] = 100.0 * float(meteor_score)
    scores["rouge_l"] = 100.0 * float(Rouge().compute_score(gts, res)[0])
    scores["cider_d"] = 100.0 * float(Cider().compute_score(gts, res)[0])
    return scores


_METEOR = []  # the process's METEOR scorer: its JVM loads paraphrase tables for seconds, so it is kept


def _meteor_score(factory, gts, res) -> float:
    """METEOR 1.5 through one kept JVM (each EVAL line is scored on its own: no state between calls).
    A failed score ends that JVM (its __del__ takes the lock a failure leaves held) and the next call
    starts a new one."""
    if not _METEOR:
        _METEOR.append(factory())
    meteor = _METEOR[0]
    try:
        return meteor.compute_score(gts, res)[0]
    except BaseException:
        _METEOR.clear()
        if meteor.lock.locked():
            meteor.lock.release()
        del meteor
        raise


def caption_report(hypotheses, references) -> dict:
    """COCO figures (:func:`coco_caption_scores`) and sacreBLEU's BLEU-1..4 beside them
    (``sacrebleu1``..``sacrebleu4``: 13a tokenization, lower-cased, the final "." a token);
    without Java only the sacreBLEU figures and a ``coco_note`` saying why."""
    report = {f"sacrebleu{n}": v for n, v in corpus_bleu_scores(hypotheses, references).items()}
    try:
        report.update(coco_caption_scores(hypotheses, references))
    except JavaMissing as e:
        report["coco_note"] = str(e)
    return report


CAPTION_FIGURES = [("bleu1", "BLEU-1"), ("bleu2", "BLEU-2"), ("bleu3", "BLEU-3"), ("bleu4", "BLEU-4"),
                   ("meteor", "METEOR"), ("rouge_l", "ROUGE-L"), ("cider_d", "CIDEr-D"),
                   ("sacrebleu1", "sacreBLEU-1"), ("sacrebleu4", "sacreBLEU-4")]


def format_captions(metrics: dict) -> str:
    """Per decoding tag (``greedy``, ``beam3``...) of flat ``{figure}_{tag}`` metrics: the COCO
    caption evaluation's figures then sacreBLEU's, and the one-line ``coco_note`` without Java."""
    tags = [k.split("_", 1)[1] for k in metrics if k.startswith("sacrebleu1_")]
    lines = [f"  images: {metrics['images']}"]
    for tag in tags:
        shown = [f"{label} {metrics[f'{key}_{tag}']:.2f}" for key, label in CAPTION_FIGURES
                 if f"{key}_{tag}" in metrics]
        lines.append(f"  {tag}: " + "  ".join(shown))
    if metrics.get("coco_note"):
        lines.append(f"  note: {metrics['coco_note']}")
    return "\n".join(lines)

def corpus_bleu_scores(hypotheses, references, max_order: int = 4, lowercase: bool = True) -> dict[int, float]:
    """Corpus BLEU-1..``max_order`` (sacreBLEU, 13a tokenization) of one hypothesis per image
    against all of its references (images may have different numbers of references)."""
    from sacrebleu.metrics import BLEU

    width = max((len(r) for r in references), default=1)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    # sacreBLEU accepts None for a missing reference of an image
    scores = {}
    for n in range(1, max_order + 1):
        bleu = BLEU(max_ngram_order=n, lowercase=lowercase, force=True)  # force: references are pre-tokenized
        scores[n] = float(bleu.corpus_score(list(hypotheses), streams).score)
    return scores
