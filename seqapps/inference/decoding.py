"""Decoding loops for autoregressive models: greedy, sampling and beam search.

Every loop here runs inside a TensorFlow graph (``tf.while_loop`` and
``tf.TensorArray``), so it can sit in an exported serving function; each step feeds
only the newest token and the carried state, never the whole prefix again.

The model side: a step function
-------------------------------
::

    def step(tokens, state):
        # tokens: int32 [batch]; state: any nest (dict, tuple...) of tensors whose
        # leading axis is the batch: recurrent state, and also anything constant that
        # the step reads (encoder outputs, a source mask, image features).
        ...
        return logits, new_state, extras
        # logits: float [batch, vocab] for the next token
        # new_state: the same structure and shapes as state
        # extras: a nest of tensors [batch, ...] recorded at each step (attention
        #         weights, say), or {} / None for nothing

The same ``step`` serves all loops. Beam search runs it on ``batch * beam_width``
rows: it tiles ``init_state`` (every leaf, constants included) and reorders it as
beams are chosen, so the step never needs to know about beams.

Calling the loops
-----------------
::

    out = greedy(step, init_state, start_token=2, end_token=3, max_length=50)
    out = beam_search(step, init_state, 2, 3, 50, beam_width=4, length_penalty=0.6)
    out = sample(step, init_state, 2, 3, 50, temperature=0.8, top_k=40, top_p=0.95, seed=7)

Each returns a dict of tensors:

- ``tokens``: int32 ``[batch, steps]``, the generated ids without the start token and
  without the end token; positions at and after ``lengths`` hold ``pad_token`` (0).
  ``steps <= max_length``: the loop stops as soon as every row has ended.
- ``lengths``: int32 ``[batch]``, the number of generated tokens before the end token.
- ``scores``: float32 ``[batch]``: the sum of log-probabilities of the tokens chosen,
  end token included (for ``beam_search``: of the best beam, before length penalty;
  ``normalized_scores`` holds the length-penalised score beams were ranked by).
- ``extras``: the step's extras stacked over time, ``[batch, steps, ...]``, taken
  along the returned sequence (for beam search, along the winning beam's history).

``start_token``, ``end_token``, ``max_length``, ``temperature``, ``top_k``, ``top_p``
may be Python numbers or scalar tensors (say, inputs of a serving signature);
``beam_width`` may be a Python int or an int32 scalar tensor. ``length_penalty`` is GNMT's alpha:
hypotheses are ranked by ``log_prob / ((5 + length) / 6) ** alpha``; 0 ranks by the
plain sum of log-probabilities.

``start_token`` may also be an int ``[batch]`` tensor, one first token per row (the
last character of each prime, for a language model that continues text); an
``end_token`` that no step can produce (-1) makes the loops run ``max_length`` steps.

``sample_logits(logits, temperature, top_k, top_p, seed)`` picks one token per row
from ``[batch, vocab]`` logits: temperature 0 means argmax, ``top_k`` 0 and ``top_p`` 1
switch those filters off, and an integer ``seed`` (with ``step``) makes the draw
reproducible through stateless random ops.

Built on the same step
----------------------
- ``search(..., beam_width, length_penalty)``: greedy for width 1, else beam search; a
  width that is a serving input picks between them in the graph.
- ``read(step, state, tokens, lengths)``: teacher forcing, one given token at a time
  (priming on text, scoring it, recording every state).
- ``banned(step, ids)``: the same step with ``ids`` never chosen (padding, unknown).
- ``join_words(vocab, tokens, lengths)``: ids back to words and space-joined strings.
"""

from __future__ import annotations

import functools

import tensorflow as tf

NEG_INF = -1e9


# -- helpers ---------------------------------------------------------------------------------
def _batch_size(state):
    leaves = tf.nest.flatten(state)
    if not leaves:
        raise ValueError("init_state must hold at least one tensor with a leading batch axis")
    return tf.shape(leaves[0])[0]


def _empty_extras(extras):
    return extras is None or not tf.nest.flatten(extras)


