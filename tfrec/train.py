"""Building, placing and fitting models: the code behind ``tfrec train``.

``model.fit`` is the only training loop; this module only chooses where the
model lives (a ``tf.distribute`` strategy), compiles it with measured defaults,
and wires data, early stopping and evaluation together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time

import numpy as np
from tfrec._keras import tf

from tfrec import cluster, families, registry
from tfrec import data as tfdata
from tfrec.checkpoints import ResumableEarlyStopping, RunDirectory
from tfrec.config import TrainConfig
from tfrec.data.implicit import ranking_candidates
from tfrec.errors import TfrecError
from tfrec.metrics import RankingMetrics, most_popular, ranking_metrics
from tfrec.models._base import PAIR_FEATURES

RANKING_NEGATIVES, RANKING_K = 99, 10  # the NCF evaluation protocol


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
    return ds.cache() if cache else ds


def _vocabularies(model):
    return None if model is None else (model.user_vocabulary, model.item_vocabulary)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`run` returns: the report (plain values, what ``--json`` writes) and the live objects apart.

    Attributes:
      report: ``{"test_rmse", "test_mae", "epochs", "best_epoch", "refit_epochs", "validation",
        "fit_seconds", "split_fingerprint", "devices", "workers", "chief", "config"}``
        (``validation``: the monitored score at the best epoch; ``stopped``: ``early stopping``,
        ``epoch cap`` (validation still improving when ``epochs`` ran out) or ``epochs``);
        implicit runs have ``test_rmse``/``test_mae`` None and add ``test_hit_rate@10``, ``test_ndcg@10``,
        ``popular_hit_rate@10``, ``popular_ndcg@10``.
      model: The trained Keras model.
      train: The training part, whose ratings ``tfrec.export.save`` leaves out of recommendations.
    """

    report: dict
    model: object
    train: tfdata.Ratings


