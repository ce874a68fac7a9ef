"""The per-call bounds (seqapps.core.bounds): checked in the graph before the work, on the server
before the graph, when requests are merged, and where images and GIFs are decoded."""

from __future__ import annotations

import argparse
import asyncio
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf

from seqapps.core import bounds
from seqapps.core.task import Endpoint
from seqapps.http import costs
from seqapps.inference import checks


@pytest.fixture
def small(monkeypatch):
    """Small bounds, read when a signature is traced."""
    for name, value in dict(ROWS=4, TEXT_BYTES=20, CALL_TEXT_BYTES=50, PADDED_TEXT_BYTES=60, WORD_CHARS=5,
                            IMAGE_ROWS=2, FRAMES=3, IMAGE_CALL_BYTES=1000).items():
        monkeypatch.setattr(bounds, name, value)


def call(endpoints, name, *args):
    e = endpoints[name]
    return tf.function(e.fn, input_signature=e.input_signature)(*args)


def refusal(endpoints, name, *args) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        call(endpoints, name, *args)
    return checks.reason(info.value)


def echo(task="sentiment"):
    """Endpoints that return what reached them, bounded as an export's are."""
    return checks.bounded_endpoints({
        "serving_default": Endpoint(lambda text: {"text": text}, [tf.TensorSpec([None], tf.string, name="text")]),
        "tokens": Endpoint(lambda tokens: {"tokens": tokens}, [tf.TensorSpec([None, None], tf.string, name="tokens")]),
        "image": Endpoint(lambda image: {"n": tf.shape(image)[0]}, [tf.TensorSpec([None], tf.string, name="image")]),
        "frames": Endpoint(lambda frames: {"n": tf.size(frames)}, [tf.TensorSpec([None, None], tf.string, name="frames")]),
        "window": Endpoint(lambda window: {"n": tf.shape(window)[0]}, [tf.TensorSpec([None, 2], tf.float32, name="window")]),
    }, task)


def test_text_within_the_bounds_passes_and_words_are_cut(small):
    out = call(echo(), "serving_default", tf.constant(["abcdefgh ij", "klm"]))["text"].numpy().tolist()
    assert out == [b"abcde ij", b"klm"]  # word-level task: words read to their 5th character
    tokens = call(echo(), "tokens", tf.constant([["abcdefgh", "ij"]]))["tokens"].numpy().tolist()
    assert tokens == [[b"abcde", b"ij"]]
    kept = call(echo("char_lm"), "serving_default", tf.constant(["abcdefgh ij"]))["text"].numpy().tolist()
    assert kept == [b"abcdefgh ij"]  # a character model reads every character


@pytest.mark.parametrize("texts, expected", [
    (["x" * 21], "a text item is over 20 bytes"),
    (["x" * 20] * 3, "the text items together are over 50 bytes"),
    (["x" * 20, "x", "x", "x"], "rows x the longest text item is over 60 bytes"),
    (["x"] * 5, "text has more than 4 rows"),
])
def test_text_over_a_bound_is_refused_with_its_line(small, texts, expected):
    assert refusal(echo(), "serving_default", tf.constant(texts)).startswith(f"invalid input: {expected}")


def test_images_frames_and_rows_over_their_bounds_are_refused(small):
    assert "image has more than 2 rows" in refusal(echo(), "image", tf.constant(["a", "b", "c"]))
    assert "image items together are over 1000 bytes" in refusal(echo(), "image", tf.constant(["a" * 600] * 2))
    assert "window has more than 4 rows" in refusal(echo(), "window", tf.zeros([5, 2]))
    assert int(call(echo(), "frames", tf.constant([["a", "b", "c"]]))["n"]) == 3


# -- the server's checks and merging ----------------------------------------------------------------
def strings(*values):
    a = np.empty(len(values), dtype=object)
    a[:] = [v.encode() for v in values]
    return a


