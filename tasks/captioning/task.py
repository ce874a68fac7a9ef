"""captioning — one-to-many: an image in, a sentence out.

A convolutional encoder (EfficientNet-Lite0 with ImageNet weights by default, frozen,
its features cached per image) gives a feature grid; a recurrent decoder writes the
caption word by word, attending over the grid at every step (Show, Attend and Tell),
or, with ``model.attention=none``, starting from the pooled image vector alone (Show
and Tell). Training is teacher-forced (``train.scheduled_sampling``: partly fed its own guesses)
with a masked loss over every reference caption. The export takes encoded image bytes; decoding,
resizing, normalization and the greedy and beam-search loops are inside the graph.
Scored by the COCO caption evaluation (:func:`seqapps.analysis.metrics.caption_report`), sacreBLEU beside it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras

from seqapps.core.config import FRACTION, Config, DataConfig, ModelConfig, Range, TrainConfig
from tasks.captioning import data as caplib
from tasks.captioning.features import image_batches
from seqapps.core.errors import ConfigError, DataError
from seqapps.analysis.metrics import caption_report, format_captions
from tasks.captioning.model import ImageCaptioner
from seqapps.training.losses import SmoothedTokenLoss
from tasks.captioning.model import SamplingRamp
from seqapps.core.presets import Preset
from seqapps.core.registry import register
from tasks.captioning.serving import CaptionPredictor, caption_endpoints
from seqapps.core.task import Task


@dataclasses.dataclass
class CaptioningData(DataConfig):
    max_length: int = 22          # words per caption (longer ones are cut)
    vocab_size: int = 10000
    min_count: int = 3            # rarer training words become [UNK]
    image_column: str = ""        # empty: the first of image, image_name, file_name, filename, file, path
    caption_column: str = ""      # empty: the first of caption, text, sentence, description, comment
    feature_cache: str = ""       # folder for cached encoder features (default $SEQAPPS_CACHE or ~/.cache/seqapps)
    augment: bool = True          # random crops and colour jitter when the encoder is fine-tuned
    flip: bool = False            # train on the left-right mirrored image half the time (frozen: a 2nd cached view)
    split_order: str = "sorted"   # sorted: by sorted image name (first train, next val, last test) | hash: by MD5
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
    context_dropout: float = 0.0  # on the attended image context at each step
    beam_width: int = 3           # the width of the exported beam-search signature
    length_penalty: float = 0.0


@dataclasses.dataclass
class CaptioningTrain(TrainConfig):
    epochs: int = 20
    batch_size: int = 64
    patience: int = 3
    label_smoothing: float = 0.0  # share of each target word's probability spread over the vocabulary
    scheduled_sampling: float = 0.0  # largest share of decoder inputs that are the model's own guess


@dataclasses.dataclass
class CaptioningConfig(Config):
    data: CaptioningData = dataclasses.field(default_factory=CaptioningData)
    model: CaptioningModel = dataclasses.field(default_factory=CaptioningModel)
    train: CaptioningTrain = dataclasses.field(default_factory=CaptioningTrain)


def _check(cfg):
    m = cfg.model
    if not m.encoder_trainable and m.encoder_weights.lower() in ("none", ""):
        raise ConfigError("a frozen encoder needs pretrained weights: set model.encoder_weights=imagenet|PATH "
                          "or model.encoder_trainable=true")


# -- the task -------------------------------------------------------------------------------------
@register
class Captioning(Task):
    name = "captioning"
    topology = "one-to-many"
    description = "image bytes -> caption (CNN encoder + attentive RNN decoder)"
    default_data = "flickr8k_1000"
    config_class = CaptioningConfig
    predictor_class = CaptionPredictor
    prep_class = caplib.CaptionVocab
    choices = {"data.split_order": caplib.SPLIT_ORDERS}
    ranges = {"model.image_size": Range(16), "model.context_dropout": FRACTION, "train.label_smoothing": FRACTION,
              "train.scheduled_sampling": FRACTION, "data.min_count": Range(1)}
    presets = (Preset("flickr8k", "frozen EfficientNet-Lite0 features, LSTM 256 + additive attention, up to 15 epochs",
                      ("train.epochs=15",), data="flickr8k_1000"),)
    unused = {"model.bidirectional": "the decoder reads forwards", "model.layers": "the decoder is one recurrent cell"}

    def load_data(self, cfg, data_dir=None):
        """Streamed splits (:class:`tasks.captioning.data.CaptionStream`); the fitting pass runs (or is
        read from its cache) here, so bad data fails before anything is written."""
        _check(cfg)
        return caplib.load_caption_data(cfg.data, self.name, data_dir)

    def teacher_steps(self, cfg, splits) -> int:
        """Teacher-forced steps: the longest caption the fitting pass found (words, at most
        ``data.max_length``) plus one; ``data.max_length + 1`` after a sampled pass."""
        fit = splits.info["fit"]
        longest = max(fit["longest"].values(), default=0)
        return min(cfg.data.max_length if fit["sampled"] else longest, cfg.data.max_length) + 1

    def datasets(self, cfg, prep, splits):
        if not splits.val.n:
            raise DataError(f"{cfg.data.source}: the validation split is empty; raise data.val_fraction")
        width = self.teacher_steps(cfg, splits)

        def make(data, shuffle):
            return image_batches(data, prep, cfg.model, width, cfg.train.batch_size, shuffle, cfg.train.seed,
                                 shuffle and cfg.data.augment, cfg.data.feature_cache, shuffle and cfg.data.flip,
                                 cfg.data.shuffle_buffer)
        return make(splits.train, True), make(splits.val, False)

    def build_model(self, cfg, prep):
        m = cfg.model
        return ImageCaptioner(len(prep), encoder=m.encoder, encoder_weights=m.encoder_weights,
                              encoder_trainable=m.encoder_trainable, image_size=m.image_size, cell=m.cell,
                              units=m.units, embedding_dim=m.embedding_dim, feature_units=m.feature_units,
                              attention=m.attention, attention_units=m.attention_units, dropout=m.dropout,
                              recurrent_dropout=m.recurrent_dropout, context_dropout=m.context_dropout,
                              scheduled_sampling=cfg.train.scheduled_sampling, name="captioner")

    def callbacks(self, cfg, prep):
        return [SamplingRamp(cfg.train.scheduled_sampling, cfg.train.epochs)] if cfg.train.scheduled_sampling else []

    def compile(self, model, cfg, optimizer, prep):
        smoothing = cfg.train.label_smoothing
        model.compile(optimizer=optimizer,
                      loss=SmoothedTokenLoss(smoothing) if smoothing else
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))

    # serving ---------------------------------------------------------------------------------
    def endpoints(self, model, prep, cfg):
        m = cfg.model
        start, end = caplib.SPECIALS.index(caplib.START), caplib.SPECIALS.index(caplib.END)
        return caption_endpoints(model, prep.words, start, end, prep.max_length + 1, m.image_size, m.beam_width,
                                 m.length_penalty, attention=m.attention != "none")

    def metadata(self, prep):
        return {"vocabulary_size": len(prep), "max_length": prep.max_length}

    def decoding(self, cfg):
        return {"beam_width": cfg.model.beam_width}

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
            report = caption_report(hyps, refs)
            metrics.update({(k if k == "coco_note" else f"{k}_{tag}"): v for k, v in report.items()})
            samples[tag] = hyps
        metrics["samples"] = [{"image": examples.names[i], **{k: v[i] for k, v in samples.items()},
                               "references": refs[i]} for i in range(min(10, len(examples)))]
        if plot and out_dir is not None and "attention" in predictor.signatures:
            folder = Path(out_dir) / "attention"
            folder.mkdir(parents=True, exist_ok=True)
            from seqapps.analysis.plots import plot_image_attention

            shown = list(range(min(10, len(examples))))
            for i, r in zip(shown, predictor.attention([images[i] for i in shown])):
                if not r.get("error"):
                    plot_image_attention(examples.read(i), r["words"], r["attention"],
                                         folder / f"{Path(examples.names[i]).stem}.png")
            metrics["attention_plots"] = str(folder)
        return metrics

    def format_metrics(self, metrics):
        return format_captions(metrics)

    tiny_overrides = ["model.encoder=small_cnn", "model.encoder_weights=none", "model.encoder_trainable=true",
                      "model.image_size=32", "model.units=8", "model.embedding_dim=8", "model.feature_units=8",
                      "model.attention_units=8", "model.beam_width=2", "data.max_length=8", "data.min_count=1",
                      "data.augment=false", "data.demo_image_size=32", "train.epochs=1", "train.batch_size=32"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        from seqapps.core.testing import random_images

        size = int(metadata.get("config", {}).get("model", {}).get("image_size", 32))
        return [{"image": b} for b in random_images(rng, n, size)]
