"""ONNX and LiteRT exports of forecasting: the whole model in the graph (transform, scaling, encoder, head,
base, the map back to the target's units), the SavedModel signature's window checks in NumPy; they answer as
the SavedModel does, refuse what it refuses with the same line, and load without TensorFlow."""

from __future__ import annotations

import json

import numpy as np
import pytest

import seqapps
from conftest import without_tensorflow
from seqapps.core.errors import DataError, ExportError

# On 200 windows near the training values and up to 5 training scales from them: fp32 within 1e-4 of each
# forecast (relative, or absolute below 1); quantized, the largest and the median |got - want| within these many
# target standard deviations. Measured on these tiny runs, largest (median): ONNX int8 0.53 (0.04), float16 0.005
# (7e-4); LiteRT float16 3e-4 (4e-5); LiteRT's int8 leaves weights this small in float (the same as fp32).
QUANTIZED = {"int8": (1.0, 0.1), "float16": (0.02, 0.003)}
RUNS = {"log": ["model.units=8", "data.window=12", "data.horizon=2"],  # the target's log chosen (auto), an LSTM
        "plain": ["model.units=8", "data.window=12", "data.horizon=2", "model.transform=none", "model.cell=gru",
                  "model.linear=true"]}
FORMATS = [("onnx", "none"), ("onnx", "int8"), ("onnx", "float16"), ("litert", "none"), ("litert", "int8"),
           ("litert", "float16")]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two tiny forecasting runs (log target with an LSTM; plain target with a GRU and a linear component),
    each with its SavedModel and every ONNX and LiteRT export."""
    from seqapps.inference.export import export

    root = tmp_path_factory.mktemp("formats-forecasting")
    out = {}
    for name, overrides in RUNS.items():
        run = seqapps.train("forecasting", "demo", epochs=1, run_dir=root / name, verbose=0, overrides=overrides)
        paths = {"run": run.dir, "savedmodel": run.export(root / f"{name}-savedmodel")}
        bundle = run.bundle()
        for fmt, q in FORMATS:
            paths[fmt, q] = export(bundle, root / f"{name}-{fmt}-{q}", fmt, q)
        out[name] = paths
    return out


@pytest.fixture(scope="module")
def references(exports):
    return {name: seqapps.load(paths["savedmodel"]) for name, paths in exports.items()}


def windows(metadata, n=200, seed=0):
    """``n`` windows near the training values and far from them (the task's own sampler)."""
    from seqapps.core import registry

    task = registry.get("forecasting")
    return np.stack([x["window"] for x in task.sample_inputs(np.random.default_rng(seed), n, metadata)])


def frame():
    from tasks.forecasting import demo

    return demo.frame(seed=3).iloc[-100:]


@pytest.mark.slow
def test_folders_and_metadata(exports, references):
    assert references["log"].metadata["space"]["transform"] == "log"
    assert references["plain"].metadata["space"]["transform"] == "none"
    from seqapps.inference.litert import interpreter

    for paths in exports.values():
        onnx, lite = paths["onnx", "none"], paths["litert", "none"]
        assert sorted(p.name for p in onnx.iterdir()) == ["metadata.json", "model.onnx", "window.json"]
        assert sorted(p.name for p in lite.iterdir()) == ["metadata.json", "model.tflite", "window.json"]
        assert (onnx / "window.json").read_bytes() == (lite / "window.json").read_bytes()
        for folder, fmt in ((onnx, "onnx"), (lite, "litert")):
            meta = json.loads((folder / "metadata.json").read_text())
            assert meta["task"] == "forecasting" and meta["format"] == fmt and list(meta["graph"]["inputs"]) == ["window"]
        ops = {op["op_name"] for op in interpreter(lite / "model.tflite")._get_ops_details()}
        assert "WHILE" in ops and not any(op.startswith("Flex") for op in ops), ops
        import onnx as onnxlib

        graph = onnxlib.load(str(onnx / "model.onnx")).graph
        assert [i.name for i in graph.input] == ["window"] and [o.name for o in graph.output] == ["forecast"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt,quantize", FORMATS)
def test_answers_like_the_savedmodel(exports, references, fmt, quantize):
    for name, paths in exports.items():
        reference, model = references[name], seqapps.load(paths[fmt, quantize])
        assert type(model).__name__ == ("PredictionsOnnxPredictor" if fmt == "onnx" else "PredictionsLiteRTPredictor")
        x = windows(reference.metadata)
        want, got = reference.call(window=x)["forecast"], model.call(window=x)["forecast"]
        assert got.shape == want.shape == (len(x), 2) and got.dtype == np.float32
        if quantize == "none":
            diff = (np.abs(got - want) / np.maximum(np.abs(want), 1)).max()
            assert diff <= 1e-4, (name, diff)
            bound = 1e-4
        else:
            std = reference.metadata["encoding"]["std"][0]
            (most, median), diff = QUANTIZED[quantize], np.abs(got - want) / std
            assert diff.max() <= most and np.median(diff) <= median, (name, diff.max(), np.median(diff))
            bound = most * std
        assert np.allclose(model.predict(x[:5]), reference.predict(x[:5]), rtol=1e-4, atol=bound)
        assert np.allclose(model.forecast(frame()), reference.forecast(frame()), rtol=1e-4, atol=bound)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_refuses_what_the_savedmodel_refuses(exports, references, fmt):
    """An empty call, more rows than the bound, another shape, a string, NaN, a value too far out and a target
    value <= 0 under a log: the same answer or the same DataError line, in call() and in predict()."""
    for name, paths in exports.items():
        reference, model = references[name], seqapps.load(paths[fmt, "none"])
        x = windows(reference.metadata, 3)
        nan, far, negative = x.copy(), x.copy(), x.copy()
        nan[1, 4, 1], far[2, 0, 1], negative[0, 3, 0] = np.nan, 1e30, -1.0
        rows = np.repeat(x[:1], 1025, axis=0)
        cases = [np.zeros((0, 12, x.shape[-1]), np.float32), x[:, :5], [["a"]], nan, far, negative, rows, x.tolist()]
        for case in cases:
            for call in (lambda p, c: p.call(window=c)["forecast"], lambda p, c: np.asarray(p.predict(c))):
                try:
                    want = call(reference, case)
                except DataError as e:
                    with pytest.raises(DataError) as got:
                        call(model, case)
                    same = str(got.value) == str(e) or str(e).split("; got ")[0] == str(got.value).split("; got ")[0]
                    assert same, (name, str(got.value), str(e))
                    continue
                got = call(model, case)
                assert got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-4), name
        with pytest.raises(DataError, match="window has more than 1024 rows; send at most 1024 in one call"):
            model.call(window=rows)
        if name == "log":
            with pytest.raises(DataError, match="the log of the target load, so its values in the window must be"):
                model.call(window=negative)
        with pytest.raises(ExportError, match="no signature 'beam'"):
            model.call("beam", window=x)


@pytest.mark.slow
def test_answers_without_tensorflow(exports, references, tmp_path):
    paths = {f"{name}-{fmt}": str(p[fmt, "none"]) for name, p in exports.items() for fmt in ("onnx", "litert")}
    x = {name: windows(r.metadata, 7, seed=5).tolist() for name, r in references.items()}
    code = f"""
import seqapps
from tasks.forecasting import demo
frame = demo.frame(seed=3).iloc[-100:]
x = {x!r}
out = {{}}
for key, path in {paths!r}.items():
    model = seqapps.load(path)
    out[key] = {{"predict": model.predict(x[key.split("-")[0]]), "forecast": model.forecast(frame)}}
"""
    out = without_tensorflow(code, tmp_path)
    assert set(out) == set(paths)
    for key, got in out.items():
        reference = references[key.split("-")[0]]
        assert np.allclose(got["predict"], reference.predict(x[key.split("-")[0]]), rtol=1e-4, atol=1e-4), key
        assert np.allclose(got["forecast"], reference.forecast(frame()), rtol=1e-4, atol=1e-4), key


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_served_like_the_savedmodel(exports, references, fmt):
    """``seqapps serve`` loads the folder (its runtime picked from the file) and answers its signature."""
    from seqapps.http import models

    folder = exports["log"][fmt, "none"]
    served = models.load("forecasting", folder, 1)
    x = windows(references["log"].metadata, 4)
    got = served.signatures["serving_default"]({"window": x})["forecast"]
    assert np.allclose(got, references["log"].call(window=x)["forecast"], rtol=1e-4, atol=1e-4)
    assert served.signatures["serving_default"].outputs["forecast"].shape.rank == 2
