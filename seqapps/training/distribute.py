"""Distribution strategies: one process, several local devices, or several worker processes.

``train.strategy``:

- ``default`` -- one device (or, on the JAX backend, ``keras.distribution.DataParallel``
  over every local device when there are several);
- ``mirrored`` -- ``tf.distribute.MirroredStrategy`` over the local devices;
- ``multiworker`` -- ``tf.distribute.MultiWorkerMirroredStrategy`` over the cluster that
  ``TF_CONFIG`` names (one process per worker, started with the same command). Only the
  chief (worker 0, or the task of type ``chief``) writes the run directory; the other
  workers write into a temporary folder that is removed at the end, and restore from the
  chief's backup when the run resumes, so the run directory is expected on a filesystem
  every worker sees (one machine, or a shared one), as Keras' multi-worker guidance says.

Keras 3's TensorFlow trainer does not run ``MultiWorkerMirroredStrategy`` as released
(keras-team/keras#20585): it builds the model from an eager cross-worker ``reduce`` of a
batch, and reduces scalar logs on axis 0. :func:`_fix_keras_multiworker` replaces those two
steps -- the model is built from this worker's first local batch, scalars are averaged
without an axis -- and leaves every other strategy's path as it is.
"""

from __future__ import annotations

import contextlib
import json
import os

from seqapps.core.errors import ConfigError

EXAMPLE = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]}, '
           '"task": {"type": "worker", "index": 0}}\'')


