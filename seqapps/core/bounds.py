"""What one call of an exported signature may cost: the bounds, in one place.

Every signature checks its inputs against these bounds in its graph, before the work that
grows with them (decoding, tokenizing, stepping), so TF Serving and ``seqapps serve`` alike
refuse an oversized call with ``InvalidArgumentError: invalid input: ...`` instead of running
it; ``seqapps serve`` checks the same bounds on a request before it reaches the graph (a 400
with one ``invalid input: ...`` line) and merges concurrent requests only while the merged call
stays within them. The values are a few megabytes of input each, chosen so that a call at the
bounds raises the server's memory by well under 256 MB (``benchmarks/serving_memory.py``
measures it for every signature of every task); docs/serving.md lists them per signature.

Which bound applies to a string input depends on its name: ``image``, ``frames`` and ``video``
are encoded images, every other string input (``text``, ``prime``, ``tokens``, word_vectors'
``words``, ``a``, ``b``, ``c``) is text. Numeric inputs (forecasting's
``window``) are bounded by :data:`ROWS`. Exports keep the bounds they were written with (they
are constants in the graph); ``seqapps serve`` reads them from ``metadata.json`` (``bounds``).
"""

from __future__ import annotations

# -- text: sentiment, pos, translation, char_lm -----------------------------------------------------
ROWS = 1024                  # rows (texts, token lists, windows) in one call
TEXT_BYTES = 100_000         # one text, or one row of tokens, in UTF-8 bytes
CALL_TEXT_BYTES = 1_000_000  # every text of one call together
PADDED_TEXT_BYTES = 4_000_000  # rows x the longest text of the call (the size of its [batch, time] tensors)
WORD_CHARS = 100             # word-level tasks (sentiment, pos, translation) read a word's first 100 characters
WORD_TASKS = ("sentiment", "pos", "translation", "word_vectors")

# -- pos: every token is tagged (no cut at a maximum length) -------------------------------------------
TAG_TOKENS = 16_384          # rows x the longest row's tokens in one call: the EWT recipe's tagger (character
#                              CNN, BiLSTM, CRF) holds about 7.8 KB per token position (128 MB at the bound)

# -- rows answered at once (a call of more rows runs in slices, one after the other; nothing is refused) -----
SUBWORD_VALUES = 16_000_000  # sentiment with n-grams: rows x max_length x 40 n-grams x the n-gram table's width
#                              (its vectors are gathered before their mean: 64 MB of floats, twice)
DECODE_VALUES = 32_000_000   # translation: rows x beam x 16 x (target vocabulary + max_length x the widest layer)
#                              (tasks.translation.serving.hypothesis_values: 1.2 MB per hypothesis measured)

# -- char_lm: outputs that grow with the input -------------------------------------------------------
STATES_VALUES = 1_000_000    # states: rows x characters x numbers recorded per character (hidden, cell, gates, attention)
SCORE_VALUES = 1_000_000     # score: rows x characters x vocabulary (the logits read)
PRIME_CHARS = 4_000          # generate reads a prime's last 4,000 characters (a transformer: its context, if shorter)
GENERATE_CHARS = 200_000     # generate: rows x length (characters generated in one call)

# -- images: captioning, video_frames --------------------------------------------------------------
IMAGE_ROWS = 16              # images (captioning) or GIFs (video_frames' gif) in one call (the image encoder's
#                              activations grow with it: 64 PNGs at the pixel bound cost a server 372 MB)
FRAMES = 256                 # frames (rows x time, cut at max_length) in one call of video_frames' serving_default
#                              (max_length, if larger: one whole video)
IMAGE_CALL_BYTES = 32_000_000  # encoded bytes of one call's images together
IMAGE_PIXELS = 4096 * 4096   # one decoded image or frame (a JPEG's after libjpeg's 1/2-1/8 scaling)
VIDEO_PIXELS = 32 * 1024 * 1024  # one GIF's decoded frames together (frames read x width x height)
GIF_BLOCKS = 100_000         # data blocks of a GIF read to count its frames (encoders write 255-byte blocks)
SHRINK_SIDE = 2048           # a decoded image's sides above this are subsampled to it before resizing

IMAGE_INPUTS = ("image", "frames", "video")


SLICED = ("subword_values", "decode_values")  # slice sizes in the graph: recorded in metadata.json, not lowered by serve

ONLY = {"tag_tokens": ("pos",), "subword_values": ("sentiment",), "decode_values": ("translation",)}  # bounds that apply to some tasks only


def table(task: str | None = None) -> dict:
    """The bounds by name, as ``metadata.json`` carries them (``bounds``): those that apply to ``task``
    (every one without a task)."""
    return {name.lower(): value for name, value in globals().items()
            if name.isupper() and isinstance(value, int) and not name.endswith("_INPUTS")
            and (task is None or task in ONLY.get(name.lower(), (task,)))}


def of(metadata: dict, lowered: dict | None = None) -> dict:
    """The bounds an export is held to: its own (``metadata.json``'s ``bounds``) or, for an export written
    before it recorded them, these defaults; each lowered by ``lowered`` (``serve --bound``)."""
    own = metadata.get("bounds") if isinstance(metadata.get("bounds"), dict) else {}
    held = {**table(metadata.get("task")), **{k: v for k, v in own.items() if isinstance(v, int)}}
    for name, value in (lowered or {}).items():
        held[name] = min(held.get(name, value), value)
    return held
