"""Tables split over parameter servers: the pieces ``tfrec train --strategy parameter-server`` needs.

TensorFlow's ``ParameterServerStrategy`` is the engine: a ``chief`` process runs ``model.fit``
through a cluster coordinator, ``worker`` processes run the training steps, and ``ps``
processes hold the variables. A variable partitioner splits every variable by rows into a
``ShardedVariable`` whose pieces live on different parameter servers, so an embedding table
is bounded by the cluster's memory, not one machine's; a worker reads the rows of a batch
and sends back sparse updates. This module adds what tfrec's models and ``tfrec train``
need around it:

- :func:`parameter_server_strategy` reads ``TF_CONFIG`` and picks the partitioner
  (``--shards``); :func:`serve` runs a ``worker`` or ``ps`` task and ends when the chief has gone.
- :func:`training_data`: ``fit``'s input as a ``DatasetCreator``: each worker reads every
  ``n``-th batch of the same endless sequence of epochs (no variable in the pipeline, which
  ``dataset_fn`` forbids), and an epoch is as many steps as one pass has batches.
- :class:`ChiefValidation`: validation RMSE/MAE computed on the chief, each rating once.
  Keras' exact evaluation under this strategy (``pss_evaluation_shards``) skips a model's own
  ``test_step``, where TFRS models compute their metrics; the chief reads only the rows a
  validation batch looks up.
- :func:`unsharded`: a copy of the model with whole tables, for export and ``--save``.
  A SavedModel of sharded variables does not load with ``tf.saved_model.load`` alone.
- :func:`initialized_as_whole`: every piece of a split variable starts with the rows the whole
  variable would have had, so a sharded model starts where the same model on one device starts
  (Keras' initializers draw each piece on its own, and scale Glorot and He draws by the piece's
  shape instead of the variable's).

tfrec's native optimizer kernels do not run on a parameter server's variables (the op would
have to be registered in every ``ps`` process); TensorFlow's kernels update them
(``tfrec.ops``): a parameter server's step is bound by the round trips, not by the update.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import re
import socket
import time
import warnings
from pathlib import Path

import numpy as np
from tfrec import _internals
from tfrec._keras import tf

from tfrec.config import shard_spec
from tfrec.errors import TfrecError

#: ``MinSizePartitioner``'s default piece: smaller variables stay whole.
MIN_SHARD_BYTES = 256 << 10
#: Pieces :func:`initialized_as_whole` computed as rows of a whole variable's random stream, by draw kind
#: (``normal``, ``uniform``): how a test tells that path from the fallback that draws whole and cuts.
STREAMED_PIECES: collections.Counter = collections.Counter()


def resolver() -> tf.distribute.cluster_resolver.TFConfigClusterResolver:
    """The cluster and this process's task from ``TF_CONFIG``, checked for a chief, workers and ps tasks."""
    text = os.environ.get("TF_CONFIG")
    example = (
        '{"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"], "ps": ["host3:2222"]}, '
        '"task": {"type": "chief", "index": 0}}'
    )
    if not text:
        raise TfrecError(f"--strategy parameter-server needs TF_CONFIG with chief, worker and ps tasks, e.g. {example}")
    try:
        config = json.loads(text)
    except ValueError as e:
        raise TfrecError(f"TF_CONFIG is not JSON: {e}") from None
    cluster = config.get("cluster", {})
    missing = [job for job in ("chief", "worker", "ps") if not cluster.get(job)]
    if missing:
        raise TfrecError(f"TF_CONFIG's cluster has no {' or '.join(missing)} task: parameter-server needs all three")
    task = config.get("task", {}).get("type")
    if task not in ("chief", "worker", "ps"):
        raise TfrecError(f"TF_CONFIG's task type {task!r}: use chief, worker or ps")
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def local_cluster(workers: int = 2, ps: int = 2, chief: bool = True) -> dict:
    """A ``TF_CONFIG`` cluster on 127.0.0.1 ports that were free a moment ago: to try a cluster on one machine."""
    sockets = [socket.socket() for _ in range(int(chief) + workers + ps)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    jobs = {"chief": addresses[: int(chief)], "worker": addresses[int(chief) : int(chief) + workers]}
    jobs["ps"] = addresses[int(chief) + workers :]
    return {job: tasks for job, tasks in jobs.items() if tasks}


def partitioner(shards: str | None, num_ps: int):
    """The variable partitioner of ``--shards``: a fixed count, a maximum piece size, or the default."""
    parts = tf.distribute.experimental.partitioners
    if shards is None:
        return parts.MinSizePartitioner(min_shard_bytes=MIN_SHARD_BYTES, max_shards=num_ps)
    kind, value = shard_spec(shards)
    if kind == "shards":
        return parts.FixedShardsPartitioner(value)
    return parts.MaxSizePartitioner(max_shard_bytes=value)


def parameter_server_strategy(shards: str | None = None) -> tf.distribute.ParameterServerStrategy:
    """``ParameterServerStrategy`` over ``TF_CONFIG``'s cluster; this process must be its chief.

    ``GRPC_FAIL_FAST=use_caller`` (unless set) lets the coordinator see a lost worker and
    reschedule its steps on the others, as TensorFlow's guide advises.
    """
    found = resolver()
    if found.task_type != "chief":
        raise TfrecError(
            f"this process is the cluster's {found.task_type} task: run it with tfrec.cluster.serve() "
            "(tfrec train does that); only the chief trains"
        )
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    num_ps = len(found.cluster_spec().as_dict()["ps"])
    return tf.distribute.ParameterServerStrategy(found, variable_partitioner=partitioner(shards, num_ps))


def serve(poll_seconds: float = 1.0, grace_seconds: float = 5.0, announce=print) -> None:
    """Runs this process's ``worker`` or ``ps`` task until the chief has come and gone.

    TensorFlow's servers never return on their own; a cluster manager usually ends them. Here the
    task ends itself once the chief's address, answered at least once, has not answered for
    ``grace_seconds`` (a finished or killed chief).
    """
    found = resolver()
    if found.task_type not in ("worker", "ps"):
        raise TfrecError(f"serve() is for worker and ps tasks; this one is {found.task_type}")
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    spec = found.cluster_spec()
    server = tf.distribute.Server(
        spec, job_name=found.task_type, task_index=found.task_id, protocol=found.rpc_layer or "grpc", start=True
    )
    address = spec.task_address(found.task_type, found.task_id)
    before = memory()
    announce(f"tfrec: {found.task_type} {found.task_id} serving at {address} until the chief ends")
    _wait_for(spec.task_address("chief", 0), poll_seconds, grace_seconds)
    after = memory()
    if before and after:  # what this task held: a parameter server's share of the tables shows here
        announce(
            f"tfrec: {found.task_type} {found.task_id} done: resident memory {before['rss'] / 2**20:.1f} MB when it "
            f"started serving, peak {after['peak'] / 2**20:.1f} MB"
        )
    del server  # ends with the process


def memory() -> dict | None:
    """This process's resident memory now and at its peak, in bytes (``/proc/self/status``), or None."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    try:
        return {key: int(fields[name].split()[0]) * 1024 for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}
    except (KeyError, ValueError):
        return None


def _wait_for(address: str, poll_seconds: float, grace_seconds: float) -> None:
    host, port = address.rsplit(":", 1)
    seen, silent_since = False, None
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=poll_seconds):
                seen, silent_since = True, None
        except OSError:
            if seen:
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since >= grace_seconds:
                    return
        time.sleep(poll_seconds)


def is_parameter_server(strategy_) -> bool:
    return isinstance(strategy_, tf.distribute.ParameterServerStrategy)


def training_data(model, train, batch_size: int, seed: int, first_epoch: int = 1):
    """``fit``'s training input under the strategy: ``(DatasetCreator, steps_per_epoch)``.

    Every worker builds the same endless sequence of shuffled epochs (the model's
    ``training_dataset`` with ``endless=True``) and reads every ``n``-th batch of it, ``n`` the
    number of workers; ``steps_per_epoch`` is one pass's batches, spread over the workers.
    """
    steps = -(-len(train) // batch_size)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        share = (context.num_input_pipelines, context.input_pipeline_id)
        if getattr(train, "streamed", False):  # the worker opens its own share of the files
            return model.training_dataset(train, batch_size, shuffle=True, seed=seed, first_epoch=first_epoch,
                                          endless=True, shard=share)  # fmt: skip
        ds = model.training_dataset(train, batch_size, shuffle=True, seed=seed, first_epoch=first_epoch, endless=True)
        return ds.shard(*share)

    return tf.keras.utils.experimental.DatasetCreator(dataset_fn), steps


def metrics(model, table, batch_size: int = 8192) -> dict:
    """``{"rmse", "mae"}`` of ``model`` on ``table``, computed in this process (each rating once)."""
    from tfrec import data as tfdata

    squared = absolute = 0.0
    for batch in tfdata.dataset(table, batch_size):
        error = model(batch).numpy().astype(np.float64).reshape(-1) - batch["user_rating"].numpy()
        squared, absolute = squared + np.sum(error**2), absolute + np.sum(np.abs(error))
    return {"rmse": float(np.sqrt(squared / len(table))), "mae": float(absolute / len(table))}


class ChiefValidation(tf.keras.callbacks.Callback):
    """Adds ``val_rmse`` and ``val_mae``, computed on the chief, to each epoch's logs.

    Put it before the callbacks that read them (early stopping, TensorBoard): Keras hands every
    callback the same logs.
    """

    def __init__(self, table, batch_size: int = 8192):
        super().__init__()
        self.table, self.batch_size = table, batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({f"val_{k}": v for k, v in metrics(self.model, self.table, self.batch_size).items()})


def placement(model) -> dict:
    """Each sharded variable's pieces: ``{name: [{"device", "rows", "bytes"}, ...]}``, in row order."""
    pieces: dict[str, list] = {}
    for variable in model.weights:
        base, part = _piece(variable.name)
        if part is None:
            continue
        device = tf.DeviceSpec.from_string(variable.device)
        pieces.setdefault(base, []).append({
            "device": f"/job:{device.job}/task:{device.task}",
            "rows": int(variable.shape[0]),
            "bytes": int(np.prod(variable.shape)) * variable.dtype.size,
        })  # fmt: skip
    return pieces


def _piece(name: str) -> tuple[str, int | None]:
    """``("a/b", 1)`` for a piece named ``a/b/part_1:0``; ``(name, None)`` for a whole variable."""
    match = re.fullmatch(r"(.*)/part_(\d+)(:\d+)?", name)
    return (match[1], int(match[2])) if match else (name.split(":")[0], None)


def unsharded(model, build_whole):
    """A copy of ``model`` whose variables are whole, with the same values.

    ``build_whole()`` builds the same model (same class, table and config) outside the strategy,
    its variables created or not (a tfrec model's are created here); its weights are then set from
    ``model``'s, each sharded variable's pieces joined in row order.
    """
    values, pending, pending_base = [], [], None
    for variable in model.weights:
        base, part = _piece(variable.name)
        if part is None or base != pending_base:
            if pending:
                values.append(np.concatenate(pending, axis=0))
            pending, pending_base = [], base if part is not None else None
        if part is None:
            values.append(variable.numpy())
        else:
            pending.append(variable.numpy())
    if pending:
        values.append(np.concatenate(pending, axis=0))
    with tf.distribute.get_strategy().scope():
        whole = build_whole()
        if not whole.built and hasattr(whole, "create_variables"):
            whole.create_variables()
    if [tuple(w.shape) for w in whole.weights] != [v.shape for v in values]:
        raise TfrecError("the whole model's weights do not line up with the sharded model's pieces")
    whole.set_weights(values)
    return whole


@contextlib.contextmanager
def initialized_as_whole():
    """Under it, each piece of a variable split over parameter servers starts as those rows of the whole.

    Enter it inside the strategy's scope, around building the model (``tfrec.train.build`` does)::

        with strategy.scope(), tfrec.cluster.initialized_as_whole():
            model = ...

    Keras' initializers, asked for a piece, draw it with a seed of its own and compute Glorot's
    and He's scale from the piece's shape: a ``Dense`` kernel cut in two starts 22% wider than
    whole, and no piece equals the one-device model's rows. Here a Keras normal or uniform draw
    (``RandomNormal``, ``RandomUniform``, the ``VarianceScaling`` family with a uniform or
    untruncated normal distribution) is made piece by piece, each parameter server computing only
    its own rows of the same counter-based stream; constant initializers are cut as they are;
    any other initializer (truncated normal, orthogonal, your own) draws the whole variable on the
    piece's server and keeps its rows, so such a variable must fit one server while it is created.
    With the same seed, the model's joined pieces equal the one-device model's weights exactly.
    """

    def creator(next_creator, **kwargs):
        value = kwargs.get("initial_value")
        if isinstance(value, functools.partial) and isinstance(value.func, tf.keras.initializers.Initializer):
            kwargs["initial_value"] = _rows_of_whole(value)
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield


def _rows_of_whole(call: functools.partial):
    """``call`` (Keras' ``partial(initializer, shape, dtype=...)``) as a function that can also return rows.

    ``ParameterServerStrategy`` calls it with ``partition_shape`` and ``partition_offset`` for a
    piece, and with nothing for a variable it leaves whole.
    """
    initializer, shape = call.func, tf.TensorShape(call.args[0])
    dtype = tf.as_dtype(call.keywords.get("dtype") or tf.keras.backend.floatx())

    constant = isinstance(initializer, (tf.keras.initializers.Zeros, tf.keras.initializers.Ones)) or (
        isinstance(initializer, tf.keras.initializers.Constant) and np.ndim(initializer.value) == 0
    )
    draws = []  # the whole variable's draw, asked of the initializer once, at its first piece

    def initial_value(partition_shape=None, partition_offset=None):
        if partition_shape is None:
            return call()
        if constant:
            return call(partition_shape=partition_shape, partition_offset=partition_offset)
        if not draws:
            draws.append(_stream_draw(initializer, shape, dtype))
        start, rows = int(partition_offset[0]), int(partition_shape[0])
        if draws[0] is None:
            # A stateless draw gives the same whole at each call: Keras' warning about reuse does not apply.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "The initializer .* is unseeded and being called multiple times")
                return call()[start : start + rows]
        return _stream_rows(*draws[0], shape, dtype, start, rows)

    return initial_value


class _DrawRecorder:
    """Stands in for a Keras initializer's random generator and records the draw it asks for."""

    def random_normal(self, shape, mean=0.0, stddev=1.0, dtype=None, nonce=None):
        return ("normal", mean, stddev)

    def random_uniform(self, shape, minval=0.0, maxval=None, dtype=None, nonce=None):
        return ("uniform", minval, maxval)

    def truncated_normal(self, shape, mean=0.0, stddev=1.0, dtype=None, nonce=None):
        return None  # rejection sampling: a row's values depend on the rows before it


def _stream_draw(initializer, shape, dtype):
    """``(kind, a, b, seed)`` of a Keras initializer's stateless draw for the whole ``shape``, or None.

    Keras' own ``__call__`` runs against a recorder, so the scale (Glorot's and He's fans) is
    Keras' own arithmetic on the whole shape.
    """
    generator = _internals.initializer_generator(initializer)
    if generator is None or not dtype.is_floating or not hasattr(generator, "make_seed_for_stateless_op"):
        return None
    seed = generator.make_seed_for_stateless_op()  # draws the seed now, in the order one device does
    if seed is None or isinstance(seed, tf.Tensor):  # a stateful or legacy generator: no stream to cut
        return None
    with _internals.generator_swapped(initializer, _DrawRecorder()):
        try:
            draw = initializer(shape.as_list(), dtype=dtype)
        except (TypeError, ValueError):  # an initializer that does more with its draw than return it
            draw = None
    if not isinstance(draw, tuple):
        return None
    return (*draw, [int(seed[0]), int(seed[1])])


def _stream_rows(kind: str, a, b, seed, shape: tf.TensorShape, dtype, start: int, rows: int):
    """Rows ``start:start + rows`` of ``tf.random.stateless_normal/uniform(shape, seed)``, computed alone.

    Both are counter-based (Philox): the flat output's element ``k`` comes from counter step
    ``k // n``, lane ``k % n`` (``n`` values per step: 2 for 64-bit types, 4 otherwise), so the
    rows are the same draw started ``start * width // n`` steps on.
    """
    STREAMED_PIECES[kind] += 1
    width = int(np.prod(shape[1:], dtype=np.int64))
    per_step = 2 if dtype.size == 8 else 4
    steps, lead = divmod(start * width, per_step)
    with tf.init_scope():
        key, counter, alg = tf.raw_ops.StatelessRandomGetKeyCounterAlg(seed=tf.constant(seed, tf.int64))
        low, high = (int(c) for c in counter.numpy().astype(np.uint64))
        low += steps
        counter = tf.constant(np.array([low % 2**64, (high + low // 2**64) % 2**64], np.uint64))
    op = tf.raw_ops.StatelessRandomNormalV2 if kind == "normal" else tf.raw_ops.StatelessRandomUniformV2
    flat = op(shape=[rows * width + lead], key=key, counter=counter, alg=alg, dtype=dtype)[lead:]
    values = tf.reshape(flat, [rows, *shape[1:]])
    a, b = tf.convert_to_tensor(a, dtype), tf.convert_to_tensor(b, dtype)
    # The same arithmetic as tf.random.stateless_normal (x * stddev + mean) and _uniform (x * (b - a) + a).
    return values * b + a if kind == "normal" else values * (b - a) + a
