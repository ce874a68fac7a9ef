"""Plots written into run directories (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_history(history_csv, out_png) -> Path | None:
    """Training curves: one panel per metric, train and validation together."""
    history_csv = Path(history_csv)
    if not history_csv.exists():
        return None
    frame = pd.read_csv(history_csv)
    if frame.empty:
        return None
    metrics = [c for c in frame.columns if c != "epoch" and not c.startswith("val_") and c != "learning_rate"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    epochs = frame["epoch"] + 1
    for ax, name in zip(axes[0], metrics):
        ax.plot(epochs, frame[name], marker="o", label="train")
        if f"val_{name}" in frame:
            ax.plot(epochs, frame[f"val_{name}"], marker="o", label="validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_confusion(matrix, labels, out_png, title="confusion matrix") -> Path:
    import numpy as np

    matrix = np.asarray(matrix)
    size = max(4, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_report_confusion(report: dict, out_dir, title="confusion matrix") -> Path:
    """``out_dir/confusion.png`` from a classification or tagging report's ``confusion_matrix``."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    confusion = report["confusion_matrix"]
    return plot_confusion(confusion["matrix"], confusion["labels"], Path(out_dir) / "confusion.png", title=title)


def plot_forecast(x, actual, forecasts: dict, out_png, title="forecast", ylabel="value") -> Path:
    """A series and its forecasts over the same time axis (``x``: dates or step numbers).

    ``forecasts`` maps a name ("model", "naive"...) to values aligned with ``actual``;
    the first is drawn solid, the others dashed."""
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(x, actual, color="black", linewidth=1.4, label="actual")
    for i, (name, values) in enumerate(forecasts.items()):
        ax.plot(x, values, linewidth=1.1 if i == 0 else 0.9, linestyle="-" if i == 0 else "--",
                alpha=1.0 if i == 0 else 0.75, label=name)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_attention(weights, source_tokens, target_tokens, out_png, title="attention") -> Path:
    """Heatmap of attention ``weights`` [target, source]: source words across, target words down."""
    import numpy as np

    weights = np.asarray(weights, dtype=float)[:len(target_tokens), :len(source_tokens)]
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(source_tokens) + 2), max(3, 0.4 * len(target_tokens) + 1.5)))
    ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(target_tokens)), target_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_self_attention_maps(tokens, attention, out_png, title="self-attention") -> Path:
    """One heatmap per layer (rows) and head (columns) of ``attention`` ``[layers, heads, words, words]``:
    the words a word attends to across, the attending word down."""
    import numpy as np

    attention = np.asarray(attention, dtype=float)
    layers, heads, n = attention.shape[0], attention.shape[1], len(tokens)
    side = max(2.2, 0.28 * n + 1.2)
    fig, axes = plt.subplots(layers, heads, figsize=(side * heads, side * layers + 0.4), squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            ax.imshow(attention[layer, head, :n, :n], cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks(range(n), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(n), tokens if head == 0 else [""] * n, fontsize=7)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return Path(out_png)


def plot_self_attention_examples(predictor, texts, out_dir, count: int = 4, max_words: int = 16) -> list[str]:
    """``evaluate --plot`` for an encoder with self-attention: the maps of the first ``count`` texts of
    3 to ``max_words`` words, one PNG each under ``out_dir/self_attention``; none for a recurrent or bag
    encoder (its export's ``self_attention`` has 0 layers)."""
    chosen = [t for t in texts if 3 <= len(t.split()) <= max_words][:count] or list(texts[:count])
    if not chosen:
        return []
    rows = predictor.self_attention(chosen)
    if rows[0]["attention"].shape[0] == 0:
        return []
    folder = Path(out_dir) / "self_attention"
    folder.mkdir(parents=True, exist_ok=True)
    return [str(plot_self_attention_maps(r["tokens"], r["attention"], folder / f"sentence-{i + 1}.png",
                                         title=" ".join(r["tokens"])[:90]))
            for i, r in enumerate(rows)]


def plot_image_attention(image_bytes: bytes, words, maps, out_png) -> Path:
    """One panel per generated word: the image with that step's attention ``maps`` [words, h, w] laid over it."""
    import io

    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(image_bytes)).convert("RGB"))
    n = max(1, len(words))
    cols = min(5, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, word, m in zip(axes.flat, words, maps):
        ax.imshow(image)
        ax.imshow(np.asarray(m), cmap="gray", alpha=0.6, extent=(0, image.shape[1], image.shape[0], 0),
                  interpolation="bilinear")
        ax.set_title(word, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return Path(out_png)


def plot_timeline(videos, labels: list[str], out_png, fps: float = 0.0, title="true and predicted labels") -> Path:
    """Per-frame labels along time: for each ``(name, true, predicted)`` in ``videos`` two rows
    of coloured frames (true above, predicted below), one colour per label of ``labels``."""
    import numpy as np
    from matplotlib.patches import Patch

    colours = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    index = {label: i for i, label in enumerate(labels)}
    fig, axes = plt.subplots(len(videos), 1, figsize=(10, 0.9 * len(videos) + 1.2), squeeze=False)
    for ax, (name, true, pred) in zip(axes[:, 0], videos):
        rows = np.array([[index.get(x, -1) for x in true], [index.get(x, -1) for x in pred]], float)
        rows = np.ma.masked_less(rows, 0)
        scale = 1.0 / fps if fps else 1.0
        ax.imshow(rows, aspect="auto", cmap=colours, vmin=0, vmax=colours.N - 1, interpolation="nearest",
                  extent=(0, rows.shape[1] * scale, 1.5, -0.5))
        ax.set_yticks([0, 1], ["true", "predicted"])
        ax.set_title(name, fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("seconds" if fps else "frame")
    fig.legend(handles=[Patch(color=colours(i), label=x) for i, x in enumerate(labels)], loc="upper right",
               ncol=min(len(labels), 6), fontsize=8)
    fig.suptitle(title, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)