def _arrays_like(extras):
    return tf.nest.map_structure(
        lambda t: tf.TensorArray(t.dtype, size=0, dynamic_size=True, element_shape=t.shape), extras)


def _write(arrays, t, values):
    return tf.nest.map_structure(lambda a, v: a.write(t, v), arrays, values)


def _stack_time_major(arrays):
    """TensorArrays of [batch, ...] -> tensors [batch, time, ...]."""
    def stack(a):
        s = a.stack()
        rank = len(s.shape)
        return tf.transpose(s, [1, 0] + list(range(2, rank)))
    return tf.nest.map_structure(stack, arrays)


def _loosen(x, keep_last: int = 0):
    """``x`` with its leading axes' static sizes forgotten (all but the last ``keep_last``),
    so a loop variable's shape stays the same before and inside ``tf.while_loop``."""
    dims = x.shape.as_list()
    known = dims[len(dims) - keep_last:] if keep_last else []
    return tf.raw_ops.PlaceholderWithDefault(input=x, shape=[None] * (len(dims) - len(known)) + known)


def _start_tokens(start_token, batch):
    """A scalar start token, or one per row, as int32 ``[batch]``."""
    return tf.broadcast_to(tf.cast(start_token, tf.int32), [batch])


def tile_beams(x, beam_width: int):
    """Repeat each batch row ``beam_width`` times: ``[batch, ...] -> [batch * beam, ...]``."""
    return tf.repeat(x, beam_width, axis=0)


