"""Long-range memory: how far back can SimpleRNN, LSTM, GRU and a transformer carry what they saw?

``python -m seqapps diagnose memory`` trains each model on three synthetic tasks whose
answer depends on something seen ``lag`` steps earlier, at growing lags, with the same
number of parameters and the same number of steps, and reports the longest lag each one
solves. Every example is generated from the seed, so a figure can be reproduced and set
beside the literature's.

The tasks (``lag`` is ``T``):

``copy`` (Arjovsky, Shah & Bengio 2016, "Unitary evolution RNNs", section 4.1)
    Input: ``S`` symbols drawn uniformly from ``1..8`` (``S = --copy-symbols``, 10 in the
    paper), then ``T - 1`` blanks (``0``), a delimiter (``9``) and ``S`` more blanks: length
    ``T + 2S``. Target: blank at the first ``T + S`` steps, then the ``S`` symbols in order,
    so each symbol is recalled ``T + S`` steps after it was shown. Trained with cross-entropy
    on every step; **scored**: accuracy over the ``S`` recalled symbols (chance 1/8).
``adding`` (Hochreiter & Schmidhuber 1997, experiment 4, in Arjovsky et al.'s form)
    Input: ``T`` steps of two numbers: a value uniform in ``[0, 1)`` and a marker, 1 at
    exactly two steps (the first uniform over the first ``T // 2`` steps, the second over
    the rest), 0 elsewhere. Target: the sum of the two marked values, read at the last step.
    **Scored**: mean squared error; always answering 1 scores 1/6 = 0.167 (the sum's
    variance), solved at MSE <= 0.01.
``recall`` (delayed recall, many-to-one classification)
    Input: a symbol from ``1..8``, ``T`` distractors drawn from the same ``1..8``, then a
    query mark (``9``): length ``T + 2``. Target: the first symbol, read at the last step,
    ``T + 1`` steps after it was shown. **Scored**: accuracy (chance 1/8).

A classification task is solved at accuracy >= 0.99 on a fixed held-out set of
``--eval-examples`` examples (its own seed, never trained on), checked every
``--eval-every`` steps; training stops at the first check that passes (the steps to solve).

Models: inputs one-hot (``copy``, ``recall``: 10 symbols) or the two numbers (``adding``);
a recurrent layer of ``units`` (its last state, or its every step for ``copy``) and a
linear readout; or ``--transformer-layers`` causal pre-norm transformer blocks (two heads,
sinusoidal positions, feed-forward twice the width) over a linear projection of the inputs.
Each model's width is chosen so its parameter count is the closest to ``--params``.
Adam at ``--lr``, batch ``--batch``; ``--clip`` is the global-norm clipping (0: off);
``--forget-bias`` is the LSTM forget gate's initial bias (Keras' default 1; 0 switches it off).

Lags run shortest first (every task and model at one lag, then the next lag); once a
model fails a lag, its longer lags of that task are not run (``skipped``) unless
``--all-lags``. ``--budget-minutes`` stops starting new runs when spent (``out of
budget``), so a budget cuts the longest lags. For each recurrent cell and run, ``||dL/dh_t||`` through time
(the quantity ``diagnose gradients`` shows at initialisation) is measured on the task's own
inputs for the untrained and the trained model, with the loss at the last scored step.

Writes ``memory.csv`` (one row per task, model and lag), ``memory.json`` (rows and
gradient curves), ``memory.png`` (score against lag) and ``memory_gradients.png``.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqapps.core.errors import ConfigError

ALPHABET = 8                      # data symbols 1..8
BLANK, MARK = 0, ALPHABET + 1     # 0 blank, 9 the delimiter / query mark
SYMBOLS = ALPHABET + 2            # one-hot width of copy and recall inputs
MODELS = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU", "transformer": "Transformer"}
SOLVED_ACCURACY = 0.99
SOLVED_MSE = 0.01
ADDING_BASELINE = 1.0 / 6.0


# -- the tasks ------------------------------------------------------------------------------------

def copy_batch(rng, n: int, lag: int, symbols: int = 10):
    """``(tokens [n, lag + 2*symbols], targets [n, lag + 2*symbols])``: see the module docstring."""
    length = lag + 2 * symbols
    data = rng.integers(1, ALPHABET + 1, (n, symbols))
    x = np.full((n, length), BLANK, np.int32)
    x[:, :symbols] = data
    x[:, symbols + lag - 1] = MARK
    y = np.full((n, length), BLANK, np.int32)
    y[:, symbols + lag:] = data
    return x, y


def adding_batch(rng, n: int, lag: int):
    """``(inputs [n, lag, 2], targets [n])``: values and markers; the sum of the two marked values."""
    if lag < 2:
        raise ConfigError(f"the adding problem needs a lag of at least 2, got {lag}")
    values = rng.uniform(0.0, 1.0, (n, lag))
    first = rng.integers(0, lag // 2, n)
    second = rng.integers(lag // 2, lag, n)
    markers = np.zeros((n, lag))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    return x, (values[rows, first] + values[rows, second]).astype(np.float32)


def recall_batch(rng, n: int, lag: int):
    """``(tokens [n, lag + 2], targets [n])``: a symbol, ``lag`` distractors, the query; target its class 0..7."""
    x = rng.integers(1, ALPHABET + 1, (n, lag + 2)).astype(np.int32)
    x[:, -1] = MARK
    return x, (x[:, 0] - 1).astype(np.int32)


@dataclass(frozen=True)
class MemoryTask:
    name: str
    inputs: int           # features per step
    outputs: int          # classes (1: a regression)
    every_step: bool      # one answer per step (copy) or one at the end

    @property
    def regression(self) -> bool:
        return self.outputs == 1

    def batch(self, rng, n: int, lag: int, copy_symbols: int = 10):
        """``(model inputs, targets)`` as float one-hot / values and int classes / float sums."""
        if self.name == "copy":
            x, y = copy_batch(rng, n, lag, copy_symbols)
        elif self.name == "recall":
            x, y = recall_batch(rng, n, lag)
        else:
            return adding_batch(rng, n, lag)
        return np.eye(SYMBOLS, dtype=np.float32)[x], y

    def score(self, predictions, targets, copy_symbols: int = 10) -> float:
        """Accuracy (copy over the recalled symbols) or the mean squared error (adding)."""
        if self.regression:
            return float(np.mean((predictions.reshape(-1) - targets) ** 2))
        if self.every_step:
            predictions, targets = predictions[:, -copy_symbols:], targets[:, -copy_symbols:]
        return float(np.mean(np.argmax(predictions, -1) == targets))

    def solved(self, score: float) -> bool:
        return score <= SOLVED_MSE if self.regression else score >= SOLVED_ACCURACY

    @property
    def chance(self) -> float:
        return ADDING_BASELINE if self.regression else 1.0 / ALPHABET

    @property
    def metric(self) -> str:
        return "mse" if self.regression else "accuracy"


TASKS = {
    "copy": MemoryTask("copy", SYMBOLS, ALPHABET + 1, every_step=True),
    "adding": MemoryTask("adding", 2, 1, every_step=False),
    "recall": MemoryTask("recall", SYMBOLS, ALPHABET, every_step=False),
}


# -- the models -----------------------------------------------------------------------------------

@functools.cache  # one class, registered once, however many transformers are built
def _last_step_layer():
    import keras

    @keras.saving.register_keras_serializable(package="seqapps")
    class LastStep(keras.layers.Layer):
        """``[batch, time, width] -> [batch, width]``: the last position (causal models read out there)."""

        def call(self, x):
            return x[:, -1]

    return LastStep


def build_model(kind: str, task: MemoryTask, width: int, *, forget_bias: float = 1.0,
                transformer_layers: int = 2, heads: int = 2):
    """One model of ``kind`` (rnn, lstm, gru, transformer) for ``task``, ``width`` units wide."""
    import keras

    from seqapps.layers.recurrent import LAYERS
    from seqapps.layers.transformer import SinusoidalPositions, TransformerBlock

    inputs = keras.Input((None, task.inputs), name="inputs")
    if kind in LAYERS:
        options = {"unit_forget_bias": False} if kind == "lstm" else {}
        layer = LAYERS[kind](width, return_sequences=task.every_step, name=kind, **options)
        h = layer(inputs)
        if kind == "lstm":  # Keras' unit_forget_bias sets 1; any value here, 0 switches it off
            bias = layer.cell.bias
            bias.assign(np.concatenate([np.zeros(width), np.full(width, forget_bias), np.zeros(2 * width)]).astype("float32"))
    elif kind == "transformer":
        h = SinusoidalPositions(name="positions")(keras.layers.Dense(width, name="project")(inputs))
        for i in range(transformer_layers):
            h = TransformerBlock(width, heads, 2 * width, causal=True, name=f"block_{i + 1}")(h)
        h = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(h)
        if not task.every_step:
            h = _last_step_layer()(name="last_step")(h)
    else:
        raise ConfigError(f"unknown model {kind!r}; expected one of: {', '.join(MODELS)}")
    outputs = keras.layers.Dense(task.outputs, name="readout")(h)
    return keras.Model(inputs, outputs, name=f"{kind}_{task.name}")


def parameter_count(kind: str, task: MemoryTask, width: int, transformer_layers: int = 2) -> int:
    """Trainable weights of :func:`build_model` at ``width``: every model here has a count quadratic in
    its width, so three small models built once per kind and task give the exact count at any width."""
    a, b, c = _count_polynomial(kind, task.name, transformer_layers)
    return int(round(a * width * width + b * width + c))


_POLYNOMIALS: dict = {}


def _count_polynomial(kind: str, task: str, transformer_layers: int):
    key = (kind, task, transformer_layers)
    if key not in _POLYNOMIALS:
        widths = np.array([2.0, 4.0, 6.0])
        counts = [build_model(kind, TASKS[task], int(w), transformer_layers=transformer_layers).count_params()
                  for w in widths]
        _POLYNOMIALS[key] = tuple(np.linalg.solve(np.vander(widths, 3), np.array(counts, float)))
    return _POLYNOMIALS[key]


def width_for(kind: str, task: MemoryTask, params: int, transformer_layers: int = 2, heads: int = 2) -> int:
    """The width whose :func:`parameter_count` is the closest to ``params`` (a multiple of ``heads``
    for the transformer)."""
    step = heads if kind == "transformer" else 1
    candidates = range(step, 4097, step)
    return min(candidates, key=lambda w: (abs(parameter_count(kind, task, w, transformer_layers) - params), w))


# -- gradients through time -----------------------------------------------------------------------

def hidden_state_norms(model, task: MemoryTask, x, y) -> np.ndarray:
    """``||dL/dh_t||`` (mean over the batch) for every step ``t`` of ``model``'s recurrent layer on
    inputs ``x``, with ``L`` the loss at the last step's answer (for ``copy``, its last recalled symbol)."""
    import tensorflow as tf

    from seqapps.analysis.diagnose import norms_through_time

    layer = next(l for l in model.layers if l.name in ("rnn", "lstm", "gru"))
    readout = model.get_layer("readout")
    inputs = tf.constant(np.transpose(x, (1, 0, 2)))
    if task.regression:
        def loss(logits):
            return tf.reduce_mean((logits[:, 0] - y) ** 2)
    else:
        last = y[:, -1] if task.every_step else y

        def loss(logits):
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant(last), logits))
    return norms_through_time(layer.cell, lambda out: loss(readout(out)), inputs)


