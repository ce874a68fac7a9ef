"""The contract every task keeps, checked over every task the registry knows.

Each task trains once, tiny (its ``Task.tiny_overrides``) on ``--data demo``, shared with the other
modules that need a tiny run (conftest.tiny_runs); then:
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

import seqapps
from conftest import FRESH, assert_same_outputs, run_fresh, sample_batches, tiny
from seqapps.core import registry
from seqapps.core.errors import ConfigError
from seqapps.core.testing import batch_independence, make_batch

pytestmark = pytest.mark.slow  # every test here trains or uses a tiny run

TASKS = registry.names()

#: (task, signature) pairs whose answer is known to depend on the batch: the property
#: test expects exactly these to fail (and fails if one of them starts passing).
BATCH_DEPENDENT: dict[tuple[str, str], str] = {}

#: tasks that do not train and export under ``train.mixed_precision=true`` yet
MIXED_PRECISION_FAILS: dict[str, str] = {}


@pytest.fixture(scope="module", params=TASKS)
def trained(request, tiny_runs):
    """One tiny run per task, its export and both predictors: {task, run_dir, export, memory, loaded, meta}."""
    task = registry.get(request.param)
    run, export = tiny_runs.run(task.name), tiny_runs.export(task.name)
    meta = json.loads((export / "metadata.json").read_text())
    return {"task": task, "run_dir": run.dir, "export": export, "root": run.dir.parent, "meta": meta,
            "memory": seqapps.load(run.dir), "loaded": seqapps.load(export)}


# -- the contract ---------------------------------------------------------------------------------
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


def train_in_precision(task, precision, tmp_path, callbacks=()):
    """A tiny run under ``train.mixed_precision=precision`` (2 batches) in ``tmp_path / "run"``."""
    overrides = [*tiny(task), f"train.mixed_precision={precision}", "train.steps_per_epoch=2"]
    return seqapps.train(task.name, "demo", overrides=overrides, run_dir=tmp_path / "run", verbose=0,
                         callbacks=callbacks)


def answer_samples(task, export):
    """(metadata, a batch of 3 sample inputs, the export's ``serving_default`` answer to it)."""
    predictor = seqapps.load(export)
    meta = json.loads((export / "metadata.json").read_text())
    specs = predictor.signatures["serving_default"][1]
    batch = make_batch(specs, task.sample_inputs(np.random.default_rng(0), 3, meta))
    return meta, batch, predictor.call(**batch)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=MIXED_PRECISION_FAILS[n]))
                                  if n in MIXED_PRECISION_FAILS else n for n in TASKS])
def test_mixed_precision_trains_and_exports(name, tmp_path):
    import keras

    task = registry.get(name)
    try:
        export = train_in_precision(task, "true", tmp_path).export(tmp_path / "export")
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the policy is global: leave it as it was
    meta, _, out = answer_samples(task, export)
    assert meta["config"]["train"]["mixed_precision"] == "true"
    for key, value in out.items():
        assert value.shape[0] == 3, key
        if np.issubdtype(value.dtype, np.floating):
            assert np.isfinite(value).all(), key


