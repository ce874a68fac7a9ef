"""Decoding loops: greedy, beam search and sampling on hand-built step functions."""

import numpy as np
import pytest
import tensorflow as tf

from seqapps.inference import decoding

PAD, START, END, A, B = 0, 1, 2, 3, 4


def table_step(table):
    """A step whose next-token distribution depends only on the token fed in.

    Its extras record the token fed, so a returned sequence's extras must be the
    sequence shifted right by one (start token first)."""
    logits_table = tf.math.log(tf.constant(table, tf.float32) + 1e-12)

    def step(tokens, state):
        return tf.gather(logits_table, tokens), {"t": state["t"] + 1}, {"fed": tokens}
    return step


# from START: A 0.6, B 0.4; after A: END/A/B about a third each; after B: END 0.95
TOY = np.zeros((5, 5), np.float32)
TOY[START] = [0, 0, 0, 0.6, 0.4]
TOY[A] = [0, 0, 0.34, 0.33, 0.33]
TOY[B] = [0, 0, 0.95, 0.025, 0.025]
TOY[END] = [0, 0, 1.0, 0, 0]
TOY[PAD] = [0, 0, 1.0, 0, 0]


def toy_state(batch):
    return {"t": tf.zeros([batch], tf.int32)}


def test_beam_search_beats_greedy_on_a_toy_distribution():
    step = table_step(TOY)
    g = decoding.greedy(step, toy_state(2), START, END, 10)
    b = decoding.beam_search(step, toy_state(2), START, END, 10, beam_width=2)
    assert g["tokens"].numpy()[0].tolist()[:1] == [A] and int(g["lengths"][0]) == 1  # A, then END (0.34)
    assert b["tokens"].numpy()[0].tolist() == [B, PAD] and int(b["lengths"][0]) == 1  # B, END (padded)
    np.testing.assert_allclose(g["scores"].numpy(), np.log(0.6 * 0.34), rtol=1e-5)
    np.testing.assert_allclose(b["scores"].numpy(), np.log(0.4 * 0.95), rtol=1e-5)
    assert (b["scores"].numpy() > g["scores"].numpy()).all()
    # extras follow the winning beam: the token fed at each step
    assert b["extras"]["fed"].numpy()[0].tolist()[:2] == [START, B]


class TinyRNN:
    """A random recurrent step: the state depends on the whole history."""

    def __init__(self, vocab=7, units=8, seed=0):
        rng = np.random.default_rng(seed)
        self.emb = tf.constant(rng.normal(size=(vocab, units)), tf.float32)
        self.u = tf.constant(rng.normal(size=(units, units)) * 0.5, tf.float32)
        self.out = tf.constant(rng.normal(size=(units, vocab)) * 2.0, tf.float32)
        self.vocab, self.units, self.end_bias = vocab, units, 2.0

    def step(self, tokens, state):
        h = tf.tanh(tf.gather(self.emb, tokens) + state["h"] @ self.u)
        logits = h @ self.out
        logits = logits + tf.one_hot(PAD, self.vocab) * -1e4 + tf.one_hot(END, self.vocab) * self.end_bias
        return logits, {"h": h, "const": state["const"]}, {"h": h}

    def init(self, batch, seed=1):
        h = tf.constant(np.random.default_rng(seed).normal(size=(batch, self.units)), tf.float32)
        return {"h": h, "const": tf.zeros([batch, 3])}