@pytest.mark.parametrize("name", ["words", "a", "c"])
def test_every_string_input_not_an_image_is_text(small, name):
    """word_vectors' inputs (``words``, ``a``, ``b``, ``c``) are held to the text bounds in the graph and
    on the server alike, whatever their names."""
    endpoints = checks.bounded_endpoints({"sig": Endpoint(lambda x: {"x": x}, [tf.TensorSpec([None], tf.string, name=name)])},
                                         "word_vectors")
    assert call(endpoints, "sig", tf.constant(["abcdefgh"]))["x"].numpy().tolist() == [b"abcde"]
    assert refusal(endpoints, "sig", tf.constant(["x" * 21])).startswith("invalid input: a %s item is over 20 bytes" % name)
    limits = bounds.of({}, {"text_bytes": 20})
    assert costs.over(costs.cost_of({name: strings("x" * 21)}), limits).startswith("a text item is 21 bytes")
    assert costs.over(costs.cost_of({name: strings("x" * 20)}), limits) is None


def test_server_cost_and_refusal_match_the_graphs_bounds():
    limits = bounds.of({"bounds": {"text_bytes": 20}}, {"rows": 4, "call_text_bytes": 50, "padded_text_bytes": 60})
    assert limits["text_bytes"] == 20 and limits["rows"] == 4 and limits["image_rows"] == bounds.IMAGE_ROWS
    assert bounds.of({}, {"rows": 10 ** 9})["rows"] == bounds.ROWS  # a flag lowers a bound, never raises it
    cost = costs.cost_of({"text": strings("abc", "hello world"), "beam_width": np.array(2)})
    assert (cost.rows, cost.text_bytes, cost.longest_text) == (2, 14, 11)
    assert costs.over(cost, limits) is None
    for texts, expected in ((["x" * 21], "a text item is 21 bytes"), (["x"] * 5, "the request has 5 rows"),
                            (["x" * 20] * 3, "the text items together are 60 bytes"),
                            (["x" * 20, "x", "x", "x"], "rows x the longest text item is 4 x 20 bytes")):
        assert costs.over(costs.cost_of({"text": strings(*texts)}), limits).startswith(expected)
    frames = np.full((2, 200), b"x", dtype=object)
    assert costs.cost_of({"frames": frames}).frames == 400


def test_bound_flag_names_and_values():
    assert costs.parse_bound("text-bytes=2_000") == ("text_bytes", 2000)
    for bad in ("nope=3", "text_bytes", "text_bytes=0", "rows=x", "decode_values=10"):  # slices are not lowered
        with pytest.raises(argparse.ArgumentTypeError):
            costs.parse_bound(bad)


def test_merged_batches_stay_within_the_bounds():
    """Eight requests of 30 bytes, gathered up to 8 rows, merge only in twos: 3 x 30 is over 80 bytes."""
    from seqapps.http.batching import Batching

    sizes, lock = [], threading.Lock()

    def sig(arrays):
        with lock:
            sizes.append(len(arrays["text"]))
        return {"n": np.array([len(t) for t in arrays["text"]])}

    sig.name, sig.batchable = "serving_default", True
    model = type("Model", (), {"name": "m", "batchers": {}})()
    limits = bounds.of({}, {"call_text_bytes": 80})

    async def main():
        with ThreadPoolExecutor(1) as pool:
            batching = Batching(pool, True, max_batch_size=8, timeout_ms=200, concurrent=1)
            batching.arriving = 1
            arrays = [{"text": strings("y" * 30)} for _ in range(8)]
            calls = asyncio.gather(*(batching.call(model, sig, a, 1, costs.cost_of(a), limits) for a in arrays))
            await asyncio.sleep(0.05)
            batching.arriving = 0
            return await calls

    answers = asyncio.run(main())
    assert [a["n"].tolist() for a in answers] == [[30]] * 8
    assert max(sizes) == 2 and sum(sizes) == 8, sizes


