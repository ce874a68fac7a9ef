"""The serving functions of a character language model: text in, text, scores or states out.

The export steps the recurrent *cells* with their carried state, one character at a
time, inside the graph, starting from the state reached after a fixed warm-up passage
of the training text (``prep.warmup``). ``prep`` gives ``lookup()`` (characters -> ids,
0 unknown), ``encode`` and ``chars``; the model ``initial_state(batch)`` and ``step``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seqapps.inference import decoding
from seqapps.inference import checks
from seqapps.core import bounds
from seqapps.core.task import Endpoint
from tasks.char_lm.predicting import MAX_GENERATE



def warm_start(model, ids) -> tuple:
    """(the state after all but the last id, read from the zero state, as numpy constants; the last id).
    Every serving function starts there and feeds that last warm-up character first."""
    ids = np.asarray(ids, dtype=np.int32)[None, :]
    state = model.initial_state(1)
    if ids.shape[1] > 1:  # traced once, not stepped eagerly (256 eager transformer steps took 16 s)
        state = tf.function(lambda s, x: decoding.read(model.step, s, x)["state"])(state, tf.constant(ids[:, :-1]))
    return tf.nest.map_structure(lambda t: np.asarray(t), state), int(ids[0, -1])


def reader(model, prep):
    """``read(text, skip_unknown)`` -> (ids ``[batch, 1 + time]``: the last warm-up character, then
    each text's, 0-padded and at least one wide; the texts' lengths; the warm state for the batch)."""
    lookup = prep.lookup()
    warm, warm_last = warm_start(model, prep.encode(prep.warmup))

    def read(text, skip_unknown=False, last=None):
        ids = tf.cast(lookup(tf.strings.unicode_split(text, "UTF-8", errors="replace")), tf.int32)
        if skip_unknown:  # characters outside the vocabulary are skipped
            ids = tf.ragged.boolean_mask(ids, ids > 0)
        if last is not None:  # only the last ``last`` characters
            ids = ids[:, -last:]
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        dense = ids.to_tensor(default_value=0)
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(dense)[1])]])
        batch = tf.shape(dense)[0]
        state = tf.nest.map_structure(lambda t: tf.repeat(tf.constant(t), batch, axis=0), warm)
        return tf.concat([tf.fill([batch, 1], warm_last), dense], axis=1), lengths, state
    return read


def lm_endpoints(model, prep) -> dict[str, Endpoint]:
    """``serving_default`` (generate: prime text in, sampled continuation out), ``score``
    (log-likelihoods) and ``states`` (every layer's state after each character) over ``model``."""
    read, id_to_char = reader(model, prep), tf.constant([""] + prep.chars)
    window = model.settings.get("context")
    step = decoding.banned(model.step, [0])  # never sample the unknown id

    def generate(prime, length, temperature, top_k, top_p, seed):
        temperature = checks.in_range(temperature, "temperature", low=0)
        top_k = checks.in_range(top_k, "top_k", low=0, what="an integer")
        top_p = checks.in_range(top_p, "top_p", low=0, high=1, low_open=True)
        # an empty prime continues straight after the warm-up passage (a paragraph break); a model with
        # a context window (the transformer's) reads only the prime's last ``context`` characters
        ids, lengths, state = read(prime, skip_unknown=True, last=min(window or bounds.PRIME_CHARS, bounds.PRIME_CHARS))
        state = decoding.read(model.step, state, ids, lengths)["state"]  # all but each row's last character
        n = tf.clip_by_value(length, 0, MAX_GENERATE)  # one spare step keeps the shapes defined when n is 0
        rows = tf.cast(tf.shape(ids)[0], tf.int64)
        n = checks.require(n, rows * tf.cast(n, tf.int64) <= bounds.GENERATE_CHARS,
                           ["rows x length is ", rows * tf.cast(n, tf.int64), f"; the bound is {bounds.GENERATE_CHARS}"
                            " characters generated in one call: ask for fewer rows or fewer characters"])
        out = decoding.sample(step, state, tf.gather(ids, lengths, batch_dims=1), -1, tf.maximum(n, 1),
                              temperature, top_k, top_p, seed)
        text = tf.strings.reduce_join(tf.gather(id_to_char, out["tokens"][:, :n]), axis=1)
        return {"text": text, "length": tf.fill(tf.shape(prime), n)}

    def within(ids, per_char, bound: int, what: str):
        """``ids`` once rows x characters x ``per_char`` is within ``bound``: checked before the reading."""
        shape = tf.shape(ids, out_type=tf.int64)
        need = shape[0] * shape[1] * tf.cast(per_char, tf.int64)
        most = bound // tf.maximum(tf.cast(per_char, tf.int64), 1) - 1
        return checks.require(ids, need <= bound, [
            f"{what} keeps ", tf.cast(per_char, tf.int64), " numbers per character of the longest text, for each row: "
            "rows x (characters + 1) x that is ", need, f"; the bound is {bound} (one text of at most ", most,
            " characters)"])

    def score(text):
        ids, lengths, state = read(text)
        ids = within(ids, len(prep.chars) + 1, bounds.SCORE_VALUES, "score")
        # the logits alone: a transformer's state is its key/value cache, too big to keep per character
        logits = decoding.read(model.step, state, ids, lengths + 1, record=lambda state: ())["all_logits"]
        logits, targets = logits[:, 1:-1], ids[:, 2:]  # after characters 0..n-2: predicts 1..n-1
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        mask = tf.sequence_mask(lengths - 1, tf.shape(targets)[1], dtype=tf.float32)
        return {"log_likelihood": -tf.reduce_sum(nll * mask, axis=1), "count": tf.maximum(lengths - 1, 0)}

    def seen(extras, batch):
        """What ``states`` records besides the state: the gates, and (transformer) each head's attention
        by distance back; ``[batch, layers, 0, 0]`` for what the model has not."""
        none = tf.zeros([batch, model.settings["layers"], 0, 0])
        return {"gates": tf.cast(extras["gates"], tf.float32),
                "attention": tf.cast(extras["attention"], tf.float32) if "attention" in extras else none}

    def recording(tokens, carried):  # the step, with this character's gates and attention carried to be recorded
        logits, state, extras = model.step(tokens, carried["state"], record=True)
        return logits, {"state": state, **seen(extras, tf.shape(tokens)[0])}, {}

    def states(text):
        ids, lengths, state = read(text)
        first = seen(model.step(ids[:, 0], state, record=True)[2], tf.shape(ids)[0])  # for the shapes
        start = {"state": state, **tf.nest.map_structure(tf.zeros_like, first)}
        kept = lambda c: {"state": {k: v for k, v in c["state"].items() if k in ("h", "c")},  # noqa: E731
                          "gates": c["gates"], "attention": c["attention"]}
        rows = tf.maximum(tf.shape(ids, out_type=tf.int64)[0], 1)
        per_char = len(prep.chars) + 1 + sum(tf.size(t, tf.int64) for t in tf.nest.flatten(kept(start))) // rows
        ids = within(ids, per_char, bounds.STATES_VALUES, "states")
        recorded = decoding.read(recording, start, ids, lengths + 1, record=kept)["all_states"]
        hidden = recorded["state"]["h"][:, 1:]
        return {"hidden": hidden, "cell": recorded["state"]["c"][:, 1:] if "c" in recorded["state"] else hidden,
                "gates": recorded["gates"][:, 1:], "attention": recorded["attention"][:, 1:], "length": lengths}

    scalar = lambda dtype, name: tf.TensorSpec([], dtype, name=name)  # noqa: E731
    return {
        "serving_default": Endpoint(generate, [
            tf.TensorSpec([None], tf.string, name="prime"), scalar(tf.int32, "length"),
            scalar(tf.float32, "temperature"), scalar(tf.int32, "top_k"), scalar(tf.float32, "top_p"),
            scalar(tf.int64, "seed")],
            f"prime text [batch] -> text: the generated continuation [batch], length [batch]; "
            f"length is clipped to 0..{MAX_GENERATE}; temperature (finite, >= 0; 0 is greedy), top_k (>= 0; 0 is off) "
            "and top_p (in (0, 1]; 1 is off) outside their ranges fail the call with 'invalid input: ...'; "
            "the same seed (and batch) gives the same text; characters outside the vocabulary are skipped; "
            f"only the prime's last {min(window or bounds.PRIME_CHARS, bounds.PRIME_CHARS)} characters are read; "
            "reading starts after the warm-up passage in metadata.json, so an empty prime starts a new paragraph"),
        "score": Endpoint(score, [tf.TensorSpec([None], tf.string, name="text")],
                          "text [batch] -> log_likelihood (nats, sum over characters 2..n) and count [batch]"),
        "states": Endpoint(states, [tf.TensorSpec([None], tf.string, name="text")],
                           "text [batch] -> hidden and cell [batch, time, layers, units] after each character "
                           "(read after the warm-up passage; cell repeats hidden for GRU/SimpleRNN), gates "
                           "[batch, time, layers, gates, units] at each character (LSTM input, forget, output, "
                           "candidate; GRU update, reset; none for SimpleRNN and the transformer), attention "
                           "[batch, time, layers, heads, context]: the transformer's weights on the characters "
                           "0..context-1 back from each (none for recurrent models), length [batch]"),
    }
