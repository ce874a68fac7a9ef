"""TensorFlow Serving's REST formats: JSON requests -> checked numpy inputs, outputs -> JSON.

As in TF Serving's RESTful API document:

- row format: ``{"instances": [...]}`` -> ``{"predictions": [...]}``. With one input an
  instance is its value; with several, an object of them. A prediction is the value of the
  one output, or an object of every output.
- columnar format: ``{"inputs": value | {name: value}}`` -> ``{"outputs": value | {name: value}}``.
- ``"signature_name"`` picks a signature (default ``serving_default``).
- a string value may be ``{"b64": "..."}`` (binary data, e.g. image bytes); string outputs are
  UTF-8 text, or ``{"b64": ...}`` when named ``*_bytes`` or not valid UTF-8.

One liberty beyond TF Serving: a scalar input (``beam_width``, ``length``) may appear in
each instance of the row format if every instance gives it the same value.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np


class RestError(Exception):
    """An answer ``{"error": message}`` with HTTP ``status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_predict(body, sig) -> tuple[dict, str]:
    """A predict request's JSON object -> (numpy inputs by name, "row" | "columnar")."""
    if not isinstance(body, dict):
        raise RestError("the request body must be a JSON object with \"instances\" or \"inputs\"")
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise RestError(f"unknown field {unknown[0]!r} in the request; expected \"instances\" or \"inputs\" "
                        "and optionally \"signature_name\"")
    if ("instances" in body) == ("inputs" in body):
        raise RestError("the request must have exactly one of \"instances\" (row format) or \"inputs\" "
                        "(columnar format)" + (", not both" if "instances" in body else ""))
    if "instances" in body:
        return _rows(body["instances"], sig), "row"
    return _columns(body["inputs"], sig), "columnar"


def _rows(instances, sig) -> dict:
    if not isinstance(instances, list):
        raise RestError("\"instances\" must be a list")
    if not instances:
        raise RestError("\"instances\" is empty; send at least one instance")
    names = list(sig.inputs)
    columns = {n: [] for n in names}
    for i, instance in enumerate(instances):
        if len(names) == 1 and not _named(instance):
            columns[names[0]].append(instance)
            continue
        if not isinstance(instance, dict):
            raise RestError(f"instance {i} must be an object of named inputs ({', '.join(names)}): "
                            f"signature {sig.name!r} has {len(names)} inputs")
        _check_names(instance, sig)
        for n in names:
            columns[n].append(instance[n])
    arrays = {}
    for n, values in columns.items():
        spec = sig.inputs[n]
        if spec.shape.rank == 0:
            if any(v != values[0] for v in values):
                raise RestError(f"input {n!r} is a scalar: every instance must give it the same value "
                                "(or send it once in the columnar format, \"inputs\")")
            arrays[n] = to_array(values[0], spec, n)
        else:
            arrays[n] = to_array(values, spec, n)
    return _check_batch(arrays, sig)


def _columns(inputs, sig) -> dict:
    names = list(sig.inputs)
    if not _named(inputs):
        if len(names) != 1:
            raise RestError(f"\"inputs\" must be an object of named inputs ({', '.join(names)}): "
                            f"signature {sig.name!r} has {len(names)} inputs")
        inputs = {names[0]: inputs}
    _check_names(inputs, sig)
    arrays = {n: to_array(inputs[n], sig.inputs[n], n) for n in names}
    return _check_batch(arrays, sig)


def _named(value) -> bool:
    """An object of named inputs (not a value, nor a ``{"b64": ...}`` value)."""
    return isinstance(value, dict) and "b64" not in value


def _check_names(given: dict, sig) -> None:
    names = list(sig.inputs)
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise RestError(f"signature {sig.name!r} has no input {unknown[0]!r}; its inputs are: {', '.join(names)}")
    missing = [n for n in names if n not in given]
    if missing:
        raise RestError(f"signature {sig.name!r} needs input {missing[0]!r}; its inputs are: {', '.join(names)}")


def _check_batch(arrays: dict, sig) -> dict:
    sizes = {n: a.shape[0] for n, a in arrays.items() if a.ndim}
    if len(set(sizes.values())) > 1:
        raise RestError("inputs must have the same size in their first (batch) dimension; got " +
                        ", ".join(f"{n}: {s}" for n, s in sizes.items()))
    return arrays


def rows_of(arrays: dict) -> int:
    return next((a.shape[0] for a in arrays.values() if a.ndim), 1)


# -- JSON values -> numpy, checked against a TensorSpec ------------------------------------------
def to_array(value, spec, name: str) -> np.ndarray:
    dtype = spec.dtype
    is_string = dtype.name == "string"
    shape, leaves = [], []
    try:
        _walk(value, shape, leaves)
    except RecursionError:
        raise RestError(f"input {name!r} is nested too deeply") from None
    except _Ragged as e:
        raise RestError(f"input {name!r} is not a regular array: {e}") from None
    want = spec.shape
    if want.rank is not None and len(shape) != want.rank:
        raise RestError(f"input {name!r} must have rank {want.rank} (shape {_shape_text(want)}); "
                        f"got rank {len(shape)} (shape {shape})")
    for axis, (got, expected) in enumerate(zip(shape, want.as_list() if want.rank is not None else [])):
        if expected is not None and got != expected:
            raise RestError(f"input {name!r} must have shape {_shape_text(want)}; got {shape} "
                            f"(dimension {axis} is {got}, expected {expected})")
    if is_string:
        flat = [_string_leaf(v, name) for v in leaves]
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    kind = "bool" if dtype.is_bool else "int" if dtype.is_integer else "float"
    for v in leaves:
        if isinstance(v, dict) or isinstance(v, str) or v is None or (kind == "bool") != isinstance(v, bool) \
                or (kind == "int" and not (isinstance(v, int) or (isinstance(v, float) and v.is_integer()))):
            raise RestError(f"input {name!r} holds {dtype.name} values; got {_describe(v)}")
    try:
        return np.asarray(leaves, dtype=dtype.as_numpy_dtype).reshape(shape)
    except OverflowError:
        raise RestError(f"input {name!r}: a value is out of range for {dtype.name}") from None


