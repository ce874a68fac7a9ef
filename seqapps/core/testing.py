"""Random raw inputs for the contract tests (``Task.sample_inputs`` builds on these), and the
checks the contract tests and ``benchmarks/robustness.py`` run over an export: the
batch-independence property and a fuzz of every signature.

The draws lean towards the inputs that break serving code: empty and blank strings,
emoji and other scripts, inputs much longer than the model's maximum, undecodable
bytes and images of unusual sizes.
"""

from __future__ import annotations

import io

import numpy as np

_ODD = ["", " ", "   ", "\t\n", "😀", "🙂🙂 ✈", "très bien, 東京", "\u200b\x00 ¿qué?", "…", "Zyx-42 !", "ÅÆØ ß",
        "a"]
_WORDS = ["the", "a", "film", "cat", "dog", "is", "was", "not", "very", "good", "bad", ",", ".", "!", "?", "I",
          "don't", "it's", "3.5", "1,000", "Paris", "Tom"]


def random_texts(rng, n: int, vocabulary=(), long_words: int = 300) -> list[str]:
    """``n`` strings: words from ``vocabulary`` and common English, odd strings, and now
    and then a long one of about ``long_words`` words."""
    words = list(vocabulary)[:200] + _WORDS + _ODD[4:]
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.2:
            out.append(str(rng.choice(_ODD)))
        elif kind < 0.3:
            out.append(" ".join(rng.choice(words, size=int(rng.integers(long_words // 2, long_words + 1)))))
        else:
            k = int(rng.integers(1, 12))
            sep = " " if rng.random() < 0.8 else "  "
            out.append(sep.join(rng.choice(words, size=k)))
    return out


def random_images(rng, n: int, size: int = 32) -> list[bytes]:
    """``n`` encoded images (PNG or JPEG, mostly ``size`` x ``size``, some another size or
    grayscale), and now and then bytes that are no image at all."""
    from PIL import Image

    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.08:
            out.append(bytes(rng.choice([b"", b"not an image", b"\x89PNG\r\n\x1a\n broken"])))
            continue
        w, h = (size, size) if kind < 0.7 else (int(rng.integers(8, 3 * size)), int(rng.integers(8, 3 * size)))
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype="uint8")
        image = Image.fromarray(pixels)
        if rng.random() < 0.15:
            image = image.convert("L")
        buf = io.BytesIO()
        image.save(buf, "PNG" if rng.random() < 0.5 else "JPEG")
        out.append(buf.getvalue())
    return out


def random_gifs(rng, n: int, size: int = 32) -> list[bytes]:
    """``n`` animated GIFs of 1 to 8 random frames (mostly ``size`` x ``size``), and now and then
    bytes that are no GIF (empty, text, a PNG, a truncated GIF)."""
    from PIL import Image

    out = []
    for _ in range(n):
        frames = int(rng.integers(1, 9))
        w, h = (size, size) if rng.random() < 0.7 else (int(rng.integers(8, 3 * size)), int(rng.integers(8, 3 * size)))
        images = [Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype="uint8")) for _ in range(frames)]
        buf = io.BytesIO()
        images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
        kind = rng.random()
        if kind < 0.06:
            out.append(bytes(rng.choice([b"", b"not a gif", b"GIF89a broken"])))
        elif kind < 0.1:
            out.append(random_images(rng, 1, size)[0])
        elif kind < 0.13:
            out.append(buf.getvalue()[: len(buf.getvalue()) // 2])
        else:
            out.append(buf.getvalue())
    return out


# -- fuzzing an exported signature ------------------------------------------------------------------
_INT_SCALARS = [-(2 ** 31), -1, 0, 1, 2, 7, 64, 65, 10 ** 6, 2 ** 31 - 1]
_FLOATS = [float("nan"), float("inf"), float("-inf"), -1.0, 0.0, 1e-30, 0.5, 1.0, 3.0, 1e30]


def fuzz_signature(predictor, signature: str, max_examples: int = 20, seed: int = 0) -> dict:
    """Call ``signature`` of ``predictor`` with hostile inputs drawn by hypothesis: strings of
    random bytes (invalid UTF-8, control characters, empty, up to a few thousand bytes),
    token grids, NaN/inf/huge floats, extreme integers, batches of 0 to 5. Every call must
    either answer one row per input or raise seqapps' own error (a documented refusal);
    any other exception fails. Returns ``{"tried", "answered", "refused"}``."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from seqapps.core.errors import SeqappsError

    specs = predictor.signatures[signature][1]
    counts = {"tried": 0, "answered": 0, "refused": 0}
    blob = st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=4000),
                     st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
                     st.sampled_from([b"", b"\x00", b"\xff\xfe", b"\xff\xd8\xff", b"GIF89a", b"\x89PNG\r\n\x1a\n"]))

    def value(spec, n):
        dims = [int(d) if d is not None else None for d in spec.shape.as_list()]
        if spec.shape.rank == 0:
            if spec.dtype.is_floating:
                return st.sampled_from(_FLOATS)
            return st.sampled_from(_INT_SCALARS)
        shape = [n] + dims[1:]
        if spec.dtype.name == "string":
            if len(shape) == 1:
                return st.lists(blob, min_size=n, max_size=n).map(lambda v: np.array(v + [b""], dtype=object)[:-1])
            return st.integers(0, 6).flatmap(lambda w: st.lists(st.lists(blob, min_size=w, max_size=w),
                                                                min_size=n, max_size=n).map(
                lambda rows, w=w: np.array(rows, dtype=object).reshape(n, w)))
        full = [s if s is not None else 3 for s in shape]
        return st.lists(st.sampled_from(_FLOATS), min_size=int(np.prod(full)), max_size=int(np.prod(full))).map(
            lambda v: np.asarray(v, dtype=spec.dtype.as_numpy_dtype).reshape(full))

    @hypothesis.seed(seed)
    @settings(max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def prop(data):
        n = data.draw(st.integers(0, 5), label="batch size")
        inputs = {name: data.draw(value(spec, n), label=name) for name, spec in specs.items()}
        counts["tried"] += 1
        try:
            out = predictor.call(signature, **inputs)
        except SeqappsError:
            counts["refused"] += 1
            return
        for key, v in out.items():
            assert np.asarray(v).shape[:1] == (n,), f"{signature}: output {key!r} has shape {np.shape(v)} for {n} inputs"
        counts["answered"] += 1

    prop()
    return counts


# -- batches of examples, and the batch-independence property -------------------------------------
def make_batch(specs: dict, examples: list[dict], pad: int = 0) -> dict:
    """Examples (``{input: value}``) -> the signature's inputs for one call; ``[batch, time]``
    token inputs get ``pad`` extra columns of ``""`` padding."""
    out = {}
    for name, spec in specs.items():
        values = [e[name] for e in examples]
        if spec.shape.rank == 0:
            assert all(v == values[0] for v in values), f"scalar input {name!r} differs between examples"
            out[name] = values[0]
        elif spec.dtype.name == "string" and spec.shape.rank == 2:
            width = max([len(v) for v in values] + [0]) + pad
            rows = np.empty((len(values), width), dtype=object)
            rows[:] = ""
            for i, v in enumerate(values):
                rows[i, :len(v)] = v
            out[name] = rows
        elif spec.dtype.name == "string":
            out[name] = np.array(values + [""], dtype=object)[:-1]  # 1-D even when all values are equal
        else:
            shape = [len(values), *[int(d) for d in spec.shape[1:]]]
            out[name] = np.asarray(values, dtype=spec.dtype.as_numpy_dtype).reshape(shape)
    return out


def empty_batch(specs: dict, example: dict) -> dict:
    batch = make_batch(specs, [example])
    for name, spec in specs.items():
        if spec.shape.rank:
            batch[name] = batch[name][:0]
    return batch


def assert_row_matches(batch_out: dict, row: int, alone_out: dict, what: str) -> None:
    """Row ``row`` of a batch's outputs equals the single-input outputs (float within 1e-5);
    time-like axes may be longer in the batch (its padding), never shorter."""
    assert set(batch_out) == set(alone_out), what
    for key, alone in alone_out.items():
        alone, got = np.asarray(np.asarray(alone)[0]), np.asarray(np.asarray(batch_out[key])[row])
        assert got.ndim == alone.ndim, f"{what}: output {key!r} has shape {got.shape}, alone {alone.shape}"
        assert all(g >= a for g, a in zip(got.shape, alone.shape)), \
            f"{what}: output {key!r} has shape {got.shape} in the batch but {alone.shape} alone"
        got = got[tuple(slice(0, n) for n in alone.shape)]
        if np.issubdtype(alone.dtype, np.floating):
            np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-5, err_msg=f"{what}: output {key!r}")
        else:
            np.testing.assert_array_equal(got, alone, err_msg=f"{what}: output {key!r}")


def batch_independence(task, predictor, meta: dict, signature: str, max_examples: int = 6, seed=None) -> int:
    """The property every signature keeps: each input's outputs are the same alone, in any
    batch (repeats and any order) and at any padding, checked on ``max_examples`` random
    batches of ``task.sample_inputs`` (derandomized unless ``seed`` is given); returns the number
    of rows compared, and raises AssertionError naming the input that differs."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    specs = predictor.signatures[signature][1]
    rows = [0]

    @hypothesis.seed(seed or 0)
    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=seed is None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(seed=st.integers(0, 2 ** 32 - 1), data=st.data())
    def prop(seed, data):
        n = data.draw(st.integers(1, 6), label="batch size")
        examples = task.sample_inputs(np.random.default_rng(seed), n, meta, signature)
        order = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6), label="rows")
        pad = data.draw(st.integers(0, 5), label="extra padding")
        batch = predictor.call(signature, **make_batch(specs, [examples[i] for i in order], pad))
        alone = {i: predictor.call(signature, **make_batch(specs, [examples[i]])) for i in set(order)}
        for row, i in enumerate(order):
            assert_row_matches(batch, row, alone[i], f"{task.name}:{signature} input {examples[i]!r:.200} "
                                                  f"(row {row} of {len(order)}, padding +{pad})")
        rows[0] += len(order)

    prop()
    return rows[0]