def length_normalizer(lengths, alpha):
    """GNMT length penalty ``((5 + length) / 6) ** alpha``."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, tf.cast(alpha, tf.float32))


# -- picking one token ---------------------------------------------------------------------------
def sample_logits(logits, temperature=1.0, top_k=0, top_p=1.0, seed=None, step=0):
    """One token id (int32 ``[batch]``) per row of ``logits`` ``[batch, vocab]``.

    ``temperature`` <= 0 returns the argmax. ``top_k`` > 0 keeps the k largest logits;
    ``top_p`` < 1 keeps the smallest set of tokens whose probability reaches ``top_p``
    (always at least the most likely one). With ``seed`` (an int or int tensor), the
    draw is ``tf.random.stateless_categorical`` seeded by ``(seed, step)``, so the same
    seed and step give the same token; without it, the global random state is used.
    """
    logits = tf.cast(logits, tf.float32)
    vocab = tf.shape(logits)[-1]
    temperature = tf.cast(temperature, tf.float32)
    greedy_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    scaled = logits / tf.maximum(temperature, 1e-6)

    top_k = tf.cast(top_k, tf.int32)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    kth = tf.reduce_min(tf.math.top_k(scaled, k=k).values, axis=-1, keepdims=True)
    scaled = tf.where(scaled < kth, NEG_INF, scaled)

    top_p = tf.cast(top_p, tf.float32)
    ordered = tf.sort(scaled, axis=-1, direction="DESCENDING")
    before = tf.cumsum(tf.nn.softmax(ordered, axis=-1), axis=-1, exclusive=True)
    keep = tf.logical_or(before < top_p, top_p >= 1.0)
    smallest_kept = tf.reduce_min(tf.where(keep, ordered, tf.float32.max), axis=-1, keepdims=True)
    scaled = tf.where(scaled < smallest_kept, NEG_INF, scaled)

    if seed is None:
        drawn = tf.random.categorical(scaled, 1, dtype=tf.int32)
    else:
        pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
        drawn = tf.random.stateless_categorical(scaled, 1, seed=pair, dtype=tf.int32)
    return tf.where(temperature > 0, drawn[:, 0], greedy_ids)


# -- one-hypothesis loops ------------------------------------------------------------------------
def _sequential(step, init_state, start_token, end_token, max_length, choose, pad_token=0):
    batch = _batch_size(init_state)
    start = _start_tokens(start_token, batch)
    end = tf.cast(end_token, tf.int32)
    max_length = tf.maximum(tf.cast(max_length, tf.int32), 1)

    # the first step runs outside the loop so the extras' structure and dtypes are known
    logits, state, extras = step(start, init_state)
    has_extras = not _empty_extras(extras)

    def pick(t, logits, finished, score):
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        token = tf.where(finished, tf.cast(pad_token, tf.int32), choose(logits, t))
        gained = tf.gather(log_probs, token, batch_dims=1)
        score = score + tf.where(finished, 0.0, gained)
        return token, tf.logical_or(finished, tf.equal(token, end)), score

    finished = tf.zeros([batch], tf.bool)
    token, now_finished, score = pick(0, logits, finished, tf.zeros([batch], tf.float32))
    lengths = tf.where(now_finished, 0, 1)
    tokens_ta = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]).write(0, token)
    extras_ta = _write(_arrays_like(extras), 0, extras) if has_extras else ()

    def cond(t, token, state, finished, score, lengths, tokens_ta, extras_ta):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(t, token, state, finished, score, lengths, tokens_ta, extras_ta):
        logits, new_state, extras = step(token, state)
        token, new_finished, score = pick(t, logits, finished, score)
        lengths = lengths + tf.cast(tf.logical_not(new_finished), tf.int32)
        tokens_ta = tokens_ta.write(t, token)
        if has_extras:
            extras_ta = _write(extras_ta, t, extras)
        return t + 1, token, new_state, new_finished, score, lengths, tokens_ta, extras_ta

    _, _, _, _, score, lengths, tokens_ta, extras_ta = tf.while_loop(
        cond, body, (tf.constant(1), token, state, now_finished, score, lengths, tokens_ta, extras_ta),
        shape_invariants=None, maximum_iterations=max_length, parallel_iterations=1)
    tokens = tf.transpose(tokens_ta.stack())                               # [batch, steps]
    valid = tf.sequence_mask(lengths, tf.shape(tokens)[1])
    tokens = tf.where(valid, tokens, tf.cast(pad_token, tf.int32))
    return {"tokens": tokens, "lengths": lengths, "scores": score,
            "extras": _stack_time_major(extras_ta) if has_extras else {}}


def greedy(step, init_state, start_token, end_token, max_length, pad_token=0):
    """The most likely token at every step (see the module docstring for the output)."""
    return _sequential(step, init_state, start_token, end_token, max_length,
                       lambda logits, t: tf.argmax(logits, axis=-1, output_type=tf.int32), pad_token)


def sample(step, init_state, start_token, end_token, max_length, temperature=1.0, top_k=0, top_p=1.0,
           seed=None, pad_token=0):
    """Temperature / top-k / top-p sampling at every step (temperature 0 is greedy)."""
    return _sequential(step, init_state, start_token, end_token, max_length,
                       lambda logits, t: sample_logits(logits, temperature, top_k, top_p, seed, t), pad_token)


# -- beam search -----------------------------------------------------------------------------------
def beam_search(step, init_state, start_token, end_token, max_length, beam_width: int = 4,
                length_penalty=0.0, pad_token=0):
    """The best of ``beam_width`` hypotheses kept at each step, per batch row.

    Hypotheses that have produced the end token stay in the beam with a fixed score
    and compete with the live ones on their length-penalised score. Output as in the
    module docstring, plus ``normalized_scores``.
    """
    k, k_static = _beam_width(beam_width)
    batch = _batch_size(init_state)
    end, pad = tf.cast(end_token, tf.int32), tf.cast(pad_token, tf.int32)
    max_length = tf.maximum(tf.cast(max_length, tf.int32), 1)
    alpha = tf.cast(length_penalty, tf.float32)
    advance = functools.partial(_beam_advance, batch, k, pad, end, alpha)

    state = tf.nest.map_structure(lambda x: tile_beams(x, k), init_state)
    tokens = tile_beams(_start_tokens(start_token, batch), k)
    # only the first beam of each row is alive at the start, so the k beams differ
    scores = tf.reshape(tf.tile(tf.concat([[0.0], tf.fill([k - 1], NEG_INF)], 0), [batch]), [batch, k])
    finished, lengths = tf.zeros([batch, k], tf.bool), tf.zeros([batch, k], tf.int32)

    logits, new_state, extras = step(tokens, state)
    has_extras = not _empty_extras(extras)
    extras = extras if has_extras else ()
    token, parent, state, extras, scores, finished, lengths = advance(logits, new_state, extras, scores, finished,
                                                                      lengths)
    tokens_ta = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None, k_static]).write(0, token)
    parents_ta = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None, k_static]).write(0, parent)
    extras_ta = _write(_arrays_like(extras), 0, extras) if has_extras else ()

    # the loop computes batch and beam sizes from captured tensors: let the shapes match
    token, scores, finished, lengths = (_loosen(v) if k_static is None else _loosen(v, 1)
                                        for v in (token, scores, finished, lengths))
    state = tf.nest.map_structure(lambda x: _loosen(x, max(len(x.shape) - 1, 0)), state)

    def cond(t, token, state, scores, finished, lengths, tokens_ta, parents_ta, extras_ta):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(t, token, state, scores, finished, lengths, tokens_ta, parents_ta, extras_ta):
        logits, new_state, extras = step(tf.reshape(token, [-1]), state)
        token, parent, new_state, extras, scores, finished, lengths = advance(
            logits, new_state, extras if has_extras else (), scores, finished, lengths)
        tokens_ta, parents_ta = tokens_ta.write(t, token), parents_ta.write(t, parent)
        if has_extras:
            extras_ta = _write(extras_ta, t, extras)
        return t + 1, token, new_state, scores, finished, lengths, tokens_ta, parents_ta, extras_ta

    steps, _, _, scores, finished, lengths, tokens_ta, parents_ta, extras_ta = tf.while_loop(
        cond, body, (tf.constant(1), token, state, scores, finished, lengths, tokens_ta, parents_ta, extras_ta),
        maximum_iterations=max_length, parallel_iterations=1)

    # lengths count the end token (as the penalty does); the output's lengths do not
    normalized = scores / length_normalizer(tf.maximum(lengths, 1), alpha)
    best = tf.argmax(normalized, axis=-1, output_type=tf.int32)                        # [batch]
    best_len = tf.gather(lengths - tf.cast(finished, tf.int32), best, batch_dims=1)
    result_tokens, out_extras = _backtrack(steps, best, tokens_ta, parents_ta, extras_ta if has_extras else ())
    valid = tf.sequence_mask(best_len, tf.shape(result_tokens)[1])
    return {"tokens": tf.where(valid, result_tokens, pad), "lengths": best_len,
            "scores": tf.gather(scores, best, batch_dims=1),
            "normalized_scores": tf.gather(normalized, best, batch_dims=1),
            "extras": _stack_time_major(out_extras) if has_extras else {}}


def _beam_width(beam_width):
    """``(k, k if known when tracing else None)``; a tensor width below 1 counts as 1."""
    if not isinstance(beam_width, int) and tf.get_static_value(beam_width) is not None:
        beam_width = int(tf.get_static_value(beam_width))
    if isinstance(beam_width, int):
        if beam_width < 1:
            raise ValueError(f"beam_width must be >= 1, got {beam_width}")
        return beam_width, beam_width
    return tf.maximum(tf.cast(beam_width, tf.int32), 1), None


def _beam_advance(batch, k, pad, end, alpha, logits, state, extras, scores, finished, lengths):
    """Expand every beam by every token, keep the k best; reorder state and extras."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    vocab = tf.shape(log_probs)[-1]
    log_probs = tf.reshape(log_probs, [batch, k, vocab])
    # a finished beam extends only by padding, at no cost
    only_pad = tf.where(tf.range(vocab) == pad, 0.0, NEG_INF)
    log_probs = tf.where(finished[:, :, None], only_pad[None, None, :], log_probs)
    total = scores[:, :, None] + log_probs                                        # [batch, k, vocab]
    new_len = lengths + tf.cast(tf.logical_not(finished), tf.int32)
    ranked = total / length_normalizer(tf.maximum(new_len, 1), alpha)[:, :, None]
    _, flat = tf.math.top_k(tf.reshape(ranked, [batch, k * vocab]), k=k)          # [batch, k]
    parent, token = flat // vocab, flat % vocab
    new_scores = tf.gather(tf.reshape(total, [batch, k * vocab]), flat, batch_dims=1)
    new_lengths = tf.gather(new_len, parent, batch_dims=1)
    new_finished = tf.logical_or(tf.gather(finished, parent, batch_dims=1), tf.equal(token, end))
    rows = tf.reshape(parent + tf.range(batch)[:, None] * k, [-1])                # into [batch * k]
    state = tf.nest.map_structure(lambda x: tf.gather(x, rows), state)
    extras = tf.nest.map_structure(lambda x: tf.reshape(tf.gather(x, rows), tf.concat(
        [[batch, k], tf.shape(x)[1:]], 0)), extras)
    return token, parent, state, extras, new_scores, new_finished, new_lengths


