"""The phases of one ``tfrec train`` run, in order: :func:`prepare`, :func:`fit`, :func:`refit`,
:func:`score`, :func:`report`. ``tfrec.train.run`` calls them; each takes what the one before made.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from tfrec._keras import tf

from tfrec import cluster, families
from tfrec import data as tfdata
import tfrec.train.building as _train
from tfrec.checkpoints import ResumableEarlyStopping, RunDirectory
from tfrec.config import TrainConfig
from tfrec.data import stream
from tfrec.data.implicit import ranking_candidates
from tfrec.errors import TfrecError
from tfrec.metrics import RankingMetrics, most_popular, ranking_metrics

RANKING_NEGATIVES, RANKING_K = 99, 10  # the NCF evaluation protocol


@dataclasses.dataclass
class Setup:
    """What :func:`prepare` resolves before any model exists.

    ``parts``: the train/test split; ``train``/``validation``: the training part and its validation
    cut (None without validation); ``eval_size``: the batch of evaluation passes; ``phases``: what
    every fit runs with; ``start``: when the timed part began.
    """

    config: TrainConfig
    strategy: tf.distribute.Strategy
    workers: int
    sharded: bool
    table: tfdata.Ratings
    parts: object
    train: tfdata.Ratings
    validation: tfdata.Ratings | None
    run_dir: RunDirectory | None
    eval_size: int
    phases: _Phases
    kernel_seconds: float
    start: float

    @property
    def several(self) -> bool:
        """Whether more than one replica steps together (batches then must be whole)."""
        return self.strategy.num_replicas_in_sync > 1


@dataclasses.dataclass
class Fitted:
    """What the fit (and refit) phases leave: the model, each epoch's logs and the chosen epoch.

    ``net`` is None only while a run resumed in its refit has not built the refit's model yet.
    ``built_from``: the table the model's vocabularies came from.
    """

    net: object
    built_from: tfdata.Ratings | None
    fit_logs: list
    monitored: str | None
    refit_epochs: int | None = None

    @property
    def scores(self) -> list | None:
        """The monitored validation score of each epoch that has one."""
        if not self.monitored:
            return None
        return [logs[self.monitored] for logs in self.fit_logs if self.monitored in logs] or None

    def best(self, implicit: bool):
        """The index of the best epoch (highest NDCG for implicit feedback, lowest RMSE otherwise), or None."""
        scores = self.scores
        if not scores:
            return None
        return np.argmax(scores) if implicit else np.argmin(scores)


def prepare(config: TrainConfig, verbose: int, fold: int = 0) -> Setup:
    """Checks the config, builds the strategy (first: MultiWorkerMirroredStrategy precedes other TF
    work), seeds, loads and splits the data (``fold``: which validation cut, as :func:`cut`), and opens
    the checkpoint directory."""
    config.check()
    if config.splits_tables:  # before the strategy, which waits for the cluster
        _check_shardable(config)
    strategy_ = _train.strategy(config.strategy, config.shards)
    n_workers = _train.workers(strategy_)
    sharded = cluster.is_parameter_server(strategy_)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    tf.keras.utils.set_random_seed(config.seed)
    table = tfdata.load(config.data, columns=config.columns, delimiter=config.delimiter)
    config.for_data(table.feedback)  # a file without ratings trains on implicit feedback
    if isinstance(table, stream.Stream) and config.implicit:
        raise TfrecError("streamed shards train on explicit ratings: for implicit feedback, give one file (a table)")
    if isinstance(table, stream.Stream) and not families.model_class(config.model).reads_streams:
        raise TfrecError(f"{config.model} does not train on streamed shards (it reads more than rating pairs): "
                         "give it one file, loaded as a table")  # fmt: skip
    if sharded:
        _check_shardable(config)  # again: the data may have made the run implicit
    if config.checkpoint_dir and n_workers > 1:
        raise TfrecError("--checkpoint-dir is for one process; a multi-worker cluster resumes with its own checkpoints")
    parts, train, validation = cut(config, table, fold)
    config.for_table(train)  # the defaults that follow the data (Family.scaled), from the part fit on
    run_dir = RunDirectory(config.checkpoint_dir, _resumable(config)) if config.checkpoint_dir else None
    eval_size = max(config.batch_size, 8192) if n_workers == 1 else config.batch_size
    # Two test examples, drawn only when a resumed phase has nothing left to fit: calling the model on
    # them creates its variables, which take the checkpoint's values.
    phases = _Phases(n_workers, run_dir, lambda: next(iter(tfdata.dataset(parts.test, 2))), verbose)
    kernel_seconds = _prepare_kernels()
    return Setup(config, strategy_, n_workers, sharded, table, parts, train, validation, run_dir, eval_size,
                 phases, kernel_seconds, time.perf_counter())  # fmt: skip


def cut(config: TrainConfig, table: tfdata.Ratings, fold: int = 0) -> tuple:
    """``(parts, train, validation)``: the train/test split, the part fit on and its validation cut (None
    without one: then ``train`` is the whole training part). ``fold`` k > 0 takes the k-th validation cut
    of the same size that shares no rating with the others (explicit ratings in a table only)."""
    if fold and (isinstance(table, stream.Stream) or config.implicit):
        raise TfrecError("more than one validation cut (folds) is for explicit ratings in one table: "
                         "implicit feedback holds out each user's last item, and streamed shards one cut")  # fmt: skip
    if isinstance(table, stream.Stream):
        fraction = stream.test_fraction(config.split)
        return table.stage(config.seed, fraction, config.validation_fraction, config.min_count).cut()
    if config.min_count != 1:
        raise TfrecError("--min-count is for streamed shards (a directory or glob of data files)")
    parts = tfdata.split(table, config.split, seed=config.seed)
    if config.validation_fraction <= 0:
        return parts, parts.train, None
    held = tfdata.leave_last_out(parts.train) if config.implicit else tfdata.random_split(
        parts.train, config.validation_fraction, seed=config.seed, block=fold)  # fmt: skip
    return parts, held.train, held.test


def fit(setup: Setup, callbacks=(), tensorboard=None) -> Fitted:
    """Fits on the training part, stopping early on the validation cut's score (RMSE, or NDCG@10 for
    implicit feedback); a run resumed in its refit skips this phase, whose logs the checkpoint holds."""
    config, run_dir = setup.config, setup.run_dir
    if run_dir is not None and run_dir.state is not None and run_dir.state["phase"] == "refit":
        return Fitted(None, None, run_dir.state["fit_logs"], run_dir.state["monitored"])
    net = _train.build(config.model, setup.train, config, setup.strategy)
    done, fit_logs, saved = run_dir.resume("fit") if run_dir else (0, [], None)
    watch, val_ds, monitored = _validation(setup, net)
    stopper = None
    if monitored:
        best_weights = run_dir.best_weights("fit") if run_dir else None
        stopper = _stopper(monitored, "max" if config.implicit else "min", config.patience, saved, best_weights)
        watch.append(stopper)
    train_ds = _training_input(setup, setup.train, net, done + 1)
    setup.phases.fit(
        net, train_ds, "fit", done, config.epochs, fit_logs, [*watch, *callbacks, *_board(tensorboard)], val_ds,
        stopper, {"monitored": monitored},
    )  # fmt: skip
    return Fitted(net, setup.train, fit_logs, monitored)


def _validation(setup: Setup, net) -> tuple[list, object, str | None]:
    """``(callbacks, validation_data, monitored name)`` of the fit's validation cut."""
    config, validation = setup.config, setup.validation
    if validation is None:
        return [], None, None
    if config.implicit:
        candidates = ranking_candidates(validation, setup.table, RANKING_NEGATIVES, seed=config.seed)
        return [RankingMetrics(candidates, RANKING_K)], None, f"val_ndcg@{RANKING_K}"
    if setup.sharded:  # computed on the chief, each rating once
        return [cluster.ChiefValidation(validation, setup.eval_size)], None, "val_rmse"
    val_ds = _train.evaluation_dataset(validation, setup.eval_size, net, setup.workers, cache=True)
    return [], val_ds, "val_rmse"


