"""Building, placing and fitting models: the code behind ``tfrec train``.

``model.fit`` is the only training loop. :func:`run` is the command's sequence of phases
(:mod:`tfrec.train.phases`); the blocks it is made of (a strategy, a compiled model, its input
pipelines: :mod:`tfrec.train.building`) are public here for programs that call ``fit`` themselves.
"""

from __future__ import annotations

import dataclasses

from tfrec import data as tfdata
from tfrec.config import TrainConfig
from tfrec.errors import TfrecError
from tfrec.train import phases
from tfrec.train.building import (
    build,
    configure_threads,
    endless,
    evaluation_dataset,
    is_chief,
    model_kwargs,
    strategy,
    training_dataset,
    workers,
)

__all__ = [
    "RunResult", "run", "validate", "build", "configure_threads", "endless", "evaluation_dataset", "is_chief",
    "model_kwargs", "strategy", "training_dataset", "workers",
]  # fmt: skip


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
    setup = phases.prepare(config, verbose)  # strategy, seeds, data, split, checkpoint directory
    fitted = phases.fit(setup, callbacks, tensorboard)  # early stopping on the validation cut
    fitted = phases.refit(setup, fitted, callbacks, tensorboard)  # the best epoch count, on the whole part
    scores = phases.score(setup, fitted.net)
    report, net = phases.report(setup, fitted, scores)
    return RunResult(report, net, setup.parts.train)


def validate(config: TrainConfig, verbose: int = 0, callbacks=(), fold: int = 0) -> dict:
    """The fit of :func:`run` alone, with early stopping on the validation cut: what a search ranks.

    The test part is not read: no refit, no test score. ``tfrec tune`` calls it once per trial and fold.
    ``fold`` k > 0 ranks on the k-th validation cut of the training part instead of the first (the one
    :func:`run` stops on): cuts of the same size that share no rating (``tfdata.random_split``'s ``block``).

    Returns:
      ``{"monitored", "validation", "epochs", "best_epoch"}``: the monitored score's name
      (``val_rmse``, or ``val_ndcg@10`` for implicit feedback) and its value at the best epoch.

    Raises:
      TfrecError: ``validation_fraction`` is 0 (nothing to rank by).
    """
    if config.validation_fraction <= 0:
        raise TfrecError("validation needs a validation cut: give validation_fraction above 0")
    setup = phases.prepare(config, verbose, fold)
    fitted = phases.fit(setup, callbacks)
    best = fitted.best(config.implicit)
    return {
        "monitored": fitted.monitored,
        "validation": float(fitted.scores[best]),
        "epochs": len(fitted.fit_logs),
        "best_epoch": int(best) + 1,
    }
