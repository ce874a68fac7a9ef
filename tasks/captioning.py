"""captioning — one-to-many: an image in, a sentence out.

A convolutional encoder (EfficientNet-Lite0 with ImageNet weights by default, frozen,
its features cached per image) gives a feature grid; a recurrent decoder writes the
caption word by word, attending over the grid at every step (Show, Attend and Tell),
or, with ``model.attention=none``, starting from the pooled image vector alone (Show
and Tell). Training is teacher-forced with a masked loss over every reference caption.
The export takes encoded image bytes; decoding, resizing, normalization and the greedy
and beam-search loops are inside the graph.
"""

from __future__ import annotations

import dataclasses
import io
import types
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from seqapps import decoding
from seqapps.config import Config, DataConfig, ModelConfig, TrainConfig
from seqapps.data import captions as caplib
from seqapps.encoders import build_encoder
from seqapps.encoders.images import decode_batch, decode_one, sniff
from seqapps.errors import ConfigError, DataError
from seqapps.layers import recurrent_cell
from seqapps.layers.attention import KINDS, make_attention
from seqapps.predict import Predictor, decode_strings
from seqapps.registry import register
from seqapps.task import Endpoint, Task


@dataclasses.dataclass
class CaptioningData(DataConfig):
    max_length: int = 22          # words per caption (longer ones are cut)
    vocab_size: int = 10000
    min_count: int = 3            # rarer training words become [UNK]
    image_column: str = ""        # empty: the first of image, image_name, file_name, filename, file, path
    caption_column: str = ""      # empty: the first of caption, text, sentence, description, comment
    feature_cache: str = ""       # folder for cached encoder features (default $SEQAPPS_CACHE or ~/.cache/seqapps)
    augment: bool = True          # random crops and colour jitter when the encoder is fine-tuned
    demo_image_size: int = 64


@dataclasses.dataclass
class CaptioningModel(ModelConfig):
    cell: str = "lstm"
    units: int = 256
    bidirectional: bool = False   # the decoder runs forwards; kept for the shared factory's signature
    encoder: str = "efficientnet_lite0"   # small_cnn | efficientnet_lite0 | a keras.applications name
    encoder_weights: str = "imagenet"     # imagenet | PATH | none
    encoder_trainable: bool = False       # fine-tune the encoder (no feature cache then)
    image_size: int = 224
    embedding_dim: int = 128
    feature_units: int = 256      # the feature grid is projected to this width
    attention: str = "additive"   # additive | multiplicative | none (Show and Tell)
    attention_units: int = 128
    dropout: float = 0.3          # on word embeddings and before the output layer
    beam_width: int = 3           # the width of the exported beam-search signature
    length_penalty: float = 0.0


@dataclasses.dataclass
class CaptioningTrain(TrainConfig):
    epochs: int = 20
    batch_size: int = 64
    patience: int = 3


@dataclasses.dataclass
class CaptioningConfig(Config):
    data: CaptioningData = dataclasses.field(default_factory=CaptioningData)
    model: CaptioningModel = dataclasses.field(default_factory=CaptioningModel)
    train: CaptioningTrain = dataclasses.field(default_factory=CaptioningTrain)


