"""video_frames — many-to-many, per frame: a video in, one label per frame out.

Each frame goes through a frame encoder (a small CNN trained with the model by
default, or a pretrained one from :mod:`seqapps.encoders`), the shared recurrent
factory reads the frames (bidirectional for offline labelling, ``--set
model.bidirectional=false`` for online, causal labelling) and a softmax -- or the CRF,
``--set model.crf=true``, for labels that come in segments -- labels every frame.
``--set model.architecture=frame`` is the one-to-one baseline: the same encoder and
a classifier of each frame alone. See :mod:`tasks.video_frames.model`.

Data: ``moving_digits`` (generated from real handwritten digits; the label is the
direction of motion, :mod:`tasks.video_frames.moving_digits`), ``demo`` (a small set of
it), or a folder of videos with ``labels.csv`` (:mod:`tasks.video_frames.data`).

Serving (:mod:`tasks.video_frames.serving`): ``serving_default`` takes ``frames: tf.string
[batch, time]`` (encoded images, padded with ``""``), ``gif`` takes ``video: tf.string
[batch]`` (animated GIFs); both return ``labels``, ``probabilities``, ``lengths`` and
``valid``. ``seqapps.load(...).predict(["clip.mp4"])`` decodes any container in Python.
"""

from __future__ import annotations

import dataclasses

from seqapps.core.config import AT_LEAST_0, AT_LEAST_1, FRACTION, Config, DataConfig, ModelConfig, Range, TrainConfig
from tasks.video_frames import data as videolib
from tasks.video_frames.splits import load_video_splits
from seqapps.data.preprocessing import Preprocessing, save_vocab
from tasks.video_frames.segments import position_scores, segment_scores
from seqapps.core.errors import DataError
from seqapps.layers.tagging import compile_tagger
from seqapps.analysis.metrics import classification_report
from tasks.video_frames.model import ARCHITECTURES, build_frame_tagger
from seqapps.inference.predictor import Predictor
from tasks.video_frames.predicting import Predictions
from seqapps.core.presets import Preset
from seqapps.core.registry import register
from tasks.video_frames.serving import video_endpoints
from seqapps.core.task import Task


@dataclasses.dataclass
class VideoData(DataConfig):
    fps: float = 10.0          # frames sampled per second when decoding files (0 = every frame)
    max_length: int = 1000     # frames per video; longer videos are cut (with a warning)
    videos: int = 2000         # moving_digits: training videos (validation and test get a tenth each)
    min_frames: int = 16       # moving_digits: frames per video, drawn from [min_frames, max_frames]
    max_frames: int = 48
    canvas: int = 32           # moving_digits: frame side in pixels
    speed: int = 2             # moving_digits: pixels moved per frame
    seed: int = 0              # moving_digits: the generator's seed (splits and videos)


@dataclasses.dataclass
class VideoModel(ModelConfig):
    architecture: str = "rnn"  # rnn (recurrent context over the frames) | frame (each frame alone)
    units: int = 64
    encoder: str = "small_cnn"  # small_cnn | efficientnet_lite0 | a keras.applications name
    encoder_weights: str = "none"   # none | imagenet | PATH (encoder_trainable=false freezes it)
    encoder_trainable: bool = True
    cnn_filters: list[int] = dataclasses.field(default_factory=lambda: [16, 32, 64])
    image_size: int = 32        # frames are resized to image_size x image_size in the graph
    feature_units: int = 128
    feature_dropout: float = 0.1
    crf: bool = False


@dataclasses.dataclass
class VideoTrain(TrainConfig):
    epochs: int = 12
    batch_size: int = 16
    learning_rate: float = 2e-3
    patience: int = 4


@dataclasses.dataclass
class VideoConfig(Config):
    data: VideoData = dataclasses.field(default_factory=VideoData)
    model: VideoModel = dataclasses.field(default_factory=VideoModel)
    train: VideoTrain = dataclasses.field(default_factory=VideoTrain)


class FrameLabels(Preprocessing):
    """The label names (``labels.txt``), in the order the model scores them."""

    task = "video_frames"

    def __init__(self, labels):
        self.labels = list(labels)

    @classmethod
    def fit(cls, cfg, splits):
        """The training split's labels (the dataset's own order first), from the fitting pass: no video is
        read. A validation label the training videos lack is an error naming the first video with one."""
        seen = set(splits.train.first_seen)
        known = [x for x in splits.info.get("labels", []) if x in seen]
        prep = cls(known + sorted(seen - set(known)))
        unknown = {x: i for x, i in splits.val.first_seen.items() if x not in seen}
        if unknown:
            first = min(unknown.values())  # its unknown labels are those first seen in it
            label = min(x for x, i in unknown.items() if i == first)
            raise DataError(f"validation video {splits.val.name(first)}: label {label!r} is not in the training videos")
        return prep

    def save(self, run_dir):
        save_vocab(run_dir, "labels.txt", self.labels)

    @classmethod
    def load(cls, run_dir, cfg=None):
        return cls(cls.read_vocab(run_dir, "labels.txt"))

    def ids(self, labels):
        index = {x: i + 1 for i, x in enumerate(self.labels)}
        return [[index[x] for x in video] for video in labels]


