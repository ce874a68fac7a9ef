"""Gradient flow through time: how much of the last step's loss reaches each earlier step.

``gradient_norms`` unrolls a freshly initialised cell (SimpleRNN, LSTM or GRU) over
``length`` steps of random inputs, puts a cross-entropy loss on the last step only,
and returns ``||dL/dh_t||`` (the norm of the gradient with respect to the hidden
state ``h_t``, averaged over the batch) for every step ``t``. The norm falls
geometrically as ``t`` moves away from the loss (vanishing gradients); at Keras'
initialisation with unit-variance inputs a SimpleRNN loses it faster over long
spans than an LSTM (whose forget gate starts near 0.73), while a fresh GRU (update
gate near 0.5) loses it fastest of all; training changes these rates. Scaling the
recurrent weights up (``scale > 1``) makes a SimpleRNN's norm grow instead
(exploding gradients). With ``clip``, the same series is
also given as it enters a clipped update: every gradient is multiplied by
``min(1, clip / ||dL/dtheta||)`` (``tf.clip_by_global_norm`` on the parameters'
gradient, what ``train.clipnorm`` does), which bounds the step size whatever the norm.

``python -m seqapps diagnose gradients --cells rnn,lstm,gru --length 100`` writes
``gradients.csv`` and ``gradients.png``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from seqapps.core.errors import ConfigError

CELL_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def gradient_norms(cell: str, length: int = 100, *, units: int = 64, input_dim: int = 16, batch: int = 16,
                   classes: int = 16, scale: float = 1.0, clip: float = 0.0, seed: int = 0,
                   input_scale: float = 1.0) -> dict:
    """``{"norms": [length], "clipped": [length] or None, "param_norm": float, ...}`` for one cell.

    ``norms[t]`` is the mean over the batch of ``||dL/dh_t||`` where ``L`` is the loss at
    step ``length - 1``; ``scale`` multiplies the recurrent kernel after initialisation;
    inputs are Gaussian with standard deviation ``input_scale``.
    """
    import keras
    import tensorflow as tf

    from seqapps.layers.recurrent import CELLS

    if cell not in CELLS:
        raise ConfigError(f"unknown cell {cell!r}; expected one of: {', '.join(CELLS)}")
    if length < 1:
        raise ConfigError(f"--length must be >= 1, got {length}")
    keras.utils.set_random_seed(seed)
    rnn = CELLS[cell](units)
    rnn.build((None, input_dim))
    if scale != 1.0:
        rnn.recurrent_kernel.assign(rnn.recurrent_kernel * scale)
    readout = keras.layers.Dense(classes)
    readout.build((None, units))
    rng = np.random.default_rng(seed)
    inputs = tf.constant(input_scale * rng.standard_normal((length, batch, input_dim)), tf.float32)
    targets = tf.constant(rng.integers(0, classes, batch), tf.int32)
    loss_of = lambda out: tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, readout(out)))  # noqa: E731
    norms, params = norms_through_time(rnn, loss_of, inputs, rnn.trainable_weights + readout.trainable_weights)
    param_norm = float(tf.linalg.global_norm(params))
    factor = min(1.0, clip / param_norm) if clip and param_norm > 0 else 1.0
    return {"cell": cell, "scale": scale, "norms": norms, "param_norm": param_norm,
            "clip": clip or None, "clipped": norms * factor if clip else None,
            "clipped_param_norm": param_norm * factor}


def norms_through_time(cell, loss_of_last_output, inputs, weights=None):
    """Unroll ``cell`` over ``inputs`` (``[time, batch, features]``) from a zero state and return the mean
    over the batch of ``||dL/dh_t||`` for every step, ``L = loss_of_last_output(the last step's output)``;
    with ``weights``, also ``dL/dweights`` -> ``(norms, gradients)``."""
    import tensorflow as tf

    batch = int(inputs.shape[1])
    state = [tf.zeros([batch, int(s)]) for s in tf.nest.flatten(cell.state_size)]
    with tf.GradientTape(persistent=True) as tape:
        hidden = []
        for t in range(int(inputs.shape[0])):
            out, state = cell(inputs[t], state)
            state = list(tf.nest.flatten(state))
            hidden.append(state[0])
        loss = loss_of_last_output(out)
    per_step = tape.gradient(loss, hidden)
    gradients = tape.gradient(loss, weights) if weights is not None else None
    del tape
    norms = np.array([float(tf.reduce_mean(tf.norm(g, axis=-1))) for g in per_step])
    return norms if weights is None else (norms, gradients)


def diagnose_gradients(cells=("rnn", "lstm", "gru"), length: int = 100, scales=(1.0,), clip: float = 1.0,
                       out_dir="diagnose", units: int = 64, seed: int = 0, input_scale: float = 1.0) -> list[dict]:
    """Run :func:`gradient_norms` for every cell and scale; write CSV and PNG into ``out_dir``."""
    cells = [c.strip() for c in cells if c.strip()]
    if not cells:
        raise ConfigError("--cells needs at least one of rnn, lstm, gru")
    for c in cells:
        if c not in CELL_NAMES:
            raise ConfigError(f"unknown cell {c!r} in --cells; expected rnn, lstm or gru")
    for s in scales:
        if not s > 0:
            raise ConfigError(f"--scales must be > 0, got {s}")
    if clip < 0:
        raise ConfigError(f"--clip must be >= 0 (0 switches clipping off), got {clip}")
    results = [gradient_norms(c, length, units=units, scale=s, clip=clip, seed=seed, input_scale=input_scale) for s in scales for c in cells]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(results, out / "gradients.csv")
    plot(results, out / "gradients.png")
    return results


def write_csv(results, path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cell", "scale", "clip", "step", "steps_before_loss", "grad_norm", "clipped_grad_norm"])
        for r in results:
            n = len(r["norms"])
            for t, value in enumerate(r["norms"]):
                clipped = "" if r["clipped"] is None else f"{r['clipped'][t]:.6g}"
                w.writerow([r["cell"], r["scale"], r["clip"] or "", t, n - 1 - t, f"{value:.6g}", clipped])
    return Path(path)


COLOURS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green", "transformer": "tab:purple"}


def draw_norms(ax, norms, cell: str, label: str, linestyle: str = "-") -> None:
    """One ``||dL/dh_t||`` curve against the steps between ``h_t`` and the loss (log scale)."""
    back = np.arange(len(norms))[::-1]
    ax.semilogy(back, np.maximum(norms, 1e-30), color=COLOURS[cell], linestyle=linestyle, label=label)


def finish_norm_axes(ax, title: str) -> None:
    ax.set_xlabel("steps between h_t and the loss")
    ax.set_ylabel("||dL / dh_t||")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def save_figure(fig, path, title: str) -> Path:
    from seqapps.analysis.plots import plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot(results, path) -> Path:
    from seqapps.analysis.plots import plt

    scales = sorted({r["scale"] for r in results})
    fig, axes = plt.subplots(1, len(scales), figsize=(5.5 * len(scales), 4), squeeze=False)
    for ax, scale in zip(axes[0], scales):
        for r in (r for r in results if r["scale"] == scale):
            name = CELL_NAMES[r["cell"]]
            draw_norms(ax, r["norms"], r["cell"], f"{name} (|dL/dθ| {r['param_norm']:.3g})")
            if r["clipped"] is not None and r["clipped_param_norm"] < r["param_norm"]:  # only where it bites
                draw_norms(ax, r["clipped"], r["cell"], f"{name}, clipped at {r['clip']:g}", "--")
        finish_norm_axes(ax, f"recurrent weights x{scale:g}")
    return save_figure(fig, path, "gradient of the last step's loss with respect to each hidden state")


def summary(results) -> list[str]:
    lines = [f"{'cell':<10} {'scale':>5} {'|dL/dh| last':>13} {'first':>11} {'first/last':>11} {'|dL/dθ|':>10}"
             + ("  clipped" if any(r["clip"] for r in results) else "")]
    for r in results:
        line = (f"{CELL_NAMES[r['cell']]:<10} {r['scale']:>5g} {r['norms'][-1]:>13.4g} {r['norms'][0]:>11.4g} "
                f"{r['norms'][0] / r['norms'][-1]:>11.3g} {r['param_norm']:>10.4g}")
        if r["clip"]:
            line += f"  {r['clipped_param_norm']:.4g}"
        lines.append(line)
    return lines