def test_beam_width_one_equals_greedy():
    rnn = TinyRNN()
    init = rnn.init(16)
    g = decoding.greedy(rnn.step, init, START, END, 12)
    b = decoding.beam_search(rnn.step, init, START, END, 12, beam_width=1, length_penalty=0.6)
    np.testing.assert_array_equal(g["tokens"].numpy(), b["tokens"].numpy())
    np.testing.assert_array_equal(g["lengths"].numpy(), b["lengths"].numpy())
    np.testing.assert_allclose(g["scores"].numpy(), b["scores"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g["extras"]["h"].numpy(), b["extras"]["h"].numpy(), rtol=1e-5, atol=1e-6)
    lengths = g["lengths"].numpy()
    assert (lengths > 0).any() and (lengths < 12).any()  # some rows end early, some run


def test_wider_beams_never_score_worse_and_agree_with_the_scores():
    rnn = TinyRNN(seed=3)
    init = rnn.init(32, seed=4)
    g = decoding.greedy(rnn.step, init, START, END, 8)
    b = decoding.beam_search(rnn.step, init, START, END, 8, beam_width=5)
    assert (b["scores"].numpy() >= g["scores"].numpy() - 1e-4).all()
    # re-score each returned sequence (plus END where it ended) with teacher forcing
    for out in (g, b):
        tokens, lengths = out["tokens"].numpy(), out["lengths"].numpy()
        for row in range(32):
            if lengths[row] == tokens.shape[1]:
                continue  # ran to max_length without END
            seq = tokens[row, :lengths[row]].tolist() + [END]
            state = {k: v[row:row + 1] for k, v in init.items()}
            fed, total = START, 0.0
            for tok in seq:
                logits, state, _ = rnn.step(tf.constant([fed]), state)
                total += float(tf.nn.log_softmax(logits)[0, tok])
                fed = tok
            np.testing.assert_allclose(out["scores"].numpy()[row], total, rtol=1e-4, atol=1e-4)


def test_length_penalty_prefers_longer_hypotheses():
    # from START: END 0.5 or A 0.5; after A: END 0.9. Without penalty END (0.5) wins
    # over A END (0.45); with a strong penalty the longer one wins.
    table = np.zeros((5, 5), np.float32)
    table[START] = [0, 0, 0.5, 0.5, 0]
    table[A] = [0, 0, 0.9, 0.1, 0]
    table[END] = table[PAD] = [0, 0, 1.0, 0, 0]
    step = table_step(table)
    plain = decoding.beam_search(step, toy_state(1), START, END, 5, beam_width=2, length_penalty=0.0)
    long = decoding.beam_search(step, toy_state(1), START, END, 5, beam_width=2, length_penalty=2.0)
    assert int(plain["lengths"][0]) == 0
    assert long["tokens"].numpy()[0].tolist()[:1] == [A] and int(long["lengths"][0]) == 1


@pytest.mark.slow
def test_loops_run_inside_a_graph_with_dynamic_batch_and_max_length():
    rnn = TinyRNN()

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32), tf.TensorSpec([], tf.int32)])
    def run(h, max_length):
        init = {"h": h, "const": tf.zeros([tf.shape(h)[0], 3])}
        g = decoding.greedy(rnn.step, init, START, END, max_length)
        b = decoding.beam_search(rnn.step, init, START, END, max_length, beam_width=3, length_penalty=0.6)
        s = decoding.sample(rnn.step, init, START, END, max_length, temperature=0.0)
        return g["tokens"], b["tokens"], s["tokens"], b["lengths"]

    h = rnn.init(5)["h"]
    g, b, s, lengths = run(h, tf.constant(6))
    assert g.shape[0] == 5 and b.shape[0] == 5 and g.shape[1] <= 6 and b.shape[1] <= 6
    np.testing.assert_array_equal(g.numpy(), s.numpy())  # temperature 0 is greedy
    assert (lengths.numpy() <= 6).all()
    g0, b0, _, _ = run(tf.zeros([0, 8]), tf.constant(6))  # a batch of zero rows
    assert g0.shape[0] == 0 and b0.shape[0] == 0


def test_beam_width_may_be_a_serving_input():
    rnn = TinyRNN(seed=3)
    init = rnn.init(6, seed=4)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def run(width):
        out = decoding.beam_search(rnn.step, init, START, END, 8, beam_width=width, length_penalty=0.6)
        decoding.greedy(rnn.step, init, START, END, 8)  # traces: a static batch inside a graph
        return out["tokens"], out["scores"]

    for width in (1, 2, 4):
        tokens, scores = run(tf.constant(width))
        fixed = decoding.beam_search(rnn.step, init, START, END, 8, beam_width=width, length_penalty=0.6)
        np.testing.assert_array_equal(tokens.numpy(), fixed["tokens"].numpy())
        np.testing.assert_allclose(scores.numpy(), fixed["scores"].numpy(), rtol=1e-5, atol=1e-5)


def test_sample_logits_filters_and_seeds():
    logits = tf.constant([[0.0, 1.0, 3.0, 2.0], [5.0, 0.0, 0.0, 4.9]])
    np.testing.assert_array_equal(decoding.sample_logits(logits, temperature=0.0).numpy(), [2, 0])
    for seed in range(5):
        np.testing.assert_array_equal(decoding.sample_logits(logits, 1.0, top_k=1, seed=seed).numpy(), [2, 0])
        np.testing.assert_array_equal(decoding.sample_logits(logits, 1.0, top_p=1e-3, seed=seed).numpy(), [2, 0])
    wide = tf.zeros([1, 50])
    a = decoding.sample_logits(wide, 1.0, seed=11, step=3)
    assert int(a[0]) == int(decoding.sample_logits(wide, 1.0, seed=11, step=3)[0])  # same seed, same draw
    draws = {int(decoding.sample_logits(wide, 1.0, seed=11, step=i)[0]) for i in range(20)}
    assert len(draws) > 5
    # top-k 2 only ever draws from the two largest
    picks = {int(decoding.sample_logits(logits[:1], 5.0, top_k=2, seed=1, step=i)[0]) for i in range(40)}
    assert picks <= {2, 3} and len(picks) == 2
    # top-p keeps the smallest set reaching p: for [0.5, 0.3, 0.2], p=0.6 keeps two tokens
    probs = tf.math.log(tf.constant([[0.5, 0.3, 0.2]]))
    picks = {int(decoding.sample_logits(probs, 1.0, top_p=0.6, seed=2, step=i)[0]) for i in range(60)}
    assert picks == {0, 1}