def run(config: TrainConfig, verbose: int = 1, callbacks=(), tensorboard=None) -> RunResult:
    """Loads, splits, fits with early stopping and evaluates: ``tfrec train``.

    Explicit feedback stops on validation RMSE (a random ``validation_fraction``
    of the training part) and reports test RMSE and MAE. Implicit feedback
    follows the NCF protocol: it stops on validation NDCG@10 (each user's latest
    training interaction against 99 sampled items) and reports test HR@10 and
    NDCG@10 beside the most-popular baseline's on the same candidates.

    Args:
      config: What to train and how.
      verbose: Keras' ``fit`` verbosity.
      callbacks: More Keras callbacks for every ``fit`` (the early-stopping one is tfrec's).
      tensorboard: A directory for Keras' TensorBoard logs: per epoch, the training loss,
        regularization loss, RMSE and MAE, and the validation metrics (implicit runs: HR@10 and
        NDCG@10); a refit's epochs under ``refit/``. A program calling ``fit`` itself passes
        ``tf.keras.callbacks.TensorBoard(DIR)`` to it.

    Returns:
      A :class:`RunResult`: the report, the trained model and the training part.
    """
    config.check()
    if config.splits_tables:  # before the strategy, which waits for the cluster
        _check_shardable(config)
    strategy_ = strategy(config.strategy, config.shards)  # first: MultiWorkerMirroredStrategy precedes other TF work
    n_workers = workers(strategy_)
    sharded = cluster.is_parameter_server(strategy_)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    tf.keras.utils.set_random_seed(config.seed)
    run_dir = None
    table = tfdata.load(config.data, columns=config.columns, delimiter=config.delimiter)
    config.for_data(table.feedback)  # a file without ratings trains on implicit feedback
    if sharded:
        _check_shardable(config)  # again: the data may have made the run implicit
    if config.checkpoint_dir:
        if n_workers > 1:
            raise TfrecError(
                "--checkpoint-dir is for one process; a multi-worker cluster resumes with its own checkpoints"
            )
        run_dir = RunDirectory(config.checkpoint_dir, _resumable(config))
    parts = tfdata.split(table, config.split, seed=config.seed)
    train, validation = parts.train, None
    if config.validation_fraction > 0:
        cut = tfdata.leave_last_out(train) if config.implicit else tfdata.random_split(
            train, config.validation_fraction, seed=config.seed)  # fmt: skip
        train, validation = cut.train, cut.test
    several = strategy_.num_replicas_in_sync > 1
    eval_size = max(config.batch_size, 8192) if n_workers == 1 else config.batch_size
    # Two test examples, drawn only when a resumed phase has nothing left to fit: calling the model on
    # them creates its variables, which take the checkpoint's values.
    phases = _Phases(n_workers, run_dir, lambda: next(iter(tfdata.dataset(parts.test, 2))), verbose)
    kernel_seconds = _prepare_kernels()
    start = time.perf_counter()
    refitting = run_dir is not None and run_dir.state is not None and run_dir.state["phase"] == "refit"
    monitored = None
    if refitting:  # a resumed run killed while refitting: the first fit is done
        fit_logs, monitored = run_dir.state["fit_logs"], run_dir.state["monitored"]
    else:
        net = build(config.model, train, config, strategy_)
        done, fit_logs, saved = run_dir.resume("fit") if run_dir else (0, [], None)
        watch, val_ds, stopper = [], None, None
        if validation is not None and config.implicit:
            candidates = ranking_candidates(validation, table, RANKING_NEGATIVES, seed=config.seed)
            watch = [RankingMetrics(candidates, RANKING_K)]
            monitored, mode = f"val_ndcg@{RANKING_K}", "max"
        elif validation is not None:
            if sharded:  # computed on the chief, each rating once
                watch = [cluster.ChiefValidation(validation, eval_size)]
            else:
                val_ds = evaluation_dataset(validation, eval_size, net, n_workers, cache=True)
            monitored, mode = "val_rmse", "min"
        if monitored:
            best_weights = run_dir.best_weights("fit") if run_dir else None
            stopper = _stopper(monitored, mode, config.patience, saved, best_weights)
        train_ds = _training_input(config, train, net, sharded, several, done + 1, n_workers)
        built_from = train
        watch += [stopper] if stopper else []
        phases.fit(
            net, train_ds, "fit", done, config.epochs, fit_logs, [*watch, *callbacks, *_board(tensorboard)], val_ds,
            stopper,
            {"monitored": monitored},
        )  # fmt: skip
    scores = [logs[monitored] for logs in fit_logs if monitored in logs] if monitored else None
    best = (np.argmax(scores) if config.implicit else np.argmin(scores)) if scores else None
    stopped = _why_stopped(config, len(fit_logs), best)
    refit_epochs = None
    if config.refit and best is not None:
        # Early stopping chose the epoch count; train a fresh model on the whole training part for it.
        tf.keras.utils.set_random_seed(config.seed)
        net = build(config.model, parts.train, config, strategy_)
        refit_epochs = int(best) + 1
        done, refit_logs, _ = run_dir.resume("refit") if run_dir else (0, [], None)
        full_ds = _training_input(config, parts.train, net, sharded, several, done + 1, n_workers)
        built_from = parts.train
        phases.fit(
            net, full_ds, "refit", done, refit_epochs, refit_logs, [*callbacks, *_board(tensorboard, "refit")],
            extra={"fit_logs": fit_logs, "monitored": monitored},
        )  # fmt: skip
    elif validation is not None:
        net.set_ratings(parts.train)  # the validation cut's ratings are known ratings: inputs again (AutoRec)
    fit_seconds = time.perf_counter() - start
    summary = {"test_rmse": None, "test_mae": None}
    if config.implicit:
        candidates = ranking_candidates(parts.test, table, RANKING_NEGATIVES, seed=config.seed)
        summary.update({f"test_{k}": v for k, v in ranking_metrics(net, candidates, RANKING_K).items()})
        popular = ranking_metrics(most_popular(parts.train), candidates, RANKING_K)
        summary.update({f"popular_{k}": v for k, v in popular.items()})
    elif n_workers > 1 or sharded:  # every worker holds the whole model / the chief reads the rows it needs
        summary.update(_local_metrics(net, parts.test))
    else:
        result = net.evaluate(evaluation_dataset(parts.test, eval_size, net), return_dict=True, verbose=0)
        summary.update(test_rmse=float(result["rmse"]), test_mae=float(result["mae"]))
    if not config.implicit:  # what a model that learned nothing scores: the training mean for every pair
        mean = parts.train.rating.astype(np.float64).mean()
        summary["mean_test_rmse"] = float(np.sqrt(np.mean((parts.test.rating.astype(np.float64) - mean) ** 2)))
    report = {
        **summary,
        "epochs": len(fit_logs),
        "best_epoch": int(best) + 1 if best is not None else None,
        "refit_epochs": refit_epochs,
        "stopped": stopped,
        "validation": {monitored: float(scores[best])} if best is not None else None,
        "fit_seconds": round(fit_seconds, 3),
        "kernel_build_seconds": kernel_seconds,
        "split_fingerprint": parts.fingerprint,
        "source": table.source,
        "devices": _devices(strategy_, net),
        "workers": n_workers,
        "chief": is_chief(strategy_),
        "config": config.as_dict(),
    }
    if sharded:
        gathered, net = _gathered(net, config, built_from, parts.test)
        report.update(gathered)
    if run_dir is not None:
        run_dir.finish(report)
    return RunResult(report, net, parts.train)


