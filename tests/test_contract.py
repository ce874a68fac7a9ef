"""The contract every task keeps, checked over every task the registry knows.

Each task trains once, tiny (its ``Task.tiny_overrides``) on ``--data demo``; then:
its export loads in a process with only TensorFlow and answers like the in-memory
predictor, an empty batch answers with zero rows, metadata.json describes it, a bad
config key is a ConfigError, mixed precision trains and exports, and -- the property --
every input's outputs are the same alone, in any batch and at any padding.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import seqapps
from conftest import run_fresh
from seqapps import registry
from seqapps.errors import ConfigError

TASKS = registry.names()

#: (task, signature) pairs whose answer is known to depend on the batch: the property
#: test expects exactly these to fail (and fails if one of them starts passing).
BATCH_DEPENDENT: dict[tuple[str, str], str] = {}

#: tasks that do not train and export under ``train.mixed_precision=true`` yet
MIXED_PRECISION_FAILS: dict[str, str] = {}


def tiny(task) -> list[str]:
    overrides = type(task).tiny_overrides
    if not overrides:
        pytest.fail(f"task {task.name!r} declares no `tiny_overrides`: add a one-line list of --set overrides that "
                    "train it in seconds on --data demo (see seqapps/task.py)")
    return list(overrides)


@pytest.fixture(scope="module", params=TASKS)
def trained(request, tmp_path_factory):
    """One tiny run per task, its export and both predictors: {task, run_dir, export, memory, loaded, meta}."""
    task = registry.get(request.param)
    root = tmp_path_factory.mktemp(f"contract-{task.name}")
    run = seqapps.train(task.name, "demo", overrides=tiny(task), run_dir=root / "run", verbose=0)
    export = run.export(root / "export")
    meta = json.loads((export / "metadata.json").read_text())
    return {"task": task, "run_dir": root / "run", "export": export, "root": root, "meta": meta,
            "memory": seqapps.load(root / "run"), "loaded": seqapps.load(export)}


# -- assembling batches and comparing rows -------------------------------------------------------
def make_batch(specs: dict, examples: list[dict], pad: int = 0) -> dict:
    """Examples (``{input: value}``) -> the signature's inputs for one call; ``[batch, time]``
    token inputs get ``pad`` extra columns of ``""`` padding."""
    out = {}
    for name, spec in specs.items():
        values = [e[name] for e in examples]
        if spec.shape.rank == 0:
            assert all(v == values[0] for v in values), f"scalar input {name!r} differs between examples"
            out[name] = values[0]
        elif spec.dtype.name == "string" and spec.shape.rank == 2:
            width = max([len(v) for v in values] + [0]) + pad
            rows = np.empty((len(values), width), dtype=object)
            rows[:] = ""
            for i, v in enumerate(values):
                rows[i, :len(v)] = v
            out[name] = rows
        elif spec.dtype.name == "string":
            out[name] = np.array(values + [""], dtype=object)[:-1]  # 1-D even when all values are equal
        else:
            shape = [len(values), *[int(d) for d in spec.shape[1:]]]
            out[name] = np.asarray(values, dtype=spec.dtype.as_numpy_dtype).reshape(shape)
    return out


def empty_batch(specs: dict, example: dict) -> dict:
    batch = make_batch(specs, [example])
    for name, spec in specs.items():
        if spec.shape.rank:
            batch[name] = batch[name][:0]
    return batch


def assert_row_matches(batch_out: dict, row: int, alone_out: dict, what: str) -> None:
    """Row ``row`` of a batch's outputs equals the single-input outputs (float within 1e-5);
    time-like axes may be longer in the batch (its padding), never shorter."""
    assert set(batch_out) == set(alone_out), what
    for key, alone in alone_out.items():
        alone, got = np.asarray(np.asarray(alone)[0]), np.asarray(np.asarray(batch_out[key])[row])
        assert got.ndim == alone.ndim, f"{what}: output {key!r} has shape {got.shape}, alone {alone.shape}"
        assert all(g >= a for g, a in zip(got.shape, alone.shape)), \
            f"{what}: output {key!r} has shape {got.shape} in the batch but {alone.shape} alone"
        got = got[tuple(slice(0, n) for n in alone.shape)]
        if np.issubdtype(alone.dtype, np.floating):
            np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-5, err_msg=f"{what}: output {key!r}")
        else:
            np.testing.assert_array_equal(got, alone, err_msg=f"{what}: output {key!r}")


def assert_same_outputs(a: dict, b: dict, what: str) -> None:
    assert set(a) == set(b), f"{what}: outputs {sorted(a)} vs {sorted(b)}"
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.shape == y.shape, f"{what}: output {key!r} shapes {x.shape} vs {y.shape}"
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=f"{what}: output {key!r}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{what}: output {key!r}")


def sample_batches(t, n: int = 6, seed: int = 0) -> dict:
    """Per signature of the export: a batch of ``n`` of the task's sample inputs, and an empty batch."""
    task, predictor, meta = t["task"], t["loaded"], t["meta"]
    out = {}
    for i, (name, (_, specs)) in enumerate(predictor.signatures.items()):
        examples = task.sample_inputs(np.random.default_rng(seed + i), n, meta, name)
        assert len(examples) == n and all(set(e) == set(specs) for e in examples), \
            f"{task.name}.sample_inputs({name!r}) must give {n} dicts with the inputs {sorted(specs)}"
        out[name] = {"batch": make_batch(specs, examples, pad=2), "empty": empty_batch(specs, examples[0])}
    return out