def refit(setup: Setup, fitted: Fitted, callbacks=(), tensorboard=None) -> Fitted:
    """With ``refit`` on, a fresh model trained on the whole training part for the epoch count early
    stopping chose; otherwise the fitted model, given the validation cut's ratings back as inputs."""
    config, run_dir = setup.config, setup.run_dir
    best = fitted.best(config.implicit)
    if not (config.refit and best is not None):
        if setup.validation is not None:  # the validation cut's ratings are known ratings: inputs again (AutoRec)
            fitted.net.set_ratings(setup.parts.train)
        return fitted
    whole = setup.parts.train
    tf.keras.utils.set_random_seed(config.seed)
    net = _train.build(config.model, whole, config, setup.strategy)
    epochs = int(best) + 1
    done, refit_logs, _ = run_dir.resume("refit") if run_dir else (0, [], None)
    full_ds = _training_input(setup, whole, net, done + 1)
    setup.phases.fit(
        net, full_ds, "refit", done, epochs, refit_logs, [*callbacks, *_board(tensorboard, "refit")],
        extra={"fit_logs": fitted.fit_logs, "monitored": fitted.monitored},
    )  # fmt: skip
    return dataclasses.replace(fitted, net=net, built_from=whole, refit_epochs=epochs)


def score(setup: Setup, net) -> dict:
    """Test metrics: RMSE and MAE beside the training mean's RMSE, or for implicit feedback HR@10 and
    NDCG@10 beside the most-popular baseline's on the same candidates."""
    config, parts = setup.config, setup.parts
    summary = {"test_rmse": None, "test_mae": None}
    if config.implicit:
        candidates = ranking_candidates(parts.test, setup.table, RANKING_NEGATIVES, seed=config.seed)
        summary.update({f"test_{k}": v for k, v in ranking_metrics(net, candidates, RANKING_K).items()})
        popular = ranking_metrics(most_popular(parts.train), candidates, RANKING_K)
        summary.update({f"popular_{k}": v for k, v in popular.items()})
        return summary
    if setup.workers > 1 or setup.sharded:  # every worker holds the whole model / the chief reads the rows it needs
        summary.update(_local_metrics(net, parts.test))
    else:
        dataset = _train.evaluation_dataset(parts.test, setup.eval_size, net)
        result = net.evaluate(dataset, return_dict=True, verbose=0)
        summary.update(test_rmse=float(result["rmse"]), test_mae=float(result["mae"]))
    # What a model that learned nothing scores: the training mean for every pair.
    n, total, _ = _moments(parts.train)
    mean = total / n
    n, total, squares = _moments(parts.test)
    summary["mean_test_rmse"] = float(np.sqrt(max(0.0, squares - 2 * mean * total + n * mean**2) / n))
    return summary


