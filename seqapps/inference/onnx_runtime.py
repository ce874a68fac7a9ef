"""An ONNX export (:mod:`seqapps.inference.formats`) as a Predictor, with ONNX Runtime and NumPy only.

Nothing here imports TensorFlow or Keras: ``seqapps.load(OUT).predict([...])`` on an ONNX export
works where TensorFlow is not installed. Each signature runs the tokenizer
(:mod:`seqapps.inference.tokenizer`), the ONNX graph, and the few steps that turn its numbers
into the SavedModel's outputs (a label from probabilities, tags by argmax or Viterbi, a language
model's loops over characters, a translator's greedy or beam search over its decoder step:
:func:`greedy`, :func:`beam_search`), so ``call`` returns the same output names and values as the
SavedModel's signature: sentiment's ``serving_default``, pos' ``serving_default`` and ``tag_tokens``
(not ``self_attention``), char_lm's ``serving_default`` (generate) and ``score`` (not ``states``),
translation's ``serving_default``, ``translate`` and ``attention``, captioning's ``serving_default``,
``beam`` and ``attention`` (image bytes decoded with Pillow: :func:`tasks.captioning.predicting.decode_image`),
forecasting's ``serving_default`` (:func:`tasks.forecasting.predicting.signatures`: the window checks in NumPy),
word_vectors' ``serving_default``, ``neighbours`` and ``analogy`` (:func:`tasks.word_vectors.predicting.signatures`:
the table from the graph, the lookup and the cosine top k in NumPy), video_frames' ``serving_default`` and ``gif``
(:func:`tasks.video_frames.predicting.signatures`: frames and GIFs decoded with Pillow, labels in NumPy).

The task's helpers (``predict``, ``format``...) come from the task's TensorFlow-free
``predicting.py`` (:func:`predictor_class`), the same code the SavedModel's predictor runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seqapps.inference.array_spec import ArraySpec

from seqapps.core.errors import DataError, ExportError
from seqapps.inference.predictor import Predictor
from seqapps.inference.ranking import top_k


def is_onnx(path) -> bool:
    return (Path(path) / "model.onnx").is_file()


THREADS = 1  # ONNX Runtime threads per call: on small recurrent graphs one was faster than its default
            # (a pool of one per core) both for one text and for batches of 64 (benchmarks/formats.py)


def session(path, threads: int = THREADS):
    """An ONNX Runtime session over ``path`` (``threads`` 0: ONNX Runtime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def signatures(path, threads: int = THREADS) -> tuple[dict, dict]:
    """``({name: (fn(**numpy inputs) -> {output: numpy}, {input: ArraySpec})}, metadata)`` of an ONNX export."""
    path = Path(path)
    meta_path = path / "metadata.json"
    if not meta_path.is_file():
        raise ExportError(f"{path}: not a seqapps export (expected metadata.json beside model.onnx)")
    metadata = json.loads(meta_path.read_text())
    task = metadata.get("task")
    if task not in SIGNATURES:
        raise ExportError(f"{path}: ONNX exports of {task!r} are not supported by this version of seqapps")
    sess = session(path / "model.onnx", threads)
    others = sorted(p for p in path.glob("*.onnx") if p.name != "model.onnx")
    if others:  # several graphs (translation's encoder beside its decoder step): a session each, by file stem
        sess = {"model": sess, **{p.stem: session(p, threads) for p in others}}
    return SIGNATURES[task](path, metadata, sess), metadata


def _sentiment_signatures(path: Path, metadata: dict, sess) -> dict:
    from seqapps.inference.tokenizer import TextTokenizer

    tokenizer = TextTokenizer.load(path)
    labels = np.array([label.encode("utf-8") for label in metadata["labels"]], dtype=object)
    wanted = [i.name for i in sess.get_inputs()]
    model = metadata.get("config", {}).get("model", {})
    dim = int(model.get("subword_dim", 0)) if model.get("subwords") else 0
    values = int(metadata.get("bounds", {}).get("subword_values", 0))

    def serve(text):
        texts = [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in np.asarray(text).tolist()]
        if not texts:
            return {"label": labels[:0], "probabilities": np.zeros((0, len(labels)), np.float32)}
        ids, _ = tokenizer.encode(texts)
        rows = len(texts)
        if dim and values and "subwords" in ids:  # as the SavedModel: n-gram vectors of a slice within the bound
            _, width, grams = ids["subwords"].shape
            rows = max(1, values // max(1, width * grams * dim))
        probs = np.concatenate([sess.run(["probabilities"], {k: ids[k][i:i + rows] for k in wanted})[0]
                                for i in range(0, len(texts), rows)])
        return {"label": labels[np.argmax(probs, axis=-1)], "probabilities": probs}

    return {"serving_default": (serve, {"text": ArraySpec("text", "string", (None,))})}


def _texts(array) -> list[str]:
    return [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in np.asarray(array, dtype=object).tolist()]


def _utf8(rows) -> np.ndarray:
    """Nested lists of str -> an object array of UTF-8 bytes (what a SavedModel's string outputs are)."""
    out = np.empty((len(rows), len(rows[0]) if rows else 0), dtype=object)
    for i, row in enumerate(rows):
        out[i] = [t.encode("utf-8") for t in row]
    return out


def viterbi(potentials: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`seqapps.layers.crf.viterbi_decode` in NumPy: the best tag path ``[B, T]`` (-1 on padding)
    through CRF potentials ``[B, T, K, K]``."""
    batch, steps, tags = potentials.shape[:3]
    delta = np.where(np.arange(tags) == 0, 0.0, -1e9).astype(np.float32)[None].repeat(batch, 0)
    identity = np.broadcast_to(np.arange(tags), (batch, tags))
    backs = []
    for t in range(steps):
        scores = delta[:, :, None] + potentials[:, t]
        on = mask[:, t, None]
        backs.append(np.where(on, scores.argmax(1), identity))
        delta = np.where(on, scores.max(1), delta)
    tag, path, rows = delta.argmax(-1), np.zeros((batch, steps), np.int64), np.arange(batch)
    for t in reversed(range(steps)):
        path[:, t] = tag
        tag = backs[t][rows, tag]
    return np.where(mask, path, -1)


def _pos_signatures(path: Path, metadata: dict, sess) -> dict:
    from seqapps.core.bounds import WORD_CHARS
    from seqapps.inference.tokenizer import TaggerTokenizer

    tokenizer = TaggerTokenizer.load(path)
    names = np.array([""] + list(metadata["tags"]), dtype=object)  # tag id k is names[k + 1]; -1 (padding) is ""
    wanted = [i.name for i in sess.get_inputs()]
    crf = tokenizer.spec.get("decode") == "viterbi"

    def tag(rows, width):
        """``rows`` (lists of real tokens) padded to ``width`` -> the signatures' outputs."""
        width = max([len(r) for r in rows] + [width, 1])
        lengths = np.array([len(r) for r in rows], np.int32)
        mask = np.arange(width)[None, :] < lengths[:, None]
        if not rows:
            ids, words = np.zeros((0, width), np.int64), np.zeros((0, width), np.int64)
        else:
            inputs = tokenizer.encode(rows, width)
            (scores,) = sess.run(["scores"], {k: inputs[k] for k in wanted})
            ids = viterbi(scores, mask) if crf else np.where(mask, scores.argmax(-1), -1)
            words = inputs["words"]
        tokens = _utf8([list(r) + [""] * (width - len(r)) for r in rows]) if rows else np.zeros((0, width), object)
        return {"tokens": tokens, "tags": np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(names[ids + 1])
                if ids.size else np.zeros(ids.shape, object),
                "lengths": lengths, "in_vocabulary": np.logical_and(mask, words > 1)}

    def serve_text(text):
        return tag(tokenizer.tokens(_texts(text)), 1)

    def serve_tokens(tokens):
        rows = [_texts(row) for row in tokens]
        rows = [[t[:WORD_CHARS] for t in row] for row in rows]  # the signatures' cut of long words
        rows = [row[:max([j + 1 for j, t in enumerate(row) if t] + [0])] for row in rows]  # "" on the right: padding
        return tag(rows, np.shape(tokens)[1] if np.ndim(tokens) == 2 else 1)

    return {"serving_default": (serve_text, {"text": ArraySpec("text", "string", (None,))}),
            "tag_tokens": (serve_tokens, {"tokens": ArraySpec("tokens", "string", (None, None))})}


def _char_lm_signatures(path: Path, metadata: dict, sess) -> dict:
    from seqapps.core import bounds
    from tasks.char_lm.predicting import MAX_GENERATE

    spec = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    chars = json.loads((path / spec["chars"]).read_text(encoding="utf-8"))
    index, id_to_char = {c: i for i, c in enumerate(chars, start=1)}, [""] + list(chars)
    with np.load(path / spec["state"]) as stored:
        warm = {k: stored[k] for k in spec["state_names"]}
    warm_last, window = int(spec["warm_last"]), spec.get("context")
    prime_chars = min(window or bounds.PRIME_CHARS, bounds.PRIME_CHARS)
    outputs = ["logits"] + [f"next.{k}" for k in warm]

    def step(tokens, state):
        logits, *new = sess.run(outputs, {"tokens": tokens.astype(np.int64), **state})
        return logits, dict(zip(warm, new))

    def read_ids(texts, skip_unknown=False, last=None):
        """As the graph's ``reader``: ids ``[batch, 1 + time]`` (the warm-up's last character first), the
        texts' lengths and the warm state for the batch."""
        rows = [[index.get(c, 0) for c in t] for t in texts]
        if skip_unknown:
            rows = [[i for i in r if i > 0] for r in rows]
        if last is not None:
            rows = [r[-last:] if last else [] for r in rows]
        lengths = np.array([len(r) for r in rows], np.int32)
        ids = np.zeros((len(rows), 1 + max([len(r) for r in rows] + [1])), np.int64)
        ids[:, 0] = warm_last
        for i, r in enumerate(rows):
            ids[i, 1:1 + len(r)] = r
        return ids, lengths, {k: np.repeat(v, len(rows), axis=0) for k, v in warm.items()}

    def read(state, ids, lengths):
        """The state after each row's first ``lengths`` ids (teacher forcing; a row's state stays once read)."""
        for t in range(int(lengths.max(initial=0))):
            _, new = step(ids[:, t], state)
            on = t < lengths
            state = {k: np.where(on.reshape((-1,) + (1,) * (v.ndim - 1)), new[k], v) for k, v in state.items()}
        return state

    def score(text):
        texts = _texts(text)
        ids, lengths, state = read_ids(texts)
        need = ids.shape[0] * ids.shape[1] * (len(chars) + 1)
        if need > bounds.SCORE_VALUES:
            raise DataError(f"invalid input: score keeps {len(chars) + 1} numbers per character of the longest "
                            f"text, for each row: rows x (characters + 1) x that is {need}; the bound is "
                            f"{bounds.SCORE_VALUES}")
        total = np.zeros(len(texts), np.float64)
        for t in range(ids.shape[1] - 1 if texts else 0):  # the logits after id t predict id t + 1 (t >= 1: the text)
            logits, state = step(ids[:, t], state)
            if t == 0:
                continue
            logits = logits.astype(np.float64)
            top = logits.max(-1, keepdims=True)
            log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
            gained = log_probs[np.arange(len(texts)), ids[:, t + 1]]
            total += np.where(t - 1 < lengths - 1, gained, 0.0)
        return {"log_likelihood": total.astype(np.float32), "count": np.maximum(lengths - 1, 0).astype(np.int32)}

    def generate(prime, length, temperature, top_k, top_p, seed):
        temperature, top_k, top_p, length = float(temperature), int(top_k), float(top_p), int(length)
        for bad, message in ((not 0 <= temperature < float("inf"), f"temperature must be finite and >= 0, got {temperature}"),
                             (top_k < 0, f"top_k must be >= 0, got {top_k}"),
                             (not 0 < top_p <= 1, f"top_p must be in (0, 1], got {top_p}")):
            if bad:
                raise DataError(f"invalid input: {message}")
        primes = _texts(prime)
        n = min(max(length, 0), MAX_GENERATE)
        if len(primes) * n > bounds.GENERATE_CHARS:
            raise DataError(f"invalid input: rows x length is {len(primes) * n}; the bound is {bounds.GENERATE_CHARS} "
                            "characters generated in one call: ask for fewer rows or fewer characters")
        if not primes:
            return {"text": np.zeros(0, object), "length": np.zeros(0, np.int32)}
        ids, lengths, state = read_ids(primes, skip_unknown=True, last=prime_chars)
        state = read(state, ids, lengths)  # all but each row's last character
        token = ids[np.arange(len(primes)), lengths]
        rng = np.random.default_rng(int(seed) % 2 ** 63)
        picked = []
        for t in range(max(n, 1)):
            logits, state = step(token, state)
            logits[:, 0] += -1e9  # never the unknown id
            token = pick(logits, temperature, top_k, top_p, rng)
            picked.append(token)
        text = ["".join(id_to_char[i] for i in row[:n]) for row in np.stack(picked, 1).tolist()]
        return {"text": np.array([t.encode("utf-8") for t in text], dtype=object),
                "length": np.full(len(primes), n, np.int32)}

    scalar = lambda name, dtype: ArraySpec(name, dtype, ())  # noqa: E731
    return {"serving_default": (generate, {"prime": ArraySpec("prime", "string", (None,)),
                                           "length": scalar("length", "int32"),
                                           "temperature": scalar("temperature", "float32"),
                                           "top_k": scalar("top_k", "int32"), "top_p": scalar("top_p", "float32"),
                                           "seed": scalar("seed", "int64")}),
            "score": (score, {"text": ArraySpec("text", "string", (None,))})}


def pick(logits: np.ndarray, temperature: float, top_k: int, top_p: float, rng) -> np.ndarray:
    """:func:`seqapps.inference.decoding.sample_logits` in NumPy: the argmax at temperature 0, else a draw
    from ``rng`` after the temperature, top-k and top-p filters (the same filters; not the same draws)."""
    logits = logits.astype(np.float32)
    if temperature <= 0:
        return logits.argmax(-1)
    scaled = logits / max(temperature, 1e-6)
    vocab = scaled.shape[-1]
    k = min(top_k, vocab) if top_k > 0 else vocab
    kth = -np.sort(-scaled, axis=-1)[:, k - 1:k]
    scaled = np.where(scaled < kth, -1e9, scaled)
    if top_p < 1:
        ordered = -np.sort(-scaled, axis=-1)
        probs = np.exp(ordered - ordered[:, :1])
        probs /= probs.sum(-1, keepdims=True)
        before = np.cumsum(probs, -1) - probs
        smallest = np.where(before < top_p, ordered, np.finfo(np.float32).max).min(-1, keepdims=True)
        scaled = np.where(scaled < smallest, -1e9, scaled)
    probs = np.exp(scaled - scaled.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    draws = rng.random((len(probs), 1))
    return np.minimum((np.cumsum(probs, -1) < draws).sum(-1), vocab - 1)


# -- decoding loops in NumPy: seqapps.inference.decoding's greedy and beam search, step for step --------------
NEG_INF = np.float32(-1e9)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``tf.nn.log_softmax`` in float32."""
    logits = logits.astype(np.float32)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def length_normalizer(lengths, alpha) -> np.ndarray:
    """GNMT's ``((5 + length) / 6) ** alpha`` in float32, as :func:`seqapps.inference.decoding.length_normalizer`."""
    return np.power((np.float32(5.0) + np.asarray(lengths, np.float32)) / np.float32(6.0), np.float32(alpha))


def _rows(state: dict) -> int:
    return len(next(iter(state.values())))


def greedy(step, state: dict, start: int, end: int, max_length: int, pad: int = 0) -> dict:
    """:func:`seqapps.inference.decoding.greedy` over ``step(tokens [rows], state) -> (logits, new state,
    extras)`` (NumPy dicts): ``tokens`` ``[batch, steps]``, ``lengths``, ``scores`` and ``extras`` stacked
    ``[batch, steps, ...]``."""
    batch, max_length = _rows(state), max(int(max_length), 1)

    def pick(logits, finished, score):
        token = np.where(finished, pad, logits.argmax(-1))
        gained = log_softmax(logits)[np.arange(batch), token]
        return token, finished | (token == end), (score + np.where(finished, np.float32(0), gained)).astype(np.float32)

    logits, state, extras = step(np.full(batch, start, np.int64), state)
    token, finished, score = pick(logits, np.zeros(batch, bool), np.zeros(batch, np.float32))
    lengths = np.where(finished, 0, 1).astype(np.int32)
    tokens, recorded = [token], [extras]
    while len(tokens) < max_length and not finished.all():
        logits, state, extras = step(token, state)
        token, finished, score = pick(logits, finished, score)
        lengths += ~finished
        tokens.append(token)
        recorded.append(extras)
    tokens = np.stack(tokens, 1)
    tokens = np.where(np.arange(tokens.shape[1])[None] < lengths[:, None], tokens, pad)
    return {"tokens": tokens, "lengths": lengths, "scores": score,
            "extras": {k: np.stack([e[k] for e in recorded], 1) for k in recorded[0]}}


def beam_search(step, state: dict, start: int, end: int, max_length: int, beam_width: int,
                length_penalty: float = 0.0, pad: int = 0, reordered=None) -> dict:
    """:func:`seqapps.inference.decoding.beam_search` (as :func:`greedy`): the same tiling, ranking by the
    length-penalised score, ties to the lower index (``tf.math.top_k``'s), finished beams extended by padding
    at no cost, and backtracking. ``reordered``: the state's keys that change from step to step (the others,
    encoder outputs say, are the same for every beam of a row and are not gathered); None: all of them."""
    k, batch, max_length = int(beam_width), _rows(state), max(int(max_length), 1)
    state = {key: np.repeat(v, k, axis=0) for key, v in state.items()}
    reordered = list(state) if reordered is None else list(reordered)
    scores = np.tile(np.array([0.0] + [NEG_INF] * (k - 1), np.float32), (batch, 1))
    finished, lengths = np.zeros((batch, k), bool), np.zeros((batch, k), np.int32)
    token = np.full(batch * k, start, np.int64)
    tokens, parents, recorded = [], [], []
    while not tokens or (len(tokens) < max_length and not finished.all()):
        logits, state, extras = step(token.reshape(-1), state)
        log_probs = log_softmax(logits).reshape(batch, k, -1)
        vocab = log_probs.shape[-1]
        only_pad = np.where(np.arange(vocab) == pad, np.float32(0), NEG_INF).astype(np.float32)
        log_probs = np.where(finished[:, :, None], only_pad[None, None], log_probs)
        total = scores[:, :, None] + log_probs
        new_len = lengths + (~finished).astype(np.int32)
        ranked = (total / length_normalizer(np.maximum(new_len, 1), length_penalty)[:, :, None]).reshape(batch, -1)
        flat = top_k(ranked, k)
        parent, token = flat // vocab, flat % vocab
        scores = np.take_along_axis(total.reshape(batch, -1), flat, 1)
        lengths = np.take_along_axis(new_len, parent, 1)
        finished = np.take_along_axis(finished, parent, 1) | (token == end)
        rows = (parent + np.arange(batch)[:, None] * k).reshape(-1)
        state = {key: v[rows] if key in reordered else v for key, v in state.items()}
        recorded.append({key: v[rows].reshape(batch, k, *v.shape[1:]) for key, v in extras.items()})
        tokens.append(token)
        parents.append(parent)
    normalized = scores / length_normalizer(np.maximum(lengths, 1), length_penalty)
    best = normalized.argmax(-1)
    rows = np.arange(batch)
    best_len = lengths[rows, best] - finished[rows, best].astype(np.int32)
    out_tokens, out_extras, beam = [], [], best
    for t in reversed(range(len(tokens))):
        out_tokens.append(tokens[t][rows, beam])
        out_extras.append({key: v[rows, beam] for key, v in recorded[t].items()})
        beam = parents[t][rows, beam]
    out = np.stack(out_tokens[::-1], 1)
    return {"tokens": np.where(np.arange(out.shape[1])[None] < best_len[:, None], out, pad), "lengths": best_len,
            "scores": scores[rows, best], "normalized_scores": normalized[rows, best],
            "extras": {key: np.stack([e[key] for e in out_extras[::-1]], 1) for key in recorded[0]}}


def _hypothesis_values(metadata: dict, vocabulary: int, spec: dict) -> int:
    """:func:`tasks.translation.serving.hypothesis_values` from metadata.json's settings, for folders written
    before tokenizer.json carried it."""
    model = metadata.get("config", {}).get("model", {})
    widest = max([int(v) for k, v in model.items() if k.endswith("units") and isinstance(v, int)] or [256])
    return 16 * (vocabulary + max(int(spec["max_length"]), 1) * widest)


def _stack_padded(arrays: list, fill) -> np.ndarray:
    """Row blocks whose later axes differ (each slice decodes its own number of steps) -> one array, each
    block padded with ``fill`` to the largest."""
    if len(arrays) == 1:
        return arrays[0]
    shape = np.max([a.shape for a in arrays], axis=0)
    return np.concatenate([np.pad(a, [(0, 0)] + [(0, int(n) - m) for n, m in zip(shape[1:], a.shape[1:])],
                                  constant_values=fill) for a in arrays])


def _translation_signatures(path: Path, metadata: dict, sess) -> dict:
    from seqapps.core import bounds
    from seqapps.inference.predictor import MAX_BEAM
    from seqapps.inference.tokenizer import SourceTokenizer, detokenize

    tokenizer = SourceTokenizer.load(path)
    spec = tokenizer.spec
    target = np.array(json.loads((path / spec["target_vocabulary"]).read_text(encoding="utf-8")), dtype=object)
    start, end, banned = int(spec["start_id"]), int(spec["end_id"]), list(spec["banned"])
    names, carried, french = list(spec["state_names"]), list(spec["carried"]), bool(spec["french_spacing"])
    outputs = ["logits"] + [f"next.{k}" for k in carried] + (["attention"] if spec["attention"] else [])
    encoder, decoder = sess["encoder"], sess["model"]
    defaults = metadata["decoding"]
    per_hypothesis = int(spec.get("hypothesis_values") or _hypothesis_values(metadata, len(target), spec))

    def step(tokens, state):
        """The decoder's step with the banned ids and each row's cap (``capped``): from step ``cap`` on, only
        the end token."""
        logits, *rest = decoder.run(outputs, {"tokens": tokens.astype(np.int64), **{k: state[k] for k in names}})
        logits[:, banned] += NEG_INF
        over = state["t"] >= state["cap"]
        only_end = np.where(np.arange(logits.shape[-1]) == end, np.float32(0), NEG_INF).astype(np.float32)
        logits = np.where(over[:, None], only_end[None], logits)
        new = {**state, **dict(zip(carried, rest)), "t": state["t"] + 1}
        return logits, new, ({"attention": rest[-1]} if spec["attention"] else {})

    def decode_rows(ids, source_lengths, beam_width, length_penalty):
        state = dict(zip(names, encoder.run(names, {"source": ids})))
        caps = np.minimum(int(spec["max_output_length"]), 2 * source_lengths + 10).astype(np.int32)
        state.update(cap=caps, t=np.zeros_like(caps))
        max_steps = int(caps.max(initial=0)) + 1
        if beam_width <= 1:
            return greedy(step, state, start, end, max_steps)
        return beam_search(step, state, start, end, max_steps, beam_width, length_penalty, reordered=carried + ["t"])

    def decode(text, beam_width, length_penalty):
        if not 1 <= beam_width <= MAX_BEAM:
            raise DataError(f"invalid input: beam_width must be an integer >= 1 and <= {MAX_BEAM}")
        if not np.isfinite(length_penalty):
            raise DataError("invalid input: length_penalty must be a finite number")
        texts = _texts(text)
        ids, words = tokenizer.encode(texts)
        source_lengths = (ids != 0).sum(1).astype(np.int32)
        if not texts:
            empty = np.zeros((0, 0), object)
            return {"translation": np.zeros(0, object), "scores": np.zeros(0, np.float32), "words": empty,
                    "lengths": np.zeros(0, np.int32), "attention": np.zeros((0, 0, ids.shape[1]), np.float32),
                    "source_ids": ids, "words_in": words, "source_lengths": source_lengths}
        # as the SavedModel: what decoding holds grows with rows x beam, so a few rows at a time
        rows = max(1, bounds.DECODE_VALUES // (beam_width * per_hypothesis))
        parts = [decode_rows(ids[i:i + rows], source_lengths[i:i + rows], beam_width, length_penalty)
                 for i in range(0, len(texts), rows)]
        out = {"lengths": np.concatenate([p["lengths"] for p in parts]),
               "scores": np.concatenate([p["scores"] for p in parts]),
               "tokens": _stack_padded([p["tokens"] for p in parts], end)}
        if "attention" in parts[0]["extras"]:
            out["extras"] = {"attention": _stack_padded([p["extras"]["attention"] for p in parts], 0)}
        else:
            out["extras"] = {}
        lengths = out["lengths"]
        steps = np.arange(out["tokens"].shape[1])[None] < lengths[:, None]
        out_words = np.where(steps, target[out["tokens"]], "")
        translation = [detokenize(" ".join(row[:n]), french) if m > 0 else ""
                       for row, n, m in zip(out_words.tolist(), lengths.tolist(), source_lengths.tolist())]
        attention = out["extras"].get("attention")
        if attention is None:
            attention = np.zeros(out["tokens"].shape + (ids.shape[1],), np.float32)
        return {"translation": np.array([t.encode("utf-8") for t in translation], dtype=object),
                "scores": out["scores"], "words": out_words, "lengths": np.where(source_lengths > 0, lengths, 0),
                "attention": attention, "source_ids": ids, "words_in": words, "source_lengths": source_lengths}

    def translate(text, beam_width, length_penalty):
        out = decode(text, int(beam_width), float(length_penalty))
        return {"translation": out["translation"], "score": out["scores"]}

    def attention(text, beam_width):
        out = decode(text, int(beam_width), float(defaults["length_penalty"]))
        width = out["source_ids"].shape[1]
        return {"translation": out["translation"], "attention": out["attention"],
                "source_tokens": _utf8([row + [""] * (width - len(row)) for row in out["words_in"]])
                if out["words_in"] else np.zeros((0, width), object),
                "source_lengths": out["source_lengths"],
                "output_tokens": _utf8(out["words"].tolist()) if len(out["words"]) else np.zeros((0, 0), object),
                "output_lengths": out["lengths"].astype(np.int32)}

    def serve(text):
        return translate(text, defaults["beam_width"], defaults["length_penalty"])

    text = ArraySpec("text", "string", (None,))
    beam, penalty = ArraySpec("beam_width", "int32", ()), ArraySpec("length_penalty", "float32", ())
    return {"serving_default": (serve, {"text": text}),
            "translate": (translate, {"text": text, "beam_width": beam, "length_penalty": penalty}),
            "attention": (attention, {"text": text, "beam_width": beam})}


def _captioning_signatures(path: Path, metadata: dict, sess) -> dict:
    from seqapps.core import bounds
    from tasks.captioning.predicting import decode_images, join_caption

    spec = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    words = np.array(json.loads((path / spec["vocabulary"]).read_text(encoding="utf-8")), dtype=object)
    size, grid = int(spec["image_size"]), tuple(spec["grid"])
    start, end, banned, max_steps = int(spec["start_id"]), int(spec["end_id"]), list(spec["banned"]), int(spec["max_steps"])
    names, carried, attends = list(spec["state_names"]), list(spec["carried"]), bool(spec["attention"])
    outputs = ["logits"] + [f"next.{k}" for k in carried] + (["attention"] if attends else [])
    encoder, decoder = sess["encoder"], sess["model"]

    def step(tokens, state):
        logits, *rest = decoder.run(outputs, {"tokens": tokens.astype(np.int64), **state})
        logits[:, banned] += NEG_INF  # never the unknown word or a second start
        return logits, {**state, **dict(zip(carried, rest))}, ({"attention": rest[-1]} if attends else {})

    def caption(image, width):
        blobs = [bytes(b) if isinstance(b, (bytes, bytearray)) else str(b).encode("utf-8")
                 for b in np.asarray(image, dtype=object).reshape(-1).tolist()]
        if len(blobs) > bounds.IMAGE_ROWS:
            raise DataError(f"invalid input: image has more than {bounds.IMAGE_ROWS} rows; "
                            f"send at most {bounds.IMAGE_ROWS} in one call")
        if sum(map(len, blobs)) > bounds.IMAGE_CALL_BYTES:
            raise DataError(f"invalid input: the image items together are over {bounds.IMAGE_CALL_BYTES} bytes; "
                            "send them in several calls")
        n = len(blobs)
        pixels, valid = decode_images(blobs or [b""], size)  # a batch of 0 runs one blank item, as the graph
        state = dict(zip(names, encoder.run(names, {"pixels": pixels})))
        if width <= 1:
            out = greedy(step, state, start, end, max_steps)
        else:
            out = beam_search(step, state, start, end, max_steps, width, float(spec["length_penalty"]),
                              reordered=carried)
        lengths = out["lengths"]
        steps = np.arange(out["tokens"].shape[1])[None] < lengths[:, None]
        strings = np.where(steps & valid[:, None], words[out["tokens"]], "")
        captions = [join_caption(" ".join(row[:m])) if ok else "" for row, m, ok in
                    zip(strings.tolist(), lengths.tolist(), valid.tolist())]
        answer = {"caption": np.array([c.encode("utf-8") for c in captions], dtype=object), "valid": valid,
                  "length": np.where(valid, lengths, 0).astype(np.int32),
                  "score": np.where(valid, out["scores"], np.float32(0)).astype(np.float32),
                  "words": _utf8(strings.tolist())}
        if attends:
            maps = out["extras"]["attention"] * valid.astype(np.float32)[:, None, None]
            answer["attention"] = maps.reshape(maps.shape[:2] + grid)
        return {k: v[:n] for k, v in answer.items()}

    def pick(width, *keys):
        return lambda image: {k: v for k, v in caption(image, width).items() if k in keys}

    image = {"image": ArraySpec("image", "string", (None,))}
    out = {"serving_default": (pick(1, "caption", "valid", "length", "score"), image),
           "beam": (pick(int(spec["beam_width"]), "caption", "valid", "length", "score"), image)}
    if attends:
        out["attention"] = (pick(1, "caption", "valid", "length", "words", "attention"), image)
    return out


def _forecasting_signatures(path: Path, metadata: dict, sess) -> dict:
    from tasks.forecasting.predicting import signatures

    return signatures(path, metadata, sess)


def _word_vectors_signatures(path: Path, metadata: dict, sess) -> dict:
    from tasks.word_vectors.predicting import signatures

    return signatures(path, metadata, sess)


def _video_frames_signatures(path: Path, metadata: dict, sess) -> dict:
    from tasks.video_frames.predicting import signatures

    return signatures(path, metadata, sess, viterbi)


SIGNATURES = {"sentiment": _sentiment_signatures, "pos": _pos_signatures, "char_lm": _char_lm_signatures,
              "translation": _translation_signatures, "captioning": _captioning_signatures,
              "forecasting": _forecasting_signatures, "word_vectors": _word_vectors_signatures,
              "video_frames": _video_frames_signatures}
_TAGGED = {"tokens": ("string", (None, None)), "tags": ("string", (None, None)), "lengths": ("int32", (None,)),
           "in_vocabulary": ("bool", (None, None))}
_LABELLED = {"labels": ("string", (None, None)), "probabilities": ("float32", (None, None, None)),
             "lengths": ("int32", (None,)), "valid": ("bool", (None, None))}
_CAPTIONED = {"caption": ("string", (None,)), "valid": ("bool", (None,)), "length": ("int32", (None,)),
              "score": ("float32", (None,))}
OUTPUTS = {"sentiment": {"serving_default": {"label": ("string", (None,)), "probabilities": ("float32", (None, None))}},
           "pos": {"serving_default": _TAGGED, "tag_tokens": _TAGGED},
           "char_lm": {"serving_default": {"text": ("string", (None,)), "length": ("int32", (None,))},
                       "score": {"log_likelihood": ("float32", (None,)), "count": ("int32", (None,))}},
           "translation": {"serving_default": {"translation": ("string", (None,)), "score": ("float32", (None,))},
                           "translate": {"translation": ("string", (None,)), "score": ("float32", (None,))},
                           "attention": {"translation": ("string", (None,)), "attention": ("float32", (None, None, None)),
                                         "source_tokens": ("string", (None, None)), "source_lengths": ("int32", (None,)),
                                         "output_tokens": ("string", (None, None)), "output_lengths": ("int32", (None,))}},
           "forecasting": {"serving_default": {"forecast": ("float32", (None, None))}},
           "word_vectors": {"serving_default": {"vectors": ("float32", (None, None)), "in_vocabulary": ("bool", (None,))},
                            "neighbours": {"neighbours": ("string", (None, None)),
                                           "similarities": ("float32", (None, None))},
                            "analogy": {"answer": ("string", (None,)), "similarity": ("float32", (None,))}},
           "video_frames": {"serving_default": _LABELLED, "gif": _LABELLED},
           "captioning": {"serving_default": _CAPTIONED, "beam": _CAPTIONED,
                          "attention": {**{k: v for k, v in _CAPTIONED.items() if k != "score"},
                                        "words": ("string", (None, None)),
                                        "attention": ("float32", (None, None, None, None))}}}


class OnnxPredictor(Predictor):
    runtime = "onnx"

    @property
    def task(self):
        """The registered task (imports its module, and so TensorFlow: only ``evaluate`` asks for it)."""
        from seqapps.core import registry

        return registry.get(self.metadata["task"])

    @task.setter
    def task(self, value):
        pass  # looked up when asked for, so loading never imports the task's TensorFlow code

    def call(self, signature: str = "serving_default", **inputs) -> dict:
        fn, specs = self.signature_for(signature, inputs)
        return fn(**{k: specs[k].convert(v, signature) for k, v in inputs.items()})


def predictor_class(task: str, base: type = OnnxPredictor) -> type:
    """``base`` (:class:`OnnxPredictor`, or LiteRT's) with the task's own helpers (``predict``, ``format``...)
    when its folder has a TensorFlow-free ``predicting.py`` with a ``Predictions`` mixin, as the SavedModel's
    predictor has them."""
    import importlib
    import importlib.util

    module = f"tasks.{task}.predicting"
    if not task.isidentifier() or importlib.util.find_spec(module) is None:
        return base
    mixin = importlib.import_module(module).Predictions
    return type(f"{mixin.__name__}{base.__name__}", (mixin, base), {})


def load(path, threads: int = THREADS) -> OnnxPredictor:
    sigs, metadata = signatures(path, threads)
    return predictor_class(str(metadata.get("task", "")))(None, sigs, metadata)