class _Ragged(ValueError):
    pass


def _walk(value, shape: list, leaves: list) -> None:
    """Fill ``shape`` (read down the first elements) and ``leaves`` (row-major) from nested lists;
    raise _Ragged when the rows are not all alike."""
    v = value
    while isinstance(v, list):
        shape.append(len(v))
        if not v:
            break
        v = v[0]

    def visit(v, depth):
        if depth == len(shape):
            if isinstance(v, list):
                raise _Ragged("rows nest to different depths")
            leaves.append(v)
        elif not isinstance(v, list):
            raise _Ragged("rows nest to different depths")
        elif len(v) != shape[depth]:
            raise _Ragged(f"rows of different lengths ({shape[depth]} and {len(v)}) at depth {depth}")
        else:
            for x in v:
                visit(x, depth + 1)

    visit(value, 0)


def _string_leaf(v, name: str) -> bytes:
    if isinstance(v, str):
        try:
            return v.encode("utf-8")
        except UnicodeEncodeError:
            raise RestError(f"input {name!r}: a string holds an unpaired surrogate (\\ud800-\\udfff), "
                            "which is not valid Unicode") from None
    if isinstance(v, dict) and set(v) == {"b64"} and isinstance(v["b64"], str):
        try:
            return base64.b64decode(v["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise RestError(f"input {name!r}: invalid base64 in {{\"b64\": ...}}") from None
    raise RestError(f"input {name!r} holds strings (text, or binary data as {{\"b64\": \"...\"}}); got {_describe(v)}")


def _describe(v) -> str:
    if isinstance(v, dict):
        return "an object" + (" with keys " + ", ".join(map(repr, list(v)[:3])) if v else "")
    text = repr(v)
    return f"{type(v).__name__} {text[:40]}" if v is not None else "null"


def _shape_text(shape) -> str:
    return "[" + ", ".join("batch" if d is None and i == 0 else "any" if d is None else str(d)
                           for i, d in enumerate(shape.as_list())) + "]"


# -- numpy outputs -> JSON -----------------------------------------------------------------------------
def to_json(array: np.ndarray, name: str):
    if array.dtype == object or array.dtype.kind == "S":
        as_b64 = name.endswith("_bytes")
        return _map(array.tolist(), lambda b: _string_out(b, as_b64))
    return array.tolist()  # NaN and Infinity are written as such, as TF Serving writes them


def _string_out(b, as_b64: bool):
    if not as_b64:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(b).decode("ascii")}


def _map(value, fn):
    if isinstance(value, list):
        return [_map(v, fn) for v in value]
    return fn(value)


def format_predict(outputs: dict, fmt: str) -> dict:
    """Numpy outputs -> the JSON answer, in the request's format."""
    names = list(outputs)
    if fmt == "columnar":
        values = {n: to_json(outputs[n], n) for n in names}
        return {"outputs": values[names[0]] if len(names) == 1 else values}
    columns = {n: to_json(outputs[n], n) for n in names}
    rows = len(columns[names[0]]) if names else 0
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    return {"predictions": [{n: columns[n][i] for n in names} for i in range(rows)]}


# -- metadata --------------------------------------------------------------------------------------
def tensor_info(spec, key: str, sig_name: str) -> dict:
    from tensorflow.core.framework import types_pb2

    dims = spec.shape.as_list() if spec.shape.rank is not None else None
    info = {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum), "name": f"{sig_name}_{key}:0"}
    info["tensor_shape"] = {"dim": [{"size": str(-1 if d is None else d), "name": ""} for d in dims],
                            "unknown_rank": False} if dims is not None else {"unknown_rank": True}
    return info


def model_metadata(model, version_in_path: bool) -> dict:
    """GetModelMetadataResponse as JSON, with seqapps' metadata.json beside the signatures."""
    signature_def = {name: {
        "inputs": {k: tensor_info(s, k, name) for k, s in sorted(sig.inputs.items())},
        "outputs": {k: tensor_info(s, k, name) for k, s in sorted(sig.outputs.items())},
        "method_name": "tensorflow/serving/predict"} for name, sig in model.signatures.items()}
    return {"model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
            "metadata": {"signature_def": {"signature_def": signature_def}, "seqapps": model.metadata}}


def model_status(model, loading: int | None) -> dict:
    """GetModelStatusResponse as JSON."""
    statuses = [{"version": str(model.version), "state": "AVAILABLE",
                 "status": {"error_code": "OK", "error_message": ""}}]
    if loading is not None and loading != model.version:
        statuses.insert(0, {"version": str(loading), "state": "LOADING",
                            "status": {"error_code": "OK", "error_message": ""}})
    return {"model_version_status": statuses}