# -- the contract ---------------------------------------------------------------------------------
FRESH = """
import json, pickle, tensorflow as tf
batches = pickle.load(open("batches.pkl", "rb"))
m = tf.saved_model.load({export!r})
out = {{}}
for name, calls in batches.items():
    sig = m.signatures[name]
    specs = sig.structured_input_signature[1]
    res = {{}}
    for kind, inputs in calls.items():
        tensors = {{k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}}
        try:
            res[kind] = {{k: v.numpy() for k, v in sig(**tensors).items()}}
        except tf.errors.OpError as e:
            res[kind] = " ".join(str(e).split())[:800]
    out[name] = res
pickle.dump(out, open("outputs.pkl", "wb"))
print(json.dumps({{"signatures": sorted(m.signatures)}}))
"""

#: tasks whose export does not answer an empty batch yet
EMPTY_BATCH_FAILS: dict[str, str] = {}


@pytest.fixture(scope="module")
def fresh_answers(trained, tmp_path_factory):
    """The export's answers to the task's sample batches, and to empty ones, in a process with only TensorFlow."""
    folder = tmp_path_factory.mktemp(f"fresh-{trained['task'].name}")
    batches = sample_batches(trained)
    (folder / "batches.pkl").write_bytes(pickle.dumps(batches))
    result = run_fresh(FRESH.format(export=str(trained["export"])), folder)
    return {"batches": batches, "signatures": result["signatures"],
            "outputs": pickle.loads((folder / "outputs.pkl").read_bytes())}


def test_export_in_a_fresh_process_answers_like_the_run(trained, fresh_answers):
    memory = trained["memory"]
    assert fresh_answers["signatures"] == sorted(memory.signatures)
    for name, calls in fresh_answers["batches"].items():
        got = fresh_answers["outputs"][name]["batch"]
        assert isinstance(got, dict), f"{name}: {got}"
        assert_same_outputs(got, memory.call(name, **calls["batch"]), f"{trained['task'].name}:{name}")


def check_empty_batches(trained, fresh_answers) -> None:
    for name, calls in fresh_answers["batches"].items():
        got = fresh_answers["outputs"][name]["empty"]
        assert isinstance(got, dict) and got, f"{name}: {got}"
        for key, value in got.items():
            assert value.shape[0] == 0, f"{name}: output {key!r} of an empty batch has shape {value.shape}"
        for key, value in trained["memory"].call(name, **calls["empty"]).items():
            assert value.shape[0] == 0, f"{name} in memory: output {key!r} of an empty batch has shape {value.shape}"


def test_an_empty_batch_answers_with_zero_rows(trained, fresh_answers):
    name = trained["task"].name
    if name not in EMPTY_BATCH_FAILS:
        return check_empty_batches(trained, fresh_answers)
    try:  # a strict expected failure
        check_empty_batches(trained, fresh_answers)
    except (AssertionError, tf.errors.OpError):
        pytest.xfail(EMPTY_BATCH_FAILS[name])
    pytest.fail(f"{name} now answers empty batches: remove it from EMPTY_BATCH_FAILS")


