"""Look inside a character model: every unit's state at every character, coloured over the text.

``python -m seqapps inspect RUN_OR_EXPORT --text FILE`` reads FILE through the model's
``states`` signature (the recurrent cells stepped one character at a time, as when
generating), records each layer's hidden state (and the LSTM cell state) after every
character, and writes ``inspect.html`` and ``inspect.png``: the text with every
character's background coloured by one unit's activation (blue negative, red
positive). ``--find quotes|line-position|indent`` ranks all units by how well their
activation tracks that property of the text (absolute Pearson correlation) and
colours by the best one: the quote-tracking and line-length cells.

The gates are recorded too (LSTM: input, forget, output and the candidate g; GRU: update
and reset): ``--state forget`` colours by a forget-gate unit, ``--find`` ranks gate units
beside the states, and ``keep-gate.png`` draws how much each unit keeps over the passage
(the LSTM forget gate, the GRU update gate): the distribution of its values and each unit's
mean, sorted. Sigmoid gates (0..1) are coloured blue at 0 and red at 1. For the transformer
language model, ``attention.png`` shows, per layer and head, which earlier characters each
position attends to (its blocks' outputs are the "hidden" states).

    quotes         1 inside double quotes ("..." or “...”), else 0
    line-position  how many characters the current line has so far
    indent         how many spaces (a tab counts 4) the current line is indented by
"""

from __future__ import annotations

import csv
import html
from pathlib import Path

import numpy as np

from seqapps.data.readers import read_text_file
from seqapps.core.errors import ConfigError, DataError, SeqappsError

PROPERTIES = ("quotes", "line-position", "indent")
STATES = ("hidden", "cell")
GATE_NAMES = ("input", "forget", "output", "candidate", "update", "reset")
KEEP = {"forget": "LSTM forget gate", "update": "GRU update gate"}  # the gate that decides what a unit keeps


# -- what to track ------------------------------------------------------------------------------
def property_signal(chars: list[str], name: str) -> np.ndarray:
    """The value of property ``name`` after each character (float array, one per character)."""
    if name == "quotes":
        inside, out = False, []
        for c in chars:
            if c == '"':
                inside = not inside
            elif c == "\u201c":
                inside = True
            elif c == "\u201d":
                inside = False
            out.append(float(inside))
        return np.array(out)
    if name == "line-position":
        col, out = 0, []
        for c in chars:
            col = 0 if c == "\n" else col + 1
            out.append(float(col))
        return np.array(out)
    if name == "indent":
        out, start = np.zeros(len(chars)), 0
        text = "".join(chars)
        for line in text.split("\n"):
            stripped = line.lstrip(" \t")
            lead = line[:len(line) - len(stripped)]
            depth = lead.count(" ") + 4 * lead.count("\t")
            out[start:start + len(line) + 1] = depth  # the line's newline belongs to it
            start += len(line) + 1
        return out[:len(chars)]
    raise ConfigError(f"--find expects one of {', '.join(PROPERTIES)}, got {name!r}")


def check_signal(signal: np.ndarray, name: str, source: str) -> None:
    if signal.size < 3 or np.std(signal) == 0:
        what = {"quotes": "no passage in double quotes", "line-position": "no line breaks",
                "indent": "no indented lines"}[name]
        raise DataError(f"{source}: --find {name} needs text that varies in it, but the text has {what}")