@pytest.mark.parametrize("name", ["sentiment", "translation"])
def test_bfloat16_trains_exports_float32_answers_and_puts_the_policy_back(name, tmp_path):
    """``train.mixed_precision=bfloat16`` computes in bfloat16 during training (the layers' policy), the
    export answers in float32 like the in-memory model, and the global policy is float32 again after."""
    import keras

    task = registry.get(name)
    seen = []
    keras.mixed_precision.set_global_policy("float32")

    class Policy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(keras.mixed_precision.global_policy().name)

    run = train_in_precision(task, "bfloat16", tmp_path, callbacks=[Policy()])
    assert seen and set(seen) == {"mixed_bfloat16"}
    assert keras.mixed_precision.global_policy().name == "float32"
    meta, batch, out = answer_samples(task, run.export(tmp_path / "export"))
    assert meta["config"]["train"]["mixed_precision"] == "bfloat16"
    floats = [k for k, v in out.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    assert floats, f"{name}: no floating output to check"
    for key in floats:
        assert np.asarray(out[key]).dtype == np.float32, key
        assert np.isfinite(out[key]).all(), key
    assert_same_outputs(out, seqapps.load(tmp_path / "run").call(**batch), f"{name} bfloat16 export vs memory")


# -- the property: an input's answer does not depend on its batch -----------------------------------
def test_an_inputs_answer_does_not_depend_on_its_batch(trained):
    name, predictor = trained["task"].name, trained["loaded"]
    failures = {}
    for signature in predictor.signatures:
        try:
            batch_independence(trained["task"], trained["loaded"], trained["meta"], signature, max_examples=6)
        except AssertionError as e:
            failures[(name, signature)] = " ".join(str(e).split())[:600]
    known = {k: v for k, v in BATCH_DEPENDENT.items() if k[0] == name}
    unexpected = {k: v for k, v in failures.items() if k not in known}
    assert not unexpected, "answers depend on the batch:\n" + "\n".join(f"{k}: {v}" for k, v in unexpected.items())
    fixed = sorted(set(known) - set(failures))
    assert not fixed, f"{fixed} no longer depend on the batch: remove them from BATCH_DEPENDENT"
    if known:
        pytest.xfail("; ".join(f"{k[1]}: {v}" for k, v in known.items()))


# -- bad input: refused by name, never a different answer ---------------------------------------------
#: per task, calls whose arguments are out of their documented range: (signature, {input: value})
OUT_OF_RANGE = {
    "translation": [("translate", {"beam_width": 0}), ("translate", {"beam_width": 10 ** 7}),
                    ("attention", {"beam_width": -3})],
    "char_lm": [("serving_default", {"top_p": 0.0}), ("serving_default", {"top_p": -1.0}),
                ("serving_default", {"temperature": -1.0}), ("serving_default", {"top_k": -1})],
}


def refused(predictor, signature, inputs, name) -> str:
    """The raw signature (as a server calls it, no Python checks in front) refuses ``inputs``
    with the documented 'invalid input: ...' error naming ``name``."""
    from seqapps.inference import checks

    fn, specs = predictor.signatures[signature]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()})
    text = checks.message(info.value)
    assert text and name in text, f"{signature} {name}: {' '.join(str(info.value).split())[:300]}"
    return text


def test_arguments_out_of_range_are_refused_by_name(trained):
    """Every float argument refuses NaN and inf, every fixed axis its wrong size, and each
    task's documented limits hold, in the export itself (not only in the Python helpers)."""
    task, predictor, meta = trained["task"], trained["loaded"], trained["meta"]
    for i, (signature, (_, specs)) in enumerate(predictor.signatures.items()):
        good = make_batch(specs, task.sample_inputs(np.random.default_rng(i), 2, meta, signature))
        for name, spec in specs.items():
            if spec.dtype.is_floating:
                for bad in (float("nan"), float("inf")):
                    value = np.full_like(np.asarray(good[name], dtype=np.float32), bad)
                    refused(predictor, signature, {**good, name: value if spec.shape.rank else bad}, name)
            fixed = [a for a, d in enumerate(spec.shape.as_list()) if d is not None and a > 0]
            for axis in fixed:
                wrong = np.concatenate([good[name], np.take(good[name], [0], axis=axis)], axis=axis)
                refused(predictor, signature, {**good, name: wrong}, name)
    for signature, change in OUT_OF_RANGE.get(task.name, []):
        specs = predictor.signatures[signature][1]
        good = make_batch(specs, task.sample_inputs(np.random.default_rng(0), 2, meta, signature))
        refused(predictor, signature, {**good, **change}, next(iter(change)))


def test_python_helpers_refuse_wrong_types_by_name(trained):
    from seqapps.core.errors import SeqappsError

    predictor = trained["loaded"]
    for bad in (None, 5, [object()]):
        with pytest.raises(SeqappsError):
            predictor.predict(bad)


def test_every_signature_survives_hostile_inputs(trained):
    """A bounded fuzz of each signature (random bytes, NaN/inf, extreme integers, batches of
    0..5): each call answers one row per input or raises seqapps' own error."""
    from seqapps.core.testing import fuzz_signature

    for signature in trained["loaded"].signatures:
        counts = fuzz_signature(trained["loaded"], signature, max_examples=6, seed=0)
        assert counts["tried"] == 6, counts


def test_exports_are_readable_by_other_users(trained):
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    for path in [trained["export"], *trained["export"].rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = (0o777 if path.is_dir() else 0o666) & ~mask & 0o444
        assert mode & wanted == wanted, f"{path} has mode {oct(mode)}"