# -- model -------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="seqapps")
class ImageCaptioner(keras.Model):
    """Encoder + attentive recurrent decoder; ``step`` is the one decoding step used both by
    teacher-forced training (``call``) and by the greedy/beam loops of the export.

    ``call({"features" | "image", "tokens"})`` -> logits ``[batch, time, vocab]``: cached
    encoder features ``[batch, cells, channels]`` or pixels ``[batch, size, size, 3]``.
    """

    def __init__(self, vocab_size: int, encoder: str = "small_cnn", encoder_weights: str = "none",
                 encoder_trainable: bool = True, image_size: int = 64, cell: str = "lstm", units: int = 256,
                 embedding_dim: int = 128, feature_units: int = 256, attention: str = "additive",
                 attention_units: int = 128, dropout: float = 0.3, recurrent_dropout: float = 0.0,
                 load_weights: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.settings = dict(vocab_size=int(vocab_size), encoder=encoder, encoder_weights=encoder_weights,
                             encoder_trainable=bool(encoder_trainable), image_size=int(image_size), cell=cell,
                             units=int(units), embedding_dim=int(embedding_dim), feature_units=int(feature_units),
                             attention=attention, attention_units=int(attention_units), dropout=float(dropout),
                             recurrent_dropout=float(recurrent_dropout))
        s = types.SimpleNamespace(**self.settings)
        self.encoder = build_encoder(encoder, encoder_weights if load_weights else "none", s.image_size)
        self.encoder.trainable = s.encoder_trainable
        _, gh, gw, channels = self.encoder.output_shape
        if not gh or not gw:
            raise ConfigError(f"{encoder} at image size {image_size} gives no fixed feature grid")
        self.grid = (int(gh), int(gw))
        self.channels = int(channels)
        self.is_lstm = cell == "lstm"
        self.feature_proj = keras.layers.Dense(s.feature_units, activation="relu", name="feature_proj")
        self.init_h = keras.layers.Dense(s.units, activation="tanh", name="init_h")
        self.init_c = keras.layers.Dense(s.units, name="init_c") if self.is_lstm else None
        self.embedding = keras.layers.Embedding(s.vocab_size, s.embedding_dim, name="embedding")
        self.attention = make_attention(attention, s.attention_units, name="attention")
        self.cell = recurrent_cell(s, name="decoder_cell")
        self.deep_output = keras.layers.Dense(s.embedding_dim, activation="tanh", name="deep_output")
        self.drop = keras.layers.Dropout(s.dropout, name="dropout")
        self.logits_layer = keras.layers.Dense(s.vocab_size, name="logits", dtype="float32")
        # build every part now, so a reloaded model has its weights before any call
        context = s.feature_units if self.attention is not None else 0
        self.feature_proj.build((None, None, self.channels))
        self.init_h.build((None, s.feature_units))
        if self.init_c is not None:
            self.init_c.build((None, s.feature_units))
        self.embedding.build((None,))
        if self.attention is not None:
            self.attention.build((None, s.units), (None, None, s.feature_units))
        self.cell.build((None, s.embedding_dim + context))
        self.deep_output.build((None, s.units + context + s.embedding_dim))
        self.logits_layer.build((None, s.embedding_dim))
        self.built = True

    # pieces the serving functions use
    def image_features(self, pixels, training=False):
        """Pixels [batch, size, size, 3] in [0, 255] -> [batch, cells, channels]."""
        grid = self.encoder(pixels, training=False)  # batch norm stays in inference mode when fine-tuning
        return ops.reshape(grid, (-1, self.grid[0] * self.grid[1], self.channels))

    def initial_state(self, features, training=False):
        """Encoder features -> the decoder's state dict (recurrent state plus the constants it reads)."""
        feats = self.feature_proj(ops.cast(features, "float32"))
        mean = ops.mean(feats, axis=1)
        state = {"h": self.init_h(mean), "features": feats}
        if self.is_lstm:
            state["c"] = self.init_c(mean)
        if self.attention is not None:
            keys = self.attention.project_values(feats)
            if keys is not None:
                state["keys"] = keys
        return state

    def step(self, tokens, state, training=False):
        """One word: tokens [batch] + state -> (logits [batch, vocab], new state, {"attention": [batch, cells]})."""
        emb = self.drop(self.embedding(tokens), training=training)
        h = state["h"]
        extras = {}
        if self.attention is not None:
            context, weights = self.attention(h, state["features"], keys=state.get("keys"))
            x = ops.concatenate([emb, context], axis=-1)
            extras = {"attention": weights}
        else:
            x = emb
        carried = [h, state["c"]] if self.is_lstm else [h]
        out, new = self.cell(x, carried, training=training)
        new_state = dict(state, h=new[0])
        if self.is_lstm:
            new_state["c"] = new[1]
        parts = [out, context, emb] if self.attention is not None else [out, emb]
        hidden = self.deep_output(ops.concatenate(parts, axis=-1))
        return self.logits_layer(self.drop(hidden, training=training)), new_state, extras

    def call(self, inputs, training=False):
        features = inputs["features"] if "features" in inputs else self.image_features(inputs["image"], training)
        tokens = inputs["tokens"]
        state = self.initial_state(features, training)
        steps = tokens.shape[1]
        if steps is None:
            raise ValueError("ImageCaptioner needs a fixed number of teacher-forced steps")
        outputs = []
        for t in range(steps):
            logits, state, _ = self.step(tokens[:, t], state, training)
            outputs.append(logits)
        return ops.stack(outputs, axis=1)

    def get_config(self):
        return {**super().get_config(), **self.settings}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.setdefault("load_weights", False)  # the saved weights follow
        return cls(**config)

    def get_build_config(self):
        return {}

    def build_from_config(self, config):
        pass


# -- preprocessing ----------------------------------------------------------------------------
class CaptionPrep(caplib.CaptionVocab):
    pass


def _check(cfg):
    m = cfg.model
    if not m.encoder_trainable and m.encoder_weights.lower() in ("none", ""):
        raise ConfigError("a frozen encoder needs pretrained weights: set model.encoder_weights=imagenet|PATH "
                          "or model.encoder_trainable=true")
    if m.image_size < 16:
        raise ConfigError(f"model.image_size must be >= 16, got {m.image_size}")
    if m.attention not in KINDS:
        raise ConfigError(f"model.attention must be one of {', '.join(KINDS)}, got {m.attention!r}")
    if m.cell not in ("rnn", "lstm", "gru"):
        raise ConfigError(f"model.cell must be one of rnn, lstm, gru, got {m.cell!r}")
    if m.beam_width < 1:
        raise ConfigError(f"model.beam_width must be >= 1, got {m.beam_width}")


def _cache_dir(cfg) -> Path | None:
    """Feature cache folder for a frozen pretrained encoder (keyed by encoder, weights, size)."""
    m = cfg.model
    weights = m.encoder_weights
    if weights.lower() == "imagenet":
        tag = "imagenet"
    else:
        p = Path(weights)
        if not p.is_file():
            return None
        stat = p.stat()
        tag = f"{p.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    import hashlib

    key = hashlib.sha1(f"{m.encoder}|{tag}|{m.image_size}|v1".encode()).hexdigest()[:16]
    return caplib.cache_root(cfg.data.feature_cache) / f"{m.encoder}-{m.image_size}-{key}"


def _augment(pixels, size, seed):
    crop = tf.cast(tf.cast(size, tf.float32) * tf.random.uniform([], 0.85, 1.0), tf.int32)
    pixels = tf.image.random_crop(pixels, [crop, crop, 3])
    pixels = tf.image.resize(pixels, (size, size))
    pixels = tf.image.random_brightness(pixels, 20.0)
    return tf.clip_by_value(tf.image.random_contrast(pixels, 0.85, 1.15), 0.0, 255.0)


# -- predictor ----------------------------------------------------------------------------------
class CaptionPredictor(Predictor):
    """``caption(paths_or_bytes, beam=3)`` -> ``[{"source", "caption", "error", "warning"}]``.

    Items that cannot be read or decoded get ``caption=None`` and an ``error`` saying
    why; the others are captioned all the same.
    """

    SMALL = 16  # images smaller than this (either side) are captioned with a warning

    def _read(self, items):
        blobs, info = [], []
        for item in items:
            if isinstance(item, (bytes, bytearray, memoryview)):
                blobs.append(bytes(item))
                info.append({"source": f"<{len(bytes(item))} bytes>", "caption": None, "error": None, "warning": None})
                continue
            entry = {"source": str(item), "caption": None, "error": None, "warning": None}
            try:
                blobs.append(Path(item).expanduser().read_bytes())
            except IsADirectoryError:
                entry["error"] = "is a folder, not an image file"
                blobs.append(None)
            except OSError as e:
                entry["error"] = f"cannot read the file ({e.strerror})"
                blobs.append(None)
            info.append(entry)
        return blobs, info

    @staticmethod
    def explain(blob: bytes) -> str:
        """Why bytes did not decode, in words."""
        if not blob:
            return "empty input (0 bytes); expected JPEG, PNG, GIF or BMP image bytes"
        kind = sniff(blob)
        if kind is None:
            start = blob[:12]
            what = "text" if all(32 <= c < 127 or c in (9, 10, 13) for c in start) else "unknown data"
            return f"not a JPEG, PNG, GIF or BMP image (it starts with {what} {start!r})"
        from seqapps.encoders.images import MAX_PIXELS

        return f"corrupt or truncated {kind} data, or larger than {MAX_PIXELS // 1_000_000} megapixels"

    def _size_warning(self, blob):
        try:
            from PIL import Image

            w, h = Image.open(io.BytesIO(blob)).size
        except Exception:  # PIL cannot tell: no warning
            return None
        if min(w, h) < self.SMALL:
            return f"the image is only {w}x{h} pixels; the caption is unlikely to mean much"
        return None

    @property
    def beam_width(self) -> int:
        return int(self.metadata.get("config", {}).get("model", {}).get("beam_width", 1))

    def _signature(self, beam):
        if beam in (None, 0, 1):
            return "serving_default"
        width = self.beam_width
        if int(beam) != width:
            raise ConfigError(f"this export has greedy decoding (beam=1) and beam search of width {width}; "
                              f"got beam={beam}")
        return "beam"

    def caption(self, items, beam: int | None = None, batch_size: int = 16) -> list[dict]:
        if isinstance(items, (str, bytes, Path)):
            items = [items]
        beam = self.beam_width if beam is None else beam
        signature = self._signature(beam)
        blobs, info = self._read(list(items))
        todo = [i for i, b in enumerate(blobs) if b is not None]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            out = self.call(signature, image=np.asarray([blobs[i] for i in chunk], dtype=object))
            for i, text, ok in zip(chunk, decode_strings(out["caption"]), out["valid"]):
                if ok:
                    info[i]["caption"] = text
                    info[i]["warning"] = self._size_warning(blobs[i])
                else:
                    info[i]["error"] = self.explain(blobs[i])
        return info

    def predict(self, inputs):
        return self.caption(inputs)

    def attention(self, items, batch_size: int = 16) -> list[dict]:
        """Greedy captions with, per word, the attention over the feature grid ``[words, h, w]``."""
        if "attention" not in self.signatures:
            raise ConfigError("this model has no attention (model.attention=none)")
        blobs, info = self._read(list(items))
        todo = [i for i, b in enumerate(blobs) if b is not None]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            out = self.call("attention", image=np.asarray([blobs[i] for i in chunk], dtype=object))
            words = decode_strings(out["words"])
            for row, i in enumerate(chunk):
                if not out["valid"][row]:
                    info[i]["error"] = self.explain(blobs[i])
                    continue
                n = int(out["length"][row])
                info[i].update(caption=decode_strings(out["caption"][row:row + 1])[0], words=words[row][:n],
                               attention=out["attention"][row, :n])
        return info

    def cli_predict(self, inputs, input_file):
        if input_file:
            try:
                inputs = inputs + [line.strip() for line in Path(input_file).read_text().splitlines() if line.strip()]
            except OSError as e:
                raise DataError(f"{input_file}: {e.strerror}") from None
        elif not inputs:
            import sys

            if not sys.stdin.isatty():
                inputs = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
        if not inputs:
            raise DataError("give image files to caption (or --input FILE, or stdin, listing one path a line)")
        return self.format(inputs, self.caption(inputs))

    def format(self, inputs, results):
        lines = []
        for r in results:
            if r["error"]:
                lines.append(f"{r['source']}\terror: {r['error']}")
            else:
                lines.append(f"{r['source']}\t{r['caption']}" + (f"\t(warning: {r['warning']})" if r["warning"] else ""))
        return lines


# -- the task -------------------------------------------------------------------------------------
@register
class Captioning(Task):
    name = "captioning"
    topology = "one-to-many"
    description = "image bytes -> caption (CNN encoder + attentive RNN decoder)"
    default_data = "flickr8k_1000"
    config_class = CaptioningConfig
    predictor_class = CaptionPredictor

    def load_data(self, cfg, data_dir=None):
        _check(cfg)
        return caplib.load_caption_data(cfg.data, self.name, data_dir)

    def fit_preprocessing(self, cfg, splits):
        return CaptionPrep.fit(splits.train.captions, cfg.data.vocab_size, cfg.data.min_count, cfg.data.max_length)

    def load_preprocessing(self, cfg, run_dir):
        return CaptionPrep.load(run_dir, cfg.data.max_length)

    def cached_features(self, cfg, data):
        """Encoder features ``[images, cells, channels]`` of a CaptionSet (frozen encoder only)."""
        m = cfg.model
        encoder = build_encoder(m.encoder, m.encoder_weights, m.image_size)
        fn = tf.function(lambda x: encoder(x, training=False))
        return caplib.encoder_features(data, fn, m.image_size, _cache_dir(cfg))

    def datasets(self, cfg, prep, splits):
        m, bs = cfg.model, cfg.train.batch_size

        def make(data, shuffle):
            image_ids, inputs, targets = prep.pairs(data)
            n = len(image_ids)
            ds = tf.data.Dataset.from_tensor_slices((image_ids, inputs, targets))
            if shuffle:
                ds = ds.shuffle(n, seed=cfg.train.seed, reshuffle_each_iteration=True)
            if not m.encoder_trainable:
                feats = tf.constant(self.cached_features(cfg, data))
                ds = ds.batch(bs).map(lambda i, x, y: ({"features": tf.gather(feats, i), "tokens": x}, y))
            else:
                blobs = tf.constant([data.read(i) for i in range(len(data))])
                size = m.image_size

                def load(i, x, y):
                    pixels = decode_one(blobs[i], size)
                    if shuffle and cfg.data.augment:
                        pixels = _augment(pixels, size, cfg.train.seed)
                    return {"image": pixels, "tokens": x}, y
                ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(bs)
            n_batches = -(-n // bs)
            return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)

        return make(splits.train, True), make(splits.val, False)

    def build_model(self, cfg, prep):
        m = cfg.model
        return ImageCaptioner(len(prep), encoder=m.encoder, encoder_weights=m.encoder_weights,
                              encoder_trainable=m.encoder_trainable, image_size=m.image_size, cell=m.cell,
                              units=m.units, embedding_dim=m.embedding_dim, feature_units=m.feature_units,
                              attention=m.attention, attention_units=m.attention_units, dropout=m.dropout,
                              recurrent_dropout=m.recurrent_dropout, name="captioner")

    def compile(self, model, cfg, optimizer):
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))

    # serving ---------------------------------------------------------------------------------
    def endpoints(self, model, prep, cfg):
        m = cfg.model
        words = tf.constant(prep.words)
        size, max_len = m.image_size, prep.max_length + 1

        def encode(image):
            pixels, valid = decode_batch(image, size)
            return model.initial_state(model.image_features(pixels)), valid

        def step(tokens, state):
            return model.step(tokens, state, training=False)

        def text(out, valid):
            toks = out["tokens"]
            mask = tf.sequence_mask(out["lengths"], tf.shape(toks)[1])
            strings = tf.where(mask, tf.gather(words, toks), "")
            joined = tf.strings.reduce_join(strings, axis=1, separator=" ")
            joined = tf.strings.strip(tf.strings.regex_replace(joined, r"\s+", " "))
            joined = tf.strings.regex_replace(joined, r" ([.,!?;:]|'s|n't)( |$)", r"\1\2")
            return tf.where(valid, joined, ""), strings

        def result(out, valid):
            caption, _ = text(out, valid)
            return {"caption": caption, "valid": valid, "length": tf.where(valid, out["lengths"], 0),
                    "score": tf.where(valid, out["scores"], 0.0)}

        def greedy(image):
            state, valid = encode(image)
            return result(decoding.greedy(step, state, 2, 3, max_len), valid)

        def beam(image):
            state, valid = encode(image)
            return result(decoding.beam_search(step, state, 2, 3, max_len, beam_width=m.beam_width,
                                               length_penalty=m.length_penalty), valid)

        spec = [tf.TensorSpec([None], tf.string, name="image")]
        endpoints = {
            "serving_default": Endpoint(greedy, spec, "image bytes (JPEG/PNG/GIF/BMP) -> caption, greedy decoding; "
                                                      "valid=false (and an empty caption) for undecodable items"),
            "beam": Endpoint(beam, spec, f"image bytes -> caption, beam search of width {m.beam_width}"),
        }
        if m.attention != "none":
            gh, gw = model.grid

            def attention(image):
                state, valid = encode(image)
                out = decoding.greedy(step, state, 2, 3, max_len)
                caption, strings = text(out, valid)
                maps = out["extras"]["attention"]
                maps = tf.reshape(maps, tf.concat([tf.shape(maps)[:2], [gh, gw]], 0))
                return {"caption": caption, "valid": valid, "length": tf.where(valid, out["lengths"], 0),
                        "words": strings, "attention": maps}

            endpoints["attention"] = Endpoint(attention, spec, "image bytes -> greedy caption, words "
                                              "[batch, steps] and attention maps [batch, steps, grid_h, grid_w]")
        return endpoints

    def metadata(self, prep):
        return {"vocabulary_size": len(prep), "max_length": prep.max_length}

    # scoring ------------------------------------------------------------------------------------
    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        images = [examples.images[i] for i in range(len(examples))]
        refs = examples.captions
        metrics = {"images": len(examples)}
        beams = [1] + ([predictor.beam_width] if predictor.beam_width > 1 else [])
        samples = {}
        for width in beams:
            results = predictor.caption(images, beam=width)
            bad = [r for r in results if r["error"]]
            if bad:
                raise DataError(f"{bad[0]['source']}: {bad[0]['error']}")
            hyps = [r["caption"] for r in results]
            tag = "greedy" if width == 1 else f"beam{width}"
            for n, score in caplib.corpus_bleu_scores(hyps, refs).items():
                metrics[f"bleu{n}_{tag}"] = score
            samples[tag] = hyps
        metrics["samples"] = [{"image": examples.names[i], **{k: v[i] for k, v in samples.items()},
                               "references": refs[i]} for i in range(min(10, len(examples)))]
        if plot and out_dir is not None and "attention" in predictor.signatures:
            folder = Path(out_dir) / "attention"
            folder.mkdir(parents=True, exist_ok=True)
            shown = list(range(min(10, len(examples))))
            for i, r in zip(shown, predictor.attention([images[i] for i in shown])):
                if not r.get("error"):
                    plot_image_attention(examples.read(i), r["words"], r["attention"],
                                         folder / f"{Path(examples.names[i]).stem}.png")
            metrics["attention_plots"] = str(folder)
        return metrics

    def format_metrics(self, metrics):
        lines = [f"  images: {metrics['images']}"]
        for key, value in metrics.items():
            if key.startswith("bleu"):
                lines.append(f"  {key}: {value:.2f}")
        return "\n".join(lines)


def plot_image_attention(image_bytes: bytes, words, maps, out_png) -> Path:
    """One panel per generated word: the image with that step's attention laid over it."""
    from PIL import Image

    import seqapps.viz  # noqa: F401  (selects the Agg backend)
    import matplotlib.pyplot as plt

    image = np.asarray(Image.open(io.BytesIO(image_bytes)).convert("RGB"))
    n = max(1, len(words))
    cols = min(5, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, word, m in zip(axes.flat, words, maps):
        ax.imshow(image)
        ax.imshow(np.asarray(m), cmap="gray", alpha=0.6, extent=(0, image.shape[1], image.shape[0], 0),
                  interpolation="bilinear")
        ax.set_title(word, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return Path(out_png)