# -- predictor --------------------------------------------------------------------------------------
class VideoPredictor(Predictions, Predictor):
    """``analyze(items)``: per video ``{"source", "frames": [(index, label, probability)],
    "segments": [(start_s, end_s, label)], "error", "warning"}`` (:class:`tasks.video_frames.predicting.Predictions`,
    shared with the ONNX and LiteRT exports' predictors)."""


# -- the task ------------------------------------------------------------------------------------------
RECIPE = ("train.epochs=8", "train.decay=cosine", "train.patience=3", "train.backup_every=0")


@register
class VideoFrames(Task):
    name = "video_frames"
    topology = "many-to-many (per frame)"
    description = "video -> one label per frame (CNN frame encoder + BiRNN, optional CRF)"
    default_data = "moving_digits"
    config_class = VideoConfig
    monitor, monitor_mode = "val_accuracy", "max"
    predictor_class = VideoPredictor
    prep_class = FrameLabels
    choices = {"model.architecture": ARCHITECTURES}
    ranges = {"model.image_size": Range(8), "model.feature_units": AT_LEAST_1, "model.feature_dropout": FRACTION,
              "data.fps": AT_LEAST_0, "data.videos": AT_LEAST_1, "data.canvas": Range(8), "data.speed": AT_LEAST_1}
    presets = (
        Preset("moving_digits", "small CNN per frame + bidirectional LSTM 64, 8 epochs, cosine decay", RECIPE,
               data="moving_digits"),
        Preset("online", "the moving_digits recipe, unidirectional (causal: each label from past frames only)",
               RECIPE + ("model.bidirectional=false",)),
        Preset("frame", "the moving_digits recipe's encoder with a classifier of each frame alone (one-to-one)",
               RECIPE + ("model.architecture=frame",)),
    )

    def load_data(self, cfg, data_dir=None):
        return load_video_splits(cfg.data, self.name, data_dir)

    def datasets(self, cfg, prep, splits):
        """Batches decoded (or generated) one video at a time (:func:`tasks.video_frames.data.video_stream`)."""
        def make(split, shuffle):
            return videolib.video_stream(split, prep.labels, cfg.model.image_size, cfg.train.batch_size, shuffle,
                                         cfg.train.seed, cfg.data.shuffle_buffer)
        return make(splits.train, True), make(splits.val, False)

    def build_model(self, cfg, prep):
        return build_frame_tagger(cfg.model, len(prep.labels))

    def compile(self, model, cfg, optimizer, prep):
        compile_tagger(model, optimizer, cfg.model.crf)

    def endpoints(self, model, prep, cfg):
        return video_endpoints(model, prep.labels, cfg.model.image_size, cfg.data.max_length, cfg.model.crf)

    def metadata(self, prep):
        return {"labels": prep.labels}

    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        results = predictor.analyze(examples.videos)
        bad = next((r for r in results if r["error"]), None)
        if bad:
            raise DataError(f"{bad['source']}: {bad['error']}")
        pred = [[label for _, label, _ in r["frames"]] for r in results]
        true = [y[:len(p)] for y, p in zip(examples.labels, pred)]
        labels = predictor.metadata["labels"]
        report = classification_report([x for y in true for x in y], [x for p in pred for x in p], labels)
        report.update(segment_scores(true, pred), videos=len(examples), frames=report.pop("examples"))
        report.update(position_scores(true, pred))
        if out_dir is not None:
            from seqapps.analysis.plots import plot_timeline

            shown = [(examples.names[i], true[i], pred[i]) for i in range(min(8, len(examples)))]
            report["timeline"] = str(plot_timeline(shown, labels, f"{out_dir}/timeline.png", examples.fps))
        return report

    def format_metrics(self, metrics):
        return (f"  per-frame accuracy: {metrics['accuracy']:.4f}  macro-F1: {metrics['macro_f1']:.4f}\n"
                f"  segment F1 (IoU >= 0.5): {metrics['segment_f1']:.4f}  (precision {metrics['segment_precision']:.4f}"
                f", recall {metrics['segment_recall']:.4f})\n  videos: {metrics['videos']}  frames: {metrics['frames']}"
                + (f"\n  timeline: {metrics['timeline']}" if "timeline" in metrics else ""))

    tiny_overrides = ["model.units=8", "model.feature_units=8", "model.cnn_filters=4,8", "model.image_size=16",
                      "train.epochs=1", "train.batch_size=16", "data.max_length=64"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        from seqapps.core.testing import random_images, random_gifs

        size = int(metadata["config"]["model"]["image_size"])
        if signature == "gif":
            return [{"video": b} for b in random_gifs(rng, n, size)]
        return [{"frames": random_images(rng, int(rng.integers(0, 7)), size)} for _ in range(n)]