def tf_config() -> dict:
    """``TF_CONFIG`` (the cluster and this worker's place in it) as a dict, checked: a missing
    or malformed one is a ConfigError saying what a multi-worker training needs."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise ConfigError(f"train.strategy=multiworker needs TF_CONFIG naming the cluster and this worker; {EXAMPLE}")
    try:
        conf = json.loads(raw)
        cluster, kind, index = conf["cluster"], conf["task"]["type"], int(conf["task"]["index"])
        members = cluster.get(kind)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ConfigError(f"TF_CONFIG is not valid ({type(e).__name__}: {e}); {EXAMPLE}") from None
    if kind not in ("worker", "chief") or not isinstance(members, list) or not 0 <= index < len(members):
        raise ConfigError(f"TF_CONFIG's task {conf['task']} is not in its cluster {cluster}; {EXAMPLE}")
    if not all(isinstance(a, str) and ":" in a for group in cluster.values() for a in group):
        raise ConfigError(f"TF_CONFIG's cluster addresses must be 'host:port' strings, got {cluster}")
    return conf


def wait_for_workers(timeout: float, poll: float = 0.2) -> None:
    """Wait until every worker of ``TF_CONFIG`` has started, at most ``timeout`` seconds
    (``train.worker_timeout``); then one ConfigError naming those that never came.

    TensorFlow's multi-worker start-up waits for missing workers for an hour, deaf to Ctrl-C and
    SIGTERM. So before it starts, each worker listens on its own address (the kernel completes the
    connections; nothing is accepted or sent) and connects to every other one's: a worker that has
    already moved on listens there with TensorFlow's server, which counts as well. This wait is
    Python's, so SIGINT and SIGTERM stop it at once."""
    import socket
    import time

    conf = tf_config()
    me = conf["cluster"][conf["task"]["type"]][int(conf["task"]["index"])]
    waiting = [a for group in conf["cluster"].values() for a in group if a != me]
    listener = socket.socket(socket.AF_INET6 if ":" in me.rpartition(":")[0] else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", int(me.rpartition(":")[2])))
        listener.listen(64)
    except OSError as e:
        listener.close()
        raise ConfigError(f"this worker's address {me} (TF_CONFIG) cannot be listened on: {e.strerror}") from None
    deadline = time.monotonic() + timeout
    try:
        while waiting:
            for address in list(waiting):
                host, _, port = address.rpartition(":")
                try:
                    with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                        waiting.remove(address)
                except OSError:
                    pass
            if waiting and time.monotonic() > deadline:
                raise ConfigError(f"worker(s) {', '.join(waiting)} of TF_CONFIG did not start within {timeout:g} s; "
                                  "start every worker with the same command, or raise train.worker_timeout")
            if waiting:
                time.sleep(poll)
    finally:
        listener.close()  # unaccepted connections are reset: the port is free for TensorFlow's server


def worker_place() -> tuple[int, int]:
    """(this worker's index, the number of workers) of ``TF_CONFIG``'s cluster, a chief first."""
    conf = tf_config()
    chiefs, workers = conf["cluster"].get("chief", []), conf["cluster"].get("worker", [])
    index = int(conf["task"]["index"]) + (len(chiefs) if conf["task"]["type"] == "worker" else 0)
    return index, len(chiefs) + len(workers)


def is_chief(strategy_name: str) -> bool:
    """Whether this process writes the run directory (always, except a non-chief worker)."""
    return strategy_name != "multiworker" or worker_place()[0] == 0


_MIRRORED = []
_MULTIWORKER = []  # made once per process: collective ops are configured before any other TensorFlow work


def make_strategy(name: str, worker_timeout: float | None = None):
    """The ``tf.distribute`` strategy ``train.strategy`` names (TensorFlow backend). A
    multi-worker strategy must be made before the process runs any TensorFlow op: training
    makes it first thing (with ``worker_timeout``: then waits for the other workers, see
    :func:`wait_for_workers`), and later calls get the same one."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":  # one per process: a second one's collectives clash with the first's (shape mismatch)
        if not _MIRRORED:
            _MIRRORED.append(tf.distribute.MirroredStrategy())
        return _MIRRORED[0]
    if name == "multiworker":
        if not _MULTIWORKER:
            tf_config()
            _fix_keras_multiworker()
            if worker_timeout:
                wait_for_workers(worker_timeout)
            try:
                _MULTIWORKER.append(tf.distribute.MultiWorkerMirroredStrategy())
            except RuntimeError as e:
                raise ConfigError(f"cannot start a multi-worker training in this process ({e}): start it as "
                                  "its own process, e.g. python -m seqapps train ... --strategy multiworker") from None
        return _MULTIWORKER[0]
    raise ConfigError(f"train.strategy must be default, mirrored or multiworker, got {name!r}")


@contextlib.contextmanager
def jax_data_parallel(name: str):
    """On the JAX backend: ``keras.distribution.DataParallel`` over the local devices inside the
    block, for ``default`` (when there are several) and ``mirrored``; yields the number of
    devices, and puts the previous distribution back after the block."""
    import keras

    if name == "multiworker":
        raise ConfigError("train.strategy=multiworker runs on the TensorFlow backend; pass --backend tensorflow")
    devices = keras.distribution.list_devices()
    before = keras.distribution.distribution()
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        yield len(devices)
    finally:
        keras.distribution.set_distribution(before)


_FIXED = []


def _fix_keras_multiworker() -> None:
    """See the module docstring; applied once, only when a multi-worker strategy is made."""
    if _FIXED:
        return
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    def symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tree.map_structure(
                    lambda x: self.distribute_strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues) else x, batch)
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    released = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            def mean(v):
                if not trainer._is_per_replica_instance(v):
                    return v
                return strategy.reduce("MEAN", v, axis=0 if v.values[0].shape.rank else None)
            return tree.map_structure(mean, values)
        return released(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    _FIXED.append(True)


def per_replica(batch_size: int) -> int:
    """``batch_size`` as each replica of the enclosing ``tf.distribute`` scope sees it (a
    stateful layer's fixed batch size); it must split evenly."""
    from seqapps.training import backends as engine

    if engine.current_backend() != "tensorflow":
        return batch_size
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if batch_size % replicas:
        raise ConfigError(f"train.batch_size={batch_size} does not split over {replicas} replicas; "
                          f"use a multiple of {replicas}")
    return batch_size // replicas