def correlations(values: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Pearson r of every column of ``values`` [time, n] with ``signal`` [time] (0 for constant columns)."""
    v = values - values.mean(axis=0)
    s = signal - signal.mean()
    denom = np.sqrt((v ** 2).sum(axis=0) * (s ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (v * s[:, None]).sum(axis=0) / denom
    return np.nan_to_num(r)


def rank_units(states: dict, signal: np.ndarray, top: int = 10) -> list[dict]:
    """Units ordered by |r| with ``signal``: ``[{"state", "layer", "unit", "r"}, ...]`` (layers from 1)."""
    rows = []
    for kind, values in _recorded(states).items():
        time, layers, units = values.shape
        r = correlations(values.reshape(time, layers * units).astype(np.float64), signal)
        rows += [{"state": kind, "layer": i // units + 1, "unit": i % units, "r": float(r[i])}
                 for i in range(layers * units)]
    rows.sort(key=lambda row: -abs(row["r"]))
    return rows[:top] if top else rows


def _recorded(states: dict) -> dict:
    """Every recorded series by name: hidden, cell (LSTM) and each gate, ``[time, layers, units]``."""
    out = {k: states[k] for k in STATES if states.get(k) is not None}
    return {**out, **states.get("gates", {})}


# -- recording ----------------------------------------------------------------------------------------
def read_text(path, max_chars: int) -> str:
    text = read_text_file(path)
    if not text:
        raise DataError(f"{path}: the file is empty")
    return text[:max_chars] if max_chars else text


def record(path, text: str) -> dict:
    """``{"chars", "hidden" [time, layers, units], "cell" (LSTM) or None}`` from a run or export."""
    from seqapps.inference.loading import load

    predictor = load(path)
    if not hasattr(predictor, "states") or "states" not in predictor.signatures:
        raise SeqappsError(f"{path}: a {predictor.task.name} model has no per-character states to inspect; "
                           "expected a char_lm run or export")
    return predictor.states(text)


# -- drawing --------------------------------------------------------------------------------------------
def _colours(values: np.ndarray) -> np.ndarray:
    """RGBA in [0, 1] for values scaled to [-1, 1] (coolwarm: blue negative, red positive)."""
    from seqapps.analysis.plots import plt

    return plt.get_cmap("coolwarm")((np.clip(values, -1, 1) + 1) / 2)


def _scale(values: np.ndarray, kind: str) -> tuple[np.ndarray, float]:
    """Hidden states and the candidate are already in [-1, 1]; sigmoid gates (0..1) are spread over
    [-1, 1]; cell states are divided by their largest magnitude."""
    if kind in GATE_NAMES and kind != "candidate":
        return 2 * values - 1, 1.0
    peak = float(np.max(np.abs(values))) if values.size else 1.0
    if kind in ("hidden", "candidate") or peak == 0:
        return values, 1.0
    return values / peak, peak


def attention_by_position(attention: np.ndarray, layer: int, head: int, n: int) -> np.ndarray:
    """``[time, layers, heads, context]`` weights by distance back -> ``[n, n]``: row t, column t' <= t,
    the weight character t gives character t'."""
    grid = np.zeros((n, n))
    context = attention.shape[-1]
    for t in range(n):
        back = np.arange(min(context, t + 1))
        grid[t, t - back] = attention[t, layer, head, back]
    return grid


def plot_self_attention(chars, attention: np.ndarray, path, source: str, max_chars: int = 48) -> Path:
    """One heatmap per layer and head over the first ``max_chars`` characters: which earlier characters
    each position attends to."""
    from seqapps.analysis.plots import plt

    n = min(max_chars, len(chars))
    layers, heads = attention.shape[1:3]
    fig, axes = plt.subplots(layers, heads, figsize=(2.6 * heads + 0.5, 2.6 * layers + 0.5), squeeze=False)
    labels = ["\u21b5" if c == "\n" else "\u2423" if c == " " else c for c in chars[:n]]
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            ax.imshow(attention_by_position(attention, layer, head, n), cmap="viridis", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
            ticks = range(0, n, max(1, n // 12))
            ax.set_xticks(list(ticks), [labels[i] for i in ticks], fontsize=6, family="monospace")
            ax.set_yticks(list(ticks), [labels[i] for i in ticks], fontsize=6, family="monospace")
    fig.suptitle(f"self-attention over the first {n} characters of {source} (row: reading; column: read)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_keep_gate(gates: dict, path, source: str) -> Path | None:
    """The keep gate's values over the passage: their histogram, and each unit's mean (sorted) per
    layer. None when the model has no such gate."""
    from seqapps.analysis.plots import plt

    name = next((g for g in KEEP if g in gates), None)
    if name is None:
        return None
    values = np.asarray(gates[name])  # [time, layers, units]
    layers = values.shape[1]
    fig, (hist, means) = plt.subplots(1, 2, figsize=(10, 3.2))
    for layer in range(layers):
        v = values[:, layer]
        hist.hist(v.ravel(), bins=50, range=(0, 1), alpha=0.6, label=f"layer {layer + 1}")
        means.plot(np.sort(v.mean(axis=0))[::-1], label=f"layer {layer + 1}")
    hist.set(xlabel=f"{KEEP[name]} value", ylabel="characters x units", title=f"{KEEP[name]} over {source}")
    means.set(xlabel="unit (sorted)", ylabel="mean over the passage", ylim=(0, 1),
              title="how much each unit keeps")
    hist.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_html(chars, values, path, title: str, ranking=None, note: str = "") -> Path:
    colours = (_colours(values) * 255).astype(int)
    spans = []
    for c, v, (r, g, b, _) in zip(chars, values, colours):
        shown = "\u21b5\n" if c == "\n" else html.escape(c)
        spans.append(f'<span style="background:rgb({r},{g},{b})" title="{v:+.3f}">{shown}</span>')
    table = ""
    if ranking:
        rows = "".join(f"<tr><td>{i + 1}</td><td>{u['state']}</td><td>{u['layer']}</td><td>{u['unit']}</td>"
                       f"<td>{u['r']:+.3f}</td></tr>" for i, u in enumerate(ranking))
        table = ("<table><tr><th>rank</th><th>state</th><th>layer</th><th>unit</th><th>r</th></tr>"
                 f"{rows}</table>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} pre{{font-family:monospace;font-size:14px;line-height:1.5;
white-space:pre-wrap}} table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:2px 8px}}
.legend span{{padding:2px 10px}}</style></head>
<body><h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>
<p class="legend"><span style="background:rgb(59,76,192);color:white">-1</span><span
style="background:rgb(221,221,221)">0</span><span style="background:rgb(180,4,38);color:white">+1</span>
(hover a character for its value)</p>{table}
<pre>{"".join(spans)}</pre></body></html>
"""
    Path(path).write_text(page, encoding="utf-8")
    return Path(path)


def write_png(chars, values, path, title: str, width: int = 100, max_chars: int = 2000) -> Path:
    """The first ``max_chars`` characters in a grid (lines wrap at ``width``), coloured by ``values``."""
    from seqapps.analysis.plots import plt

    cells, row, col = [], 0, 0
    for c, v in zip(chars[:max_chars], values[:max_chars]):
        if col >= width:
            row, col = row + 1, 0
        cells.append((row, col, c, v))
        if c == "\n":
            row, col = row + 1, 0
        else:
            col += 1
    rows = max(r for r, *_ in cells) + 1
    grid = np.full((rows, width), np.nan)
    for r, c, _, v in cells:
        grid[r, c] = v
    fig, ax = plt.subplots(figsize=(max(6.0, width * 0.12), max(1.5, rows * 0.22 + 0.8)))
    cmap = plt.get_cmap("coolwarm").with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    for r, c, ch, _ in cells:
        ax.text(c, r, "\u21b5" if ch == "\n" else ch, ha="center", va="center", fontsize=7, family="monospace")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# -- the command ---------------------------------------------------------------------------------------------
def inspect(path, text_file, out_dir="inspect", *, unit: int | None = None, layer: int = 1, state: str = "hidden",
            find: str | None = None, top: int = 10, max_chars: int = 20000) -> dict:
    """Record, rank (with ``find``) and draw; returns what was written and the ranking."""
    if state not in STATES + GATE_NAMES:
        raise ConfigError(f"--state expects one of {', '.join(STATES + GATE_NAMES)}, got {state!r}")
    if find is not None and find not in PROPERTIES:
        raise ConfigError(f"--find expects one of {', '.join(PROPERTIES)}, got {find!r}")
    text = read_text(text_file, max_chars)
    states = record(path, text)
    chars = states["chars"]
    ranking = None
    if find:
        signal = property_signal(chars, find)
        check_signal(signal, find, str(text_file))
        ranking = rank_units(states, signal, top)
        if unit is None:
            best = ranking[0]
            state, layer, unit = best["state"], best["layer"], best["unit"]
    unit = 0 if unit is None else unit
    if state == "cell" and states["cell"] is None:
        raise ConfigError("--state cell needs an LSTM model; this one keeps only a hidden state")
    recorded = _recorded(states)
    if state not in recorded:
        have = ", ".join(states.get("gates", {})) or "none"
        raise ConfigError(f"--state {state}: this model has no {state} gate (its gates: {have})")
    values = recorded[state]
    layers, units = values.shape[1:]
    if not 1 <= layer <= layers:
        raise ConfigError(f"--layer must be between 1 and {layers}, got {layer}")
    if not 0 <= unit < units:
        raise ConfigError(f"--unit must be between 0 and {units - 1}, got {unit}")
    series, peak = _scale(values[:, layer - 1, unit], state)
    title = f"layer {layer} {state} unit {unit}"
    note = f"{len(chars)} characters of {Path(text_file).name}; " + (
        f"colour = activation / {peak:.3g}" if peak != 1.0 else "colour = activation")
    if ranking:
        match = next((u for u in ranking if (u["state"], u["layer"], u["unit"]) == (state, layer, unit)), None)
        title += f" ({find}" + (f", r = {match['r']:+.3f})" if match else ")")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"html": write_html(chars, series, out / "inspect.html", title, ranking, note),
               "png": write_png(chars, series, out / "inspect.png", title)}
    if ranking:
        written["csv"] = out / f"units-{find}.csv"
        with open(written["csv"], "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["state", "layer", "unit", "r"])
            w.writeheader()
            w.writerows(rank_units(states, property_signal(chars, find), 0))
    keep = plot_keep_gate(states.get("gates", {}), out / "keep-gate.png", Path(text_file).name)
    if keep is not None:
        written["keep_gate"] = keep
    if states.get("attention") is not None:
        written["attention"] = plot_self_attention(chars, states["attention"], out / "attention.png",
                                                   Path(text_file).name)
    np.savez_compressed(out / "states.npz", chars=np.array(chars), **_recorded(states))
    written["states"] = out / "states.npz"
    return {"written": {k: str(v) for k, v in written.items()}, "ranking": ranking,
            "shown": {"state": state, "layer": layer, "unit": unit}, "chars": len(chars)}