def test_metadata_describes_task_signatures_and_config(trained):
    task, meta = trained["task"], trained["meta"]
    assert meta["task"] == task.name and meta["topology"] == task.topology and task.topology
    assert set(meta["signatures"]) == set(trained["loaded"].signatures) and "serving_default" in meta["signatures"]
    for name, (_, specs) in trained["loaded"].signatures.items():
        assert set(meta["signatures"][name]["inputs"]) == set(specs), name
    cfg = json.loads((trained["run_dir"] / "config.json").read_text())
    assert meta["config"] == cfg and meta["config"]["data"]["source"] == "demo"
    loaded_cfg = task.config_class.from_dict(cfg)
    assert meta["decoding"] == task.decoding(loaded_cfg)  # the export's default decoding, stated as such


def test_bad_config_key_is_a_config_error(trained, tmp_path):
    task = trained["task"]
    with pytest.raises(ConfigError, match="unknown config key 'model.no_such_key'"):
        seqapps.train(task.name, "demo", overrides=[*tiny(task), "model.no_such_key=1"], run_dir=tmp_path / "r",
                      verbose=0)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=MIXED_PRECISION_FAILS[n]))
                                  if n in MIXED_PRECISION_FAILS else n for n in TASKS])
def test_mixed_precision_trains_and_exports(name, tmp_path):
    import keras

    task = registry.get(name)
    try:
        overrides = [*tiny(task), "train.mixed_precision=true", "train.steps_per_epoch=2"]
        run = seqapps.train(name, "demo", overrides=overrides, run_dir=tmp_path / "run", verbose=0)
        export = run.export(tmp_path / "export")
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the policy is global: leave it as it was
    predictor = seqapps.load(export)
    meta = json.loads((export / "metadata.json").read_text())
    assert meta["config"]["train"]["mixed_precision"] is True
    specs = predictor.signatures["serving_default"][1]
    out = predictor.call(**make_batch(specs, task.sample_inputs(np.random.default_rng(0), 3, meta)))
    for key, value in out.items():
        assert value.shape[0] == 3, key
        if np.issubdtype(value.dtype, np.floating):
            assert np.isfinite(value).all(), key


# -- the property: an input's answer does not depend on its batch -----------------------------------
def check_batch_independence(t, signature: str, max_examples: int) -> None:
    task, predictor, meta = t["task"], t["loaded"], t["meta"]
    specs = predictor.signatures[signature][1]

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(seed=st.integers(0, 2 ** 32 - 1), data=st.data())
    def prop(seed, data):
        n = data.draw(st.integers(1, 6), label="batch size")
        examples = task.sample_inputs(np.random.default_rng(seed), n, meta, signature)
        order = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6), label="rows")
        pad = data.draw(st.integers(0, 5), label="extra padding")
        batch = predictor.call(signature, **make_batch(specs, [examples[i] for i in order], pad))
        alone = {i: predictor.call(signature, **make_batch(specs, [examples[i]])) for i in set(order)}
        for row, i in enumerate(order):
            assert_row_matches(batch, row, alone[i], f"{task.name}:{signature} input {examples[i]!r:.200} "
                                                  f"(row {row} of {len(order)}, padding +{pad})")

    prop()


def test_an_inputs_answer_does_not_depend_on_its_batch(trained):
    name, predictor = trained["task"].name, trained["loaded"]
    failures = {}
    for signature in predictor.signatures:
        try:
            check_batch_independence(trained, signature, max_examples=6)
        except AssertionError as e:
            failures[(name, signature)] = " ".join(str(e).split())[:600]
    known = {k: v for k, v in BATCH_DEPENDENT.items() if k[0] == name}
    unexpected = {k: v for k, v in failures.items() if k not in known}
    assert not unexpected, "answers depend on the batch:\n" + "\n".join(f"{k}: {v}" for k, v in unexpected.items())
    fixed = sorted(set(known) - set(failures))
    assert not fixed, f"{fixed} no longer depend on the batch: remove them from BATCH_DEPENDENT"
    if known:
        pytest.xfail("; ".join(f"{k[1]}: {v}" for k, v in known.items()))