def _backtrack(steps, best, tokens_ta, parents_ta, extras_ta):
    """Follow the winning beam's parents back from the last step: tokens ``[batch, steps]``
    and the extras' TensorArrays in time order (``()`` without extras)."""
    out_tokens = tf.TensorArray(tf.int32, size=steps, element_shape=[None])
    out_extras = tf.nest.map_structure(lambda a: tf.TensorArray(a.dtype, size=steps), extras_ta)

    def back(t, beam, out_tokens, out_extras):
        out_tokens = out_tokens.write(t, tf.gather(tokens_ta.read(t), beam, batch_dims=1))
        out_extras = tf.nest.map_structure(
            lambda o, a: o.write(t, tf.gather(a.read(t), beam, batch_dims=1)), out_extras, extras_ta)
        return t - 1, tf.gather(parents_ta.read(t), beam, batch_dims=1), out_tokens, out_extras

    _, _, out_tokens, out_extras = tf.while_loop(
        lambda t, *_: t >= 0, back, (steps - 1, best, out_tokens, out_extras))
    return tf.transpose(out_tokens.stack()), out_extras


# -- built on the same step ---------------------------------------------------------------------
def search(step, init_state, start_token, end_token, max_length, beam_width=1, length_penalty=0.0, pad_token=0):
    """Greedy decoding for ``beam_width`` 1, else beam search: ``tokens``, ``lengths``, ``scores``, ``extras``.

    A Python ``beam_width`` builds one loop; a tensor (a serving input) builds both and
    picks in the graph, widths below 1 counting as 1."""
    args = (step, init_state, start_token, end_token, max_length)
    keys = ("tokens", "lengths", "scores", "extras")
    width = tf.get_static_value(beam_width) if tf.is_tensor(beam_width) else beam_width
    if width is not None:
        out = greedy(*args, pad_token=pad_token) if int(width) <= 1 else beam_search(
            *args, beam_width=int(width), length_penalty=length_penalty, pad_token=pad_token)
        return {k: out[k] for k in keys}
    width = tf.cast(beam_width, tf.int32)
    return tf.cond(width <= 1,
                   lambda: {k: v for k, v in greedy(*args, pad_token=pad_token).items() if k in keys},
                   lambda: {k: v for k, v in beam_search(*args, beam_width=width, length_penalty=length_penalty,
                                                         pad_token=pad_token).items() if k in keys})