# -- images and GIFs: the size read before decoding ---------------------------------------------------
def gif(frames: int, side: int, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 255, (side, side + 3, 3)).astype(np.uint8)) for _ in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=frames > 1, append_images=images[1:], duration=40)
    return buf.getvalue()


@pytest.mark.parametrize("frames", [1, 3, 6])
def test_gif_frames_are_found_without_decoding_and_cut_where_asked(frames):
    from seqapps.encoders.images import first_frames, gif_frames

    data = gif(frames, 300, seed=frames)  # 300 x 303 random pixels: many full 255-byte blocks per frame
    whole = tf.io.decode_gif(data).numpy()
    for limit in (1, 2, 5):
        count, _ = gif_frames(tf.constant(data), limit)
        cut, kept = first_frames(tf.constant(data), limit)
        decoded = tf.io.decode_gif(cut).numpy()
        assert int(count) == int(kept) == min(frames, limit) == len(decoded)
        assert (decoded == whole[:len(decoded)]).all()
    truncated = data[:len(data) * 2 // 3]  # a GIF cut short holds its whole frames
    count, _ = gif_frames(tf.constant(truncated), 10)
    assert int(count) < frames or frames == 1


def test_images_larger_than_the_bound_are_invalid_before_decoding(monkeypatch):
    from seqapps.encoders import images

    monkeypatch.setattr(images, "IMAGE_PIXELS", 100 * 100)
    small, large = gif(2, 60), gif(2, 120)
    pixels, valid = images.decode_batch(tf.constant([small, large, b"not an image"]), 8)
    assert valid.numpy().tolist() == [True, False, False]
    assert pixels.shape == (3, 8, 8, 3)


def test_shrink_subsamples_only_sides_over_the_bound():
    from seqapps.encoders.images import shrink

    image = tf.zeros([5000, 300, 3], tf.uint8)
    assert shrink(image, 2048).shape == (1667, 300, 3)
    assert shrink(tf.zeros([2, 100, 4100, 3], tf.uint8), 2048).shape == (2, 100, 1367, 3)
    same = tf.reshape(tf.range(12 * 12 * 3) % 256, [12, 12, 3])
    assert (shrink(tf.cast(same, tf.uint8), 12).numpy() == same.numpy()).all()


def test_merged_calls_stay_within_the_tag_tokens_bound():
    """A request's tokens are counted in its graph; merged requests are held to the most tokens their rows can
    hold (a token is at least one byte, a token row's width is its tokens), so a merge is never refused."""
    limits = bounds.of({"task": "pos"}, {"tag_tokens": 20})
    one, other = costs.cost_of({"text": strings("abcdefghij")}), costs.cost_of({"text": strings("abc")})
    assert one.most_tokens == 10 and costs.over(one, limits) is None and costs.over(one + one, limits, merged=True) is None
    assert costs.over(one + one + other, limits, merged=True).startswith("rows x the most tokens of a row could be over 20")
    assert costs.over(one + one + other, bounds.of({"task": "sentiment"}), merged=True) is None
    rows = costs.cost_of({"tokens": np.full((2, 7), b"x", dtype=object)})
    assert rows.most_tokens == 7 and costs.over(rows + rows, limits, merged=True) is not None


def test_length_batches_keep_rows_times_the_longest_within_the_budget():
    from seqapps.inference.predictor import length_batches

    items = ["a" * n for n in (1, 9, 3, 3, 30, 2)]
    chunks = length_batches(range(len(items)), items, batch_size=3, padded=9)
    assert sorted(i for c in chunks for i in c) == list(range(6))
    assert all(len(c) == 1 or len(c) * max(len(items[i]) for i in c) <= 9 for c in chunks)
    assert [4] in chunks and all(len(c) <= 3 for c in chunks)
    assert length_batches(range(6), items, batch_size=4) == [[0, 5, 2, 3], [1, 4]]