def _check_shardable(config: TrainConfig) -> None:
    """What parameter-server training does not do (yet), each refused with its reason."""
    if families.model_class(config.model).vector_kind(config.model):
        raise TfrecError(
            f"{config.model} trains on rating vectors with dense layers, which parameter servers gain nothing "
            "from splitting: use --strategy auto or multi-worker"
        )
    if config.implicit:
        raise TfrecError("--strategy parameter-server trains on explicit ratings; implicit feedback is not supported")


def _training_input(config: TrainConfig, table, net, sharded: bool, several: bool, first_epoch: int, n_workers: int):
    """``fit``'s training input: ``tfrec.cluster``'s under parameter servers, else :func:`training_dataset`'s."""
    if sharded:
        return cluster.training_data(net, table, config.batch_size, config.seed, first_epoch=first_epoch)
    return training_dataset(config, table, net, drop_remainder=several, first_epoch=first_epoch, workers=n_workers)


def _gathered(net, config: TrainConfig, built_from, test) -> tuple[dict, object]:
    """``(report entries, whole model)``: where the pieces lived, and a whole copy of the model checked
    against the sharded one on ``test``."""
    placement = cluster.placement(net)

    def build_whole():
        local = dataclasses.replace(config, strategy="default", shards=None)
        local.check()
        return build(config.model, built_from, local, tf.distribute.get_strategy())

    whole = cluster.unsharded(net, build_whole)
    difference = 0.0
    for batch in tfdata.dataset(test, 8192):
        difference = max(difference, float(np.max(np.abs(net(batch).numpy() - whole(batch).numpy()))))
    spec = cluster.resolver().cluster_spec().as_dict()
    return {
        "placement": placement,
        "unsharded_max_difference": difference,
        "devices": sorted({piece["device"] for pieces in placement.values() for piece in pieces}) or ["/job:ps"],
        "workers": len(spec["worker"]),
    }, whole


def _board(log_dir, phase: str | None = None) -> list:
    """Keras' TensorBoard callback writing each epoch's logs (a refit's under ``refit/``), or nothing."""
    if log_dir is None:
        return []
    path = os.path.join(log_dir, phase) if phase else os.fspath(log_dir)
    # No graph or profile: the step is a while loop of native ops, and a trace costs the first epoch.
    return [tf.keras.callbacks.TensorBoard(path, write_graph=False, profile_batch=0, update_freq="epoch")]


def _prepare_kernels() -> float:
    """Builds the native kernels (the first time on this TensorFlow install) before training is timed.

    Returns the seconds a build took (0: none was needed).
    """
    from tfrec import ops

    if not ops.enabled() or tf.config.list_logical_devices("GPU") or ops.library_path().is_file():
        return 0.0
    start = time.perf_counter()
    ops.native()
    return round(time.perf_counter() - start, 3)