def _moments(part) -> tuple[int, float, float]:
    """``(ratings, sum, sum of squares)`` of a table or a streamed part (which knows them without a pass)."""
    if getattr(part, "streamed", False):
        return part.moments()
    r = part.rating.astype(np.float64)
    return len(r), float(r.sum()), float(np.square(r).sum())


def report(setup: Setup, fitted: Fitted, scores: dict) -> tuple[dict, object]:
    """``(report, model)``: the run's report (``tfrec.train.RunResult.report``), and the model to answer
    with (under parameter servers, a whole copy of the sharded one), the report recorded as finished."""
    config, net = setup.config, fitted.net
    fit_seconds = time.perf_counter() - setup.start
    best = fitted.best(config.implicit)
    report_ = {
        **scores,
        "epochs": len(fitted.fit_logs),
        "best_epoch": int(best) + 1 if best is not None else None,
        "refit_epochs": fitted.refit_epochs,
        "stopped": _why_stopped(config, len(fitted.fit_logs), best),
        "validation": {fitted.monitored: float(fitted.scores[best])} if best is not None else None,
        "fit_seconds": round(fit_seconds, 3),
        "kernel_build_seconds": setup.kernel_seconds,
        "split_fingerprint": setup.parts.fingerprint,
        "source": setup.table.source,
        "devices": _devices(setup.strategy, net),
        "workers": setup.workers,
        "chief": _train.is_chief(setup.strategy),
        "config": config.as_dict(),
        "scaled": config.scaled,
    }
    if setup.sharded:
        gathered, net = _gathered(net, config, fitted.built_from, setup.parts.test)
        report_.update(gathered)
    if setup.run_dir is not None:
        setup.run_dir.finish(report_)
    return report_, net


def _check_shardable(config: TrainConfig) -> None:
    """What parameter-server training does not do (yet), each refused with its reason."""
    if families.model_class(config.model).vector_kind(config.model):
        raise TfrecError(
            f"{config.model} trains on rating vectors with dense layers, which parameter servers gain nothing "
            "from splitting: use --strategy auto or multi-worker"
        )
    if config.implicit:
        raise TfrecError("--strategy parameter-server trains on explicit ratings; implicit feedback is not supported")


def _training_input(setup: Setup, table, net, first_epoch: int):
    """``fit``'s training input: ``tfrec.cluster``'s under parameter servers, else ``training_dataset``'s."""
    config = setup.config
    if setup.sharded:
        return cluster.training_data(net, table, config.batch_size, config.seed, first_epoch=first_epoch)
    return _train.training_dataset(
        config, table, net, drop_remainder=setup.several, first_epoch=first_epoch, workers=setup.workers
    )


def _gathered(net, config: TrainConfig, built_from, test) -> tuple[dict, object]:
    """``(report entries, whole model)``: where the pieces lived, and a whole copy of the model checked
    against the sharded one on ``test``."""
    placement = cluster.placement(net)

    def build_whole():
        local = dataclasses.replace(config, strategy="default", shards=None)
        local.check()
        return _train.build(config.model, built_from, local, tf.distribute.get_strategy())

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
        ds, steps = ds if isinstance(ds, tuple) else _train.endless(ds, self.workers)  # a tuple: tfrec.cluster's input
        val_ds, val_steps = _train.endless(val_ds, self.workers) if val_ds is not None else (None, None)
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
