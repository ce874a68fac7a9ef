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
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqapps import decoding
from seqapps.config import Config, DataConfig, ModelConfig, TrainConfig
from seqapps.data import captions as caplib
from seqapps.encoders import build_encoder
from seqapps.encoders.image_inputs import read_items, size_warning, why_undecodable
from seqapps.encoders.images import augment, decode_batch, decode_one
from seqapps.errors import ConfigError, DataError
from seqapps.layers.attention import KINDS
from seqapps.models import ImageCaptioner
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


# -- preprocessing ----------------------------------------------------------------------------
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


# -- predictor ----------------------------------------------------------------------------------
class CaptionPredictor(Predictor):
    """``caption(paths_or_bytes, beam=3)`` -> ``[{"source", "caption", "error", "warning"}]``.

    Items that cannot be read or decoded get ``caption=None`` and an ``error`` saying
    why; the others are captioned all the same.
    """

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
        blobs, info = read_items(list(items), "caption")
        todo = [i for i, b in enumerate(blobs) if b is not None]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            out = self.call(signature, image=np.asarray([blobs[i] for i in chunk], dtype=object))
            for i, text, ok in zip(chunk, decode_strings(out["caption"]), out["valid"]):
                if ok:
                    info[i]["caption"] = text
                    info[i]["warning"] = size_warning(blobs[i])
                else:
                    info[i]["error"] = why_undecodable(blobs[i])
        return info

    def predict(self, inputs):
        return self.caption(inputs)

    def attention(self, items, batch_size: int = 16) -> list[dict]:
        """Greedy captions with, per word, the attention over the feature grid ``[words, h, w]``."""
        if "attention" not in self.signatures:
            raise ConfigError("this model has no attention (model.attention=none)")
        blobs, info = read_items(list(items), "caption")
        todo = [i for i, b in enumerate(blobs) if b is not None]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            out = self.call("attention", image=np.asarray([blobs[i] for i in chunk], dtype=object))
            words = decode_strings(out["words"])
            for row, i in enumerate(chunk):
                if not out["valid"][row]:
                    info[i]["error"] = why_undecodable(blobs[i])
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
    unused = {"model.bidirectional": "the decoder reads forwards", "model.layers": "the decoder is one recurrent cell"}

    def load_data(self, cfg, data_dir=None):
        _check(cfg)
        return caplib.load_caption_data(cfg.data, self.name, data_dir)

    def fit_preprocessing(self, cfg, splits):
        return caplib.CaptionVocab.fit(splits.train.captions, cfg.data.vocab_size, cfg.data.min_count, cfg.data.max_length)

    def load_preprocessing(self, cfg, run_dir):
        return caplib.CaptionVocab.load(run_dir, cfg.data.max_length)

    def cached_features(self, cfg, data):
        """Encoder features ``[images, cells, channels]`` of a CaptionSet (frozen encoder only)."""
        m = cfg.model
        encoder = build_encoder(m.encoder, m.encoder_weights, m.image_size)
        fn = tf.function(lambda x: encoder(x, training=False))
        return caplib.encoder_features(data, fn, m.image_size, _cache_dir(cfg))

    tiny_overrides = ["model.encoder=small_cnn", "model.encoder_weights=none", "model.encoder_trainable=true",
                      "model.image_size=32", "model.units=8", "model.embedding_dim=8", "model.feature_units=8",
                      "model.attention_units=8", "model.beam_width=2", "data.max_length=8", "data.min_count=1",
                      "data.augment=false", "data.demo_image_size=32", "train.epochs=1", "train.batch_size=32"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        from seqapps.testing import random_images

        size = int(metadata.get("config", {}).get("model", {}).get("image_size", 32))
        return [{"image": b} for b in random_images(rng, n, size)]

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
                        pixels = augment(pixels, size)
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

    def compile(self, model, cfg, optimizer, prep):
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))

    # serving ---------------------------------------------------------------------------------
    def endpoints(self, model, prep, cfg):
        m = cfg.model
        words = tf.constant(prep.words)
        start, end = caplib.SPECIALS.index(caplib.START), caplib.SPECIALS.index(caplib.END)

        def caption(image, beam_width):
            pixels, valid = decode_batch(image, m.image_size)
            state = model.initial_state(model.image_features(pixels))
            out = decoding.search(model.step, state, start, end, prep.max_length + 1, beam_width=beam_width,
                                  length_penalty=m.length_penalty)
            joined, strings = decoding.join_words(words, out["tokens"], out["lengths"])
            joined = tf.strings.strip(tf.strings.regex_replace(joined, r"\s+", " "))
            joined = tf.strings.regex_replace(joined, r" ([.,!?;:]|'s|n't)( |$)", r"\1\2")
            return {"caption": tf.where(valid, joined, ""), "valid": valid,
                    "length": tf.where(valid, out["lengths"], 0), "score": tf.where(valid, out["scores"], 0.0),
                    "words": strings, "attention": out["extras"].get("attention")}

        def pick(*keys):
            return lambda width: lambda image: {k: v for k, v in caption(image, width).items() if k in keys}
        result = pick("caption", "valid", "length", "score")
        spec = [tf.TensorSpec([None], tf.string, name="image")]
        endpoints = {
            "serving_default": Endpoint(result(1), spec, "image bytes (JPEG/PNG/GIF/BMP) -> caption, greedy "
                                                         "decoding; valid=false (and an empty caption) for undecodable items"),
            "beam": Endpoint(result(m.beam_width), spec, f"image bytes -> caption, beam search of width {m.beam_width}"),
        }
        if m.attention != "none":
            def attention(image):
                out = pick("caption", "valid", "length", "words", "attention")(1)(image)
                maps = out["attention"]
                out["attention"] = tf.reshape(maps, tf.concat([tf.shape(maps)[:2], list(model.grid)], 0))
                return out

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
            from seqapps.viz import plot_image_attention

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
