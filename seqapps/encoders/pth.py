"""Read a PyTorch ``.pth`` state dict into numpy arrays without installing torch.

Both on-disk layouts ``torch.save`` has used are read: the zip archive (PyTorch >= 1.6:
``<name>/data.pkl`` plus one file per storage under ``<name>/data/``) and the legacy
stream (magic number, protocol, system info, the pickled object, the storage keys, then
each storage as an 8-byte element count followed by its raw little-endian bytes).

The pickles are read with a restricted unpickler that resolves only the handful of
globals a state dict needs (``OrderedDict``, the tensor rebuild functions and the
storage types) and refuses everything else, so a hostile file cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from seqapps.core.errors import DataError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "BFloat16Storage": None,  # read as uint16 and widened below
}


class _StorageType:
    def __init__(self, name):
        if name not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage type torch.{name}")
        self.name = name

    @property
    def dtype(self):
        return np.dtype(_STORAGE_DTYPES[self.name] or np.uint16)


class _Storage:
    """A storage reference; ``array`` is filled in once the bytes are read."""

    def __init__(self, key, storage_type):
        self.key, self.type, self.array = key, storage_type, None


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        flat = self.storage.array
        if self.storage.type.name == "BFloat16Storage":
            flat = (flat.astype(np.uint32) << 16).view(np.float32)
        item = flat.dtype.itemsize
        if not self.size:
            return np.array(flat[self.offset])
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=[s * item for s in self.stride])
        return np.array(view)  # a contiguous copy


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_ignored):
    return data


class _Unpickler(pickle.Unpickler):
    ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, storages: dict):
        super().__init__(file, encoding="latin1")
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (only tensors are read)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("unsupported storage reference")
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type)
        return self.storages[key]


def load_state_dict(path) -> dict[str, np.ndarray]:
    """``{name: numpy array}`` from a ``.pth`` file holding a (possibly nested) state dict."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such weights file")
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        else:
            obj = _load_legacy(path)
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a readable PyTorch state dict ({e})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    return {str(k).removeprefix("module."): v.materialize() for k, v in obj.items() if isinstance(v, _LazyTensor)}


def _load_zip(path: Path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise ValueError("no data.pkl in the archive")
        prefix = pkl[: -len("data.pkl")]
        storages: dict = {}
        obj = _Unpickler(io.BytesIO(archive.read(pkl)), storages).load()
        for key, storage in storages.items():
            storage.array = np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=storage.type.dtype.newbyteorder("<"))
    return obj


def _load_legacy(path: Path):
    with open(path, "rb") as f:
        magic = _Unpickler(f, {}).load()
        if magic != LEGACY_MAGIC:
            raise ValueError("not a PyTorch file (bad magic number)")
        _Unpickler(f, {}).load()           # protocol version
        info = _Unpickler(f, {}).load()    # system info
        if isinstance(info, dict) and not info.get("little_endian", True):
            raise ValueError("big-endian files are not supported")
        storages: dict = {}
        obj = _Unpickler(f, storages).load()
        keys = _Unpickler(f, {}).load()
        for key in keys:
            storage = storages[str(key)]
            (count,) = struct.unpack("<q", f.read(8))
            dtype = storage.type.dtype.newbyteorder("<")
            data = f.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise EOFError("the file ends inside a tensor")
            storage.array = np.frombuffer(data, dtype=dtype)
    return obj