def _why_stopped(config: TrainConfig, epochs: int, best) -> str:
    """``early stopping``, ``epoch cap`` (all ``config.epochs`` ran and validation was still improving
    within the patience window) or ``epochs`` (no validation: the count asked for)."""
    if best is None:
        return "epochs"
    if epochs >= config.epochs and epochs - 1 - int(best) < max(1, config.patience):
        return "epoch cap"
    return "early stopping"


def endless(ds, n_workers: int = 1):
    """``(dataset, steps)`` for ``fit``: the pipeline repeated, with the epoch length given.

    For training data ``steps`` is ``steps_per_epoch``; for :func:`evaluation_dataset`, ``validation_steps``.

    Keras makes a new iterator every epoch of a finite dataset, which costs about 10 ms even for a
    7-batch pipeline (7-10% of an ML-100K epoch); with ``steps_per_epoch`` and an endless dataset it
    keeps one. Each repetition is the next epoch (the pipeline's own counter draws its order), so the
    batches are the ones the finite dataset gives. Multi-worker runs keep the finite form: there the
    per-worker epoch length depends on the sharding.
    """
    if n_workers > 1:
        return ds, None
    return ds.repeat(), int(ds.cardinality())


def _by_batch(ds):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _local_metrics(net, table) -> dict:
    """Test RMSE and MAE computed in this process (no collective ops), as ``evaluate`` would report them."""
    return {f"test_{name}": value for name, value in cluster.metrics(net, table).items()}


def _devices(strategy_, net) -> list[str]:
    """Where the model's variables live: each replica's device, or the one device of the default strategy."""
    if strategy_.num_replicas_in_sync > 1:
        return [d.split("/")[-1].removeprefix("device:") for d in strategy_.extended.worker_devices]
    return [net.trainable_variables[0].device.split("/")[-1].removeprefix("device:")]


def _stopper(monitor: str, mode: str, patience: int, state=None, best_weights=None):
    return ResumableEarlyStopping(
        monitor=monitor, mode=mode, patience=patience, restore_best_weights=True, resume_state=state,
        resume_weights=best_weights,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Phases:
    """What every phase of one run (the fit, then the refit) fits with.

    ``workers``: processes training together; ``run_dir``: the checkpoint directory or None;
    ``probe``: draws two test examples (see :meth:`fit`); ``verbose``: Keras' progress setting.
    """

    workers: int
    run_dir: RunDirectory | None
    probe: object
    verbose: int

    def fit(self, net, ds, phase, done, epochs, logs, callbacks, val_ds=None, stopper=None, extra=None) -> None:
        """Fits epochs ``done + 1 .. epochs`` of a phase, appending each epoch's logs to ``logs``.

        With a checkpoint directory the model and optimizer are first restored from the phase's last
        checkpoint, and every epoch end is saved. A phase whose early stopping had already stopped is
        not fitted again: the checkpoint holds its best weights.
        """
        saver = []
        if self.run_dir is not None:
            self.run_dir.restore(net, phase)
            saver = [self.run_dir.callback(phase, logs, stopper, extra)]
        stopped = stopper is not None and (stopper.resume_state or {}).get("stopped", False)
        if done >= epochs or stopped:
            net(self.probe())  # creates the variables, which take the checkpoint's values
            return
        ds, steps = ds if isinstance(ds, tuple) else endless(ds, self.workers)  # a tuple: tfrec.cluster's input
        val_ds, val_steps = endless(val_ds, self.workers) if val_ds is not None else (None, None)
        history = net.fit(
            ds, validation_data=val_ds, validation_steps=val_steps, initial_epoch=done, epochs=epochs,
            steps_per_epoch=steps, verbose=self.verbose, callbacks=[*callbacks, *saver],
        )  # fmt: skip
        if self.run_dir is None:
            h = history.history
            logs.extend({k: float(h[k][e]) for k in h} for e in range(len(h["loss"])))


def _resumable(config: TrainConfig) -> dict:
    """The settings a checkpoint directory records and a resumed run must repeat."""
    return {k: v for k, v in config.as_dict().items() if k != "checkpoint_dir"}