def read(step, init_state, tokens, lengths=None, record=False):
    """Feed ``tokens`` int ``[batch, time >= 1]`` through ``step`` one at a time (teacher forcing).

    Row ``r`` reads its first ``lengths[r]`` tokens (all of them without ``lengths``); its
    state and logits then stay as they were. Returns ``state`` (after each row's last
    token) and ``logits`` (float32 ``[batch, vocab]``, the prediction after it; zeros for
    a row that read nothing); with ``record`` also ``all_logits`` ``[batch, time, vocab]``
    and ``all_states``, the state after every token stacked ``[batch, time, ...]``. ``record``
    may be a function of the state giving the part of it to stack (``lambda state: ()`` for
    the logits alone): a transformer's state holds its key/value cache, which stacked over a
    long text would not fit in memory."""
    tokens = tf.cast(tokens, tf.int32)
    batch, steps = tf.shape(tokens)[0], tf.shape(tokens)[1]
    lengths = tf.fill([batch], steps) if lengths is None else tf.cast(lengths, tf.int32)
    logits, _, _ = step(tokens[:, 0], init_state)  # traced once for the logits' width; also a valid start
    logits = tf.zeros_like(tf.cast(logits, tf.float32))
    logits_ta = tf.TensorArray(tf.float32, size=steps) if record else ()
    kept = (record if callable(record) else lambda state: state) if record else (lambda state: ())
    states_ta = tf.nest.map_structure(lambda x: tf.TensorArray(x.dtype, size=steps), kept(init_state))

    def body(t, state, logits, logits_ta, states_ta):
        step_logits, new_state, _ = step(tokens[:, t], state)
        step_logits = tf.cast(step_logits, tf.float32)
        active = t < lengths
        keep = lambda new, old: tf.where(tf.reshape(active, [-1] + [1] * (len(old.shape) - 1)), new, old)  # noqa: E731
        state = tf.nest.map_structure(keep, new_state, state)
        logits = keep(step_logits, logits)
        if record:
            logits_ta = logits_ta.write(t, step_logits)
            states_ta = tf.nest.map_structure(lambda a, x: a.write(t, x), states_ta, kept(state))
        return t + 1, state, logits, logits_ta, states_ta

    _, state, logits, logits_ta, states_ta = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), init_state, logits, logits_ta, states_ta))
    out = {"state": state, "logits": logits}
    if record:
        out["all_logits"] = _stack_time_major(logits_ta)
        out["all_states"] = _stack_time_major(states_ta)
    return out