# -- training -------------------------------------------------------------------------------------

@dataclass
class Settings:
    steps: int = 2000
    batch: int = 32
    lr: float = 1e-3
    clip: float = 1.0
    forget_bias: float = 1.0
    params: int = 6000
    eval_every: int = 100
    eval_examples: int = 500
    copy_symbols: int = 10
    transformer_layers: int = 2
    seed: int = 0


def train_one(kind: str, task: MemoryTask, lag: int, s: Settings, gradients: bool = True, log=None) -> dict:
    """Train one model on one task at one lag; its row (score, solved, steps, time, gradient curves)."""
    import keras

    width = width_for(kind, task, s.params, s.transformer_layers)
    keras.utils.set_random_seed(s.seed)
    model = build_model(kind, task, width, forget_bias=s.forget_bias, transformer_layers=s.transformer_layers)
    loss = "mse" if task.regression else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(s.lr, clipnorm=s.clip or None), loss=loss)
    task_index = list(TASKS).index(task.name)
    held_out = task.batch(np.random.default_rng([s.seed, task_index, lag, 1]), s.eval_examples, lag, s.copy_symbols)
    rng = np.random.default_rng([s.seed, task_index, lag, 0])
    recurrent = kind != "transformer"
    probe = (held_out[0][:32], held_out[1][:32])
    before = hidden_state_norms(model, task, *probe) if recurrent and gradients else None

    def evaluate() -> float:
        predictions = np.concatenate([np.asarray(model(held_out[0][i:i + 250], training=False))
                                      for i in range(0, len(held_out[0]), 250)])
        return task.score(predictions, held_out[1], s.copy_symbols)

    start = time.perf_counter()
    score, solved_at, step, curve = evaluate(), None, 0, []
    curve.append((0, score))
    while step < s.steps:
        x, y = task.batch(rng, s.batch, lag, s.copy_symbols)
        model.train_on_batch(x, y)
        step += 1
        if step % s.eval_every == 0 or step == s.steps:
            score = evaluate()
            curve.append((step, score))
            if not math.isfinite(score):
                break
            if task.solved(score):
                solved_at = step
                break
    seconds = time.perf_counter() - start
    after = hidden_state_norms(model, task, *probe) if recurrent and gradients else None
    row = {"task": task.name, "model": kind, "lag": lag, "params": model.count_params(), "width": width,
           "metric": task.metric, "score": score, "chance": task.chance, "solved": solved_at is not None,
           "steps_to_solve": solved_at, "steps_run": step, "seconds": round(seconds, 2), "status": "run",
           "curve": curve}
    if before is not None:
        row["grad_untrained"], row["grad_trained"] = before.tolist(), after.tolist()
    log = log or _print
    verdict = f"solved at step {solved_at}" if solved_at else f"not solved in {step} steps"
    log(f"{task.name:<7} lag {lag:>4}  {MODELS[kind]:<11} {task.metric} {score:.4f}  {verdict}  ({seconds:.0f} s)")
    return row


