"""Random raw inputs for the contract tests (``Task.sample_inputs`` builds on these).

The draws lean towards the inputs that break serving code: empty and blank strings,
emoji and other scripts, inputs much longer than the model's maximum, undecodable
bytes and images of unusual sizes.
"""

from __future__ import annotations

import io

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