def banned(step, ids):
    """``step`` whose logits never pick ``ids`` (a list of token ids): they get -1e9 added."""
    ids = tf.constant(list(ids), tf.int32)

    def wrapped(tokens, state):
        logits, new_state, extras = step(tokens, state)
        never = tf.reduce_sum(tf.one_hot(ids, tf.shape(logits)[-1], dtype=logits.dtype), axis=0) * NEG_INF
        return logits + never, new_state, extras
    return wrapped


def capped(step, init_state, caps, end_token):
    """``(step, state)`` under which row ``i`` ends at step ``caps[i]`` at the latest: from that
    step on its only choice is ``end_token``. Each row's limit is its own, so its answer does
    not depend on the rest of the batch; decode for ``max(caps) + 1`` steps. The state carries
    the step count and the limits (beam search tiles and reorders them like any state)."""
    def wrapped(tokens, state):
        logits, inner, extras = step(tokens, state["inner"])
        over = tf.expand_dims(state["t"] >= state["cap"], -1)
        only_end = tf.where(tf.equal(tf.range(tf.shape(logits)[-1]), tf.cast(end_token, tf.int32)),
                            tf.zeros_like(logits), tf.fill(tf.shape(logits), tf.cast(NEG_INF, logits.dtype)))
        return tf.where(over, only_end, logits), {"inner": inner, "cap": state["cap"], "t": state["t"] + 1}, extras
    caps = tf.cast(caps, tf.int32)
    return wrapped, {"inner": init_state, "cap": caps, "t": tf.zeros_like(caps)}


def join_words(vocab, tokens, lengths, separator=" "):
    """Ids ``[batch, steps]`` -> (the first ``lengths`` words of each row joined by ``separator``
    ``[batch]``, the words ``[batch, steps]`` with ``""`` past each row's length)."""
    words = tf.gather(vocab, tokens)
    words = tf.where(tf.sequence_mask(lengths, tf.shape(tokens)[1]), words, "")
    joined = tf.strings.reduce_join(tf.RaggedTensor.from_tensor(words, lengths=lengths), axis=1, separator=separator)
    return joined, words
