"""Building and placing models and their input pipelines: what every phase of ``tfrec train`` uses.

``model.fit`` is the only training loop; this module only chooses where the model lives (a
``tf.distribute`` strategy), compiles it with its family's defaults, and builds the pipelines that
``fit`` and ``evaluate`` read.
"""

from __future__ import annotations

import contextlib

from tfrec._keras import tf

from tfrec import cluster, families, registry
from tfrec import data as tfdata
from tfrec.config import TrainConfig
from tfrec.errors import TfrecError
from tfrec.models._base import PAIR_FEATURES


def strategy(kind: str = "auto", shards: str | None = None) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy to build and train under: the ``tfrec.registry.strategies`` entry
    ``kind`` (``auto``, ``default``, ``mirrored``, ``multi-worker``, ``parameter-server`` are built in;
    :mod:`tfrec.strategies`) given ``shards``."""
    return registry.strategies.entry(kind).load()(shards)


def workers(strategy_: tf.distribute.Strategy) -> int:
    """How many processes (workers) train together: 1 except under MultiWorkerMirroredStrategy."""
    if not isinstance(strategy_, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    return strategy_.num_replicas_in_sync // max(1, len(strategy_.extended.worker_devices))


def configure_threads(model: str, intra_op: int | None = None, inter_op: int | None = None) -> tuple[int, int]:
    """Sets TensorFlow's thread pools for training ``model`` in this process; call before any TF op runs.

    For an application (``tfrec train``, ``tfrec bench``), not for library code: the setting is
    process-wide. ``intra_op`` None: the family's ``threads_per_op`` (``tfrec.families``): 1 for the
    embedding models (MF, biased MF, NCF, FM), whose steps are chains of small ops that lose more to
    splitting each op between threads than they gain, and for AutoRec, whose step is dense matrix
    products, as many as ``inter_op`` (None: TensorFlow's default, one per core).
    ``inter_op`` None: TensorFlow's default (one per core), so independent ops still run side by side.

    Returns:
      ``(intra_op, inter_op)`` as set (0: TensorFlow's default).

    Raises:
      TfrecError: TensorFlow's runtime has started already, or a count is negative.
    """
    inter_op = inter_op or 0
    if intra_op is None:
        intra_op = inter_op if families.family(model).threads_per_op == "all" else 1
    if intra_op < 0 or inter_op < 0:
        raise TfrecError(f"thread counts must be at least 0 (0: TensorFlow's default), got {intra_op}, {inter_op}")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as e:
        raise TfrecError(f"cannot set TensorFlow's threads now: {e}") from None
    return intra_op, inter_op


def is_chief(strategy_: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: the chief, or worker 0 of a cluster without one."""
    resolver = getattr(strategy_, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def model_kwargs(config: TrainConfig) -> dict:
    """Constructor arguments of ``config.model`` from a checked config (its family's ``arguments``)."""
    return families.model_arguments(config.model, config)


def build(model: str, train: tfdata.Ratings, config: TrainConfig | None = None, strategy_=None, **kwargs):
    """Creates and compiles a model from a training table under a strategy.

    Args:
      model: A registered model name (``tfrec.families.names()``).
      train: The training table (vocabularies, mean and range come from it).
      config: Optimizer, learning rate, model options, steps per execution;
        default ``TrainConfig(model=model)``.
      strategy_: The strategy; default ``strategy(config.strategy)``.
      **kwargs: Extra model constructor arguments (override the config's).

    Returns:
      The compiled model; its variables (weights and optimizer slots, created here so that ``fit``
      traces its step once: ``RatingModel.create_variables``) live under the strategy.
    """
    config = config or TrainConfig(model=model)
    config.for_data(train.feedback)  # interactions without ratings: implicit feedback
    strategy_ = strategy_ or strategy(config.strategy)
    # Under parameter servers, a table's pieces start as the rows of the whole table would.
    pieces = cluster.initialized_as_whole() if cluster.is_parameter_server(strategy_) else contextlib.nullcontext()
    with strategy_.scope(), pieces:
        net = families.model_class(model).from_table(train, **{**model_kwargs(config), **kwargs})
        optimizer = registry.optimizers.entry(config.optimizer).load()(learning_rate=config.learning_rate)
        if net.mixed_precision == "float16":  # dynamic loss scaling, as Keras does for a mixed_float16 model
            optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
        net.compile(
            optimizer=optimizer,
            steps_per_execution=config.steps_per_execution,
        )
        net.create_variables()
    return net


def training_dataset(
    config: TrainConfig,
    train: tfdata.Ratings,
    model,
    drop_remainder: bool = False,
    first_epoch: int = 1,
    workers: int = 1,
):
    """The shuffled training pipeline of ``model`` (its ``training_dataset``) with ``config``'s batch and seed.

    Rating pairs as the model's row numbers, implicit pairs with sampled negatives, or rating vectors.
    ``first_epoch``: the epoch its first pass is (a run resumed after epoch ``e`` passes ``e + 1``).
    ``workers``: under MultiWorkerMirroredStrategy, the number of processes. Every worker builds the
    same sequence of batches of ``batch_size / workers`` (same seed) and Keras shards it by batch
    (``AutoShardPolicy.DATA``), so a step's global batch is ``batch_size`` rows, as on one device.
    """
    batch_size = config.batch_size
    if workers > 1:
        if batch_size % workers:
            raise TfrecError(f"batch_size {batch_size} does not split evenly over {workers} workers")
        batch_size, drop_remainder = batch_size // workers, True
    options = {name: config.value(name) for name, spec in config.family.options.items() if spec.get("pipeline")}
    ds = model.training_dataset(
        train, batch_size, shuffle=True, seed=config.seed, drop_remainder=drop_remainder, first_epoch=first_epoch,
        **options,
    )  # fmt: skip
    return _by_batch(ds) if workers > 1 else ds


def evaluation_dataset(table: tfdata.Ratings, batch_size: int, model=None, workers: int = 1, cache: bool = False):
    """Rating pairs in order, to score: ``fit``'s ``validation_data`` (``cache=True``) and the test part.

    With ``model``, the ids come as its row numbers (no string lookups in the test step), and
    validation and test batches have one signature, so the test step is traced once: a test
    ``evaluate`` after ``fit`` on the id strings traced it again. ``cache`` keeps the batches after
    the first pass (on one worker); with :func:`endless` Keras then keeps one iterator, and a later
    epoch's validation pass reads memory instead of gathering again. The cache holds the pairs once
    more (16-20 bytes a rating).
    """
    ds = tfdata.dataset(table, batch_size, features=PAIR_FEATURES, vocabularies=_vocabularies(model))
    if workers > 1:
        return _by_batch(ds)
    # A streamed part is read again each pass: cached, it would grow with the data.
    return ds.cache() if cache and not getattr(table, "streamed", False) else ds


def _vocabularies(model):
    return None if model is None else (model.user_vocabulary, model.item_vocabulary)


def endless(ds, n_workers: int = 1):
    """``(dataset, steps)`` for ``fit``: the pipeline repeated, with the epoch length given.

    For training data ``steps`` is ``steps_per_epoch``; for :func:`evaluation_dataset`, ``validation_steps``.

    Keras makes a new iterator every epoch of a finite dataset, a fixed cost that is a real share of
    a short epoch; with ``steps_per_epoch`` and an endless dataset it keeps one. Each repetition is
    the next epoch (the pipeline's own counter draws its order), so the batches are the ones the
    finite dataset gives. Multi-worker runs keep the finite form: there the per-worker epoch length
    depends on the sharding.
    """
    if n_workers > 1:
        return ds, None
    return ds.repeat(), int(ds.cardinality())


def _by_batch(ds):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
