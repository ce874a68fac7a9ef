"""A signature input's dtype and shape without TensorFlow, and the check of a value against it (the ONNX and
LiteRT predictors', and the TensorFlow-free helpers' of the tasks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqapps.core.errors import DataError


@dataclass(frozen=True)
class ArraySpec:
    """A signature input without TensorFlow: dtype name (``string``, ``int64``, ``float32``...) and shape."""

    name: str
    dtype: str
    shape: tuple

    def convert(self, value, signature: str) -> np.ndarray:
        shape_text = "[" + ", ".join("any" if d is None else str(d) for d in self.shape) + "]"
        try:
            if self.dtype == "string":
                array = np.asarray(value, dtype=object)
                for item in array.reshape(-1):
                    if not isinstance(item, (str, bytes)):
                        raise TypeError(f"{type(item).__name__} is not a string")
            else:
                array = np.asarray(value, dtype=self.dtype)
        except (TypeError, ValueError) as e:
            raise DataError(f"input {self.name!r} of signature {signature!r} must be {self.dtype} {shape_text}; "
                            f"got {type(value).__name__} ({str(e).splitlines()[0][:120]})") from None
        if array.ndim != len(self.shape) or any(d is not None and d != n for d, n in zip(self.shape, array.shape)):
            raise DataError(f"input {self.name!r} of signature {signature!r} must be {self.dtype} {shape_text}; "
                            f"got shape {list(array.shape)}")
        return array