def _print(line: str) -> None:
    print(line, flush=True)  # one line per run, as it ends, also when the output is a file


def _not_run(kind, task, lag, status):
    return {"task": task.name, "model": kind, "lag": lag, "params": "", "width": "", "metric": task.metric,
            "score": "", "chance": task.chance, "solved": "", "steps_to_solve": "", "steps_run": 0,
            "seconds": 0, "status": status, "curve": []}


def check_lags(lags, tasks) -> list[int]:
    lags = sorted(set(lags))
    if not lags or lags[0] < 1:
        raise ConfigError(f"--lags must be whole numbers >= 1, got {lags}")
    if "adding" in tasks and lags[0] < 2:
        raise ConfigError("the adding problem needs lags of at least 2 (one marker in each half)")
    return lags


def diagnose_memory(tasks=("copy", "adding", "recall"), models=("rnn", "lstm", "gru", "transformer"),
                    lags=(10, 20, 50, 100, 200, 500), settings: Settings | None = None, out_dir="diagnose",
                    budget_minutes: float = 0.0, all_lags: bool = False, gradients: bool = True, log=None) -> list[dict]:
    """Every task x model x lag (shortest lag first); rows as :func:`train_one`; writes the files into ``out_dir``."""
    s = settings or Settings()
    tasks = [t.strip() for t in tasks if t.strip()]
    models = [m.strip() for m in models if m.strip()]
    for t in tasks:
        if t not in TASKS:
            raise ConfigError(f"unknown task {t!r} in --tasks; expected copy, adding or recall")
    for m in models:
        if m not in MODELS:
            raise ConfigError(f"unknown model {m!r} in --cells; expected rnn, lstm, gru or transformer")
    if not tasks or not models:
        raise ConfigError("--tasks and --cells need at least one name each")
    lags = check_lags(lags, tasks)
    for name, value, low in (("--steps", s.steps, 1), ("--batch", s.batch, 1), ("--params", s.params, 10),
                             ("--eval-every", s.eval_every, 1), ("--eval-examples", s.eval_examples, 1),
                             ("--copy-symbols", s.copy_symbols, 1), ("--transformer-layers", s.transformer_layers, 1)):
        if value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    if not (s.lr > 0 and math.isfinite(s.lr)):
        raise ConfigError(f"--lr must be a positive number, got {s.lr}")
    if not (s.clip >= 0 and math.isfinite(s.clip)):
        raise ConfigError(f"--clip must be >= 0 (0 switches clipping off), got {s.clip}")
    if not math.isfinite(s.forget_bias):
        raise ConfigError(f"--forget-bias must be a number, got {s.forget_bias}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget_minutes * 60 if budget_minutes > 0 else math.inf
    rows, failed = [], set()
    for lag in lags:  # shortest lags first for every task and model, so a spent budget cuts the longest
        for t in tasks:
            task = TASKS[t]
            for kind in models:
                if (t, kind) in failed and not all_lags:
                    rows.append(_not_run(kind, task, lag, "skipped (not solved at a shorter lag)"))
                elif time.monotonic() > deadline:
                    rows.append(_not_run(kind, task, lag, "out of budget"))
                else:
                    rows.append(train_one(kind, task, lag, s, gradients=gradients, log=log))
                    if not rows[-1]["solved"]:
                        failed.add((t, kind))
                write(rows, s, out)
    plot_scores(rows, out / "memory.png")
    if gradients:
        plot_gradients(rows, out / "memory_gradients.png")
    return rows


# -- reports --------------------------------------------------------------------------------------

COLUMNS = ["task", "model", "lag", "params", "width", "metric", "score", "chance", "solved", "steps_to_solve",
           "steps_run", "seconds", "status"]


def write(rows, settings: Settings, out: Path) -> None:
    with open(out / "memory.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([f"{r[c]:.6g}" if isinstance(r[c], float) else r[c] for c in COLUMNS])
    with open(out / "memory.json", "w") as f:
        json.dump({"settings": settings.__dict__, "rows": rows}, f)


def longest_solved(rows) -> dict:
    """``{(task, model): longest lag solved, or 0}``."""
    best = {}
    for r in rows:
        key = (r["task"], r["model"])
        best.setdefault(key, 0)
        if r["solved"] is True:
            best[key] = max(best[key], r["lag"])
    return best


def summary(rows) -> list[str]:
    """The longest lag each model solves per task (0: none), and the lags not run."""
    best = longest_solved(rows)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["longest lag solved (0: none of those run)",
             f"{'task':<8}" + "".join(f"{MODELS[m]:>13}" for m in models)]
    for t in tasks:
        lines.append(f"{t:<8}" + "".join(f"{best[(t, m)]:>13}" for m in models))
    budget = sorted({(r['task'], r['lag']) for r in rows if r["status"] == "out of budget"})
    if budget:
        lines.append("out of budget: " + ", ".join(f"{t} lag {lag}" for t, lag in budget))
    return lines


def plot_scores(rows, path) -> Path:
    from seqapps.analysis.diagnose import COLOURS, save_figure
    from seqapps.analysis.plots import plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        task = TASKS[t]
        for m in dict.fromkeys(r["model"] for r in rows):
            run = [r for r in rows if r["task"] == t and r["model"] == m and r["status"] == "run"]
            if run:
                ax.plot([r["lag"] for r in run], [r["score"] for r in run], "o-", color=COLOURS[m], label=MODELS[m])
        ax.axhline(task.chance, color="grey", linestyle=":", label="chance" if not task.regression else "always 1")
        threshold = SOLVED_MSE if task.regression else SOLVED_ACCURACY
        ax.axhline(threshold, color="black", linestyle="--", linewidth=0.8, label="solved")
        ax.set_xscale("log")
        if task.regression:
            ax.set_yscale("log")
        ax.set_xlabel("lag T")
        ax.set_ylabel(task.metric + (" (lower is better)" if task.regression else ""))
        ax.set_title(t)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path, "held-out score at the end of training, against the lag")


def gradient_lag(rows, task: str):
    """The longest lag at which every recurrent model of ``task`` was trained (the gradient plot's lag)."""
    run = [r for r in rows if r["task"] == task and "grad_trained" in r]
    models = {r["model"] for r in run}
    common = [lag for lag in sorted({r["lag"] for r in run}) if all(
        any(r["lag"] == lag and r["model"] == m for r in run) for m in models)]
    return common[-1] if common else None


def plot_gradients(rows, path) -> Path | None:
    from seqapps.analysis.diagnose import draw_norms, finish_norm_axes, save_figure
    from seqapps.analysis.plots import plt

    tasks = [t for t in dict.fromkeys(r["task"] for r in rows) if gradient_lag(rows, t)]
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        lag = gradient_lag(rows, t)
        for r in (r for r in rows if r["task"] == t and r["lag"] == lag and "grad_trained" in r):
            draw_norms(ax, r["grad_trained"], r["model"], f"{MODELS[r['model']]} trained")
            draw_norms(ax, r["grad_untrained"], r["model"], f"{MODELS[r['model']]} untrained", ":")
        finish_norm_axes(ax, f"{t}, lag {lag}")
    return save_figure(fig, path, "gradient of the last answer's loss with respect to each hidden state")
