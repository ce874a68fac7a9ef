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