def test_beam_search_rejects_a_bad_width():
    with pytest.raises(ValueError):
        decoding.beam_search(table_step(TOY), toy_state(1), START, END, 5, beam_width=0)


def test_search_picks_greedy_or_beam_also_from_a_serving_input():
    rnn = TinyRNN(seed=3)
    init = rnn.init(6, seed=4)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def run(width):
        out = decoding.search(rnn.step, init, START, END, 8, beam_width=width, length_penalty=0.6)
        return out["tokens"], out["scores"], out["extras"]["h"]

    greedy = decoding.greedy(rnn.step, init, START, END, 8)
    beam = decoding.beam_search(rnn.step, init, START, END, 8, beam_width=3, length_penalty=0.6)
    for width, expected in ((1, greedy), (3, beam)):
        tokens, scores, h = run(tf.constant(width))
        np.testing.assert_array_equal(tokens.numpy(), expected["tokens"].numpy())
        np.testing.assert_allclose(scores.numpy(), expected["scores"].numpy(), rtol=1e-5, atol=1e-5)
        assert h.shape[:2] == tokens.shape
        fixed = decoding.search(rnn.step, init, START, END, 8, beam_width=width, length_penalty=0.6)
        np.testing.assert_array_equal(fixed["tokens"].numpy(), expected["tokens"].numpy())


def test_read_stops_each_row_at_its_length_and_records_every_step():
    rnn = TinyRNN()
    init = rnn.init(3)
    tokens = np.array([[3, 4, 5, 6], [4, 4, 0, 0], [5, 0, 0, 0]], np.int32)
    out = decoding.read(rnn.step, init, tokens, lengths=[4, 2, 0], record=True)
    for row, n in enumerate([4, 2, 0]):
        state = {k: v[row:row + 1] for k, v in init.items()}
        for t in range(n):
            logits, state, _ = rnn.step(tf.constant(tokens[row:row + 1, t]), state)
            np.testing.assert_allclose(out["all_logits"].numpy()[row, t], logits.numpy()[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["state"]["h"].numpy()[row], state["h"].numpy()[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["all_states"]["h"].numpy()[row, -1], state["h"].numpy()[0], atol=1e-6)
    assert not out["logits"].numpy()[2].any()  # a row that read nothing has no prediction yet
    # a record function keeps only part of the state per step (the logits stay the same)
    part = decoding.read(rnn.step, init, tokens, lengths=[4, 2, 0], record=lambda state: ())
    assert part["all_states"] == () and part["all_logits"].shape == out["all_logits"].shape
    np.testing.assert_allclose(part["all_logits"].numpy(), out["all_logits"].numpy(), atol=1e-6)
    h_only = decoding.read(rnn.step, init, tokens, lengths=[4, 2, 0], record=lambda state: {"h": state["h"]})
    assert set(h_only["all_states"]) == {"h"}
    np.testing.assert_allclose(h_only["all_states"]["h"].numpy(), out["all_states"]["h"].numpy(), atol=1e-6)


def test_banned_ids_are_never_chosen_and_rows_may_start_differently():
    rnn = TinyRNN(seed=5)
    init = rnn.init(8, seed=6)
    plain = decoding.greedy(rnn.step, init, START, END, 10)
    favourite = int(np.bincount(plain["tokens"].numpy().ravel(), minlength=rnn.vocab)[3:].argmax()) + 3
    banned = decoding.greedy(decoding.banned(rnn.step, [favourite]), init, START, END, 10)
    assert favourite in plain["tokens"].numpy() and favourite not in banned["tokens"].numpy()
    starts = tf.constant([START, A, B, START, A, B, START, A])
    per_row = decoding.sample(rnn.step, init, starts, -1, 5, temperature=0.0)
    assert per_row["tokens"].shape == (8, 5) and (per_row["lengths"].numpy() == 5).all()  # no end token: 5 steps
    for row in range(8):
        one = decoding.greedy(rnn.step, {k: v[row:row + 1] for k, v in init.items()}, int(starts[row]), -1, 5)
        np.testing.assert_array_equal(one["tokens"].numpy()[0], per_row["tokens"].numpy()[row])


def test_join_words_keeps_each_rows_words():
    vocab = tf.constant(["", "[UNK]", "the", "cat", "sat"])
    joined, words = decoding.join_words(vocab, tf.constant([[2, 3, 4], [3, 0, 0], [0, 0, 0]]), tf.constant([3, 1, 0]))
    assert [s.decode() for s in joined.numpy()] == ["the cat sat", "cat", ""]
    assert words.numpy()[1].tolist() == [b"cat", b"", b""]
