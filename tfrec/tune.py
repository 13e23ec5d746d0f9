"""Searching a model's settings with Optuna: the code behind ``tfrec tune``.

    result = tfrec.tune.tune(TrainConfig(model="biased-mf", data="ml-100k"), trials=40, out="tune/bmf")
    result.best         # a TrainConfig; `tfrec train --config tune/bmf/best.json` trains it

A search tries settings from the family's declared space (``Family.search`` for the settings every
family has, the ``search`` of each of its own options) on the validation cut of the training part.
Each trial is one ``fit`` with early stopping that reports its validation score every epoch, and
Optuna's median pruner ends a trial whose score at an epoch trails the median of earlier trials'
at that epoch. The test part is read once, after the search, to score the best settings, trained again on the
whole training part for the best trial's epoch count (``refit``). With ``folds`` K a trial is ranked
by its mean over K validation cuts that share no rating, a fit on each. Before the test part is
read, the best few trials (``confirm``) are scored on more cuts (three, or ``folds`` if more) and
the best mean among them wins: one cut of a tenth of the training part cannot tell settings apart
by less than its own noise, so the top of a long search is often a trial that fit its cut by chance.

Built on Optuna rather than a loop of tfrec's own: its TPE sampler, pruners, storage and plots are
maintained and known, and its studies live in a database. tfrec keeps the study in a SQLite file,
so a killed search started again carries on where it stopped (a trial the kill interrupted is
tried again), and ``jobs`` processes search side by side, sharing that file.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from tfrec import _search, families
from tfrec.config import TrainConfig
from tfrec.errors import TfrecError
from tfrec.files import write_json_atomic

#: What a search's directory holds.
STUDY, BEST, REPORT = "study.db", "best.json", "report.json"
HISTORY_PLOT, IMPORTANCE_PLOT = "history.png", "importances.png"
#: Validation cuts the finalists of a search are ranked on (``tune``'s ``confirm``), or ``folds`` if more.
CONFIRM_CUTS = 3
#: The type of each setting every family has that a search may draw.
FIELD_TYPES = _search.FIELD_TYPES


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` returns.

    Attributes:
      best: The best trial's settings as a config (what ``best.json`` holds).
      report: Every trial, the best one's validation and test scores (what ``report.json`` holds).
      study: The Optuna study.
    """

    best: TrainConfig
    report: dict
    study: object


def space(config: TrainConfig, fixed=()) -> dict[str, dict]:
    """What a search of ``config.model`` tries: setting -> ``{"low", "high"[, "log"]}`` or ``{"choices"}``.

    The family's ``search`` (learning rate, dim, L2, batch size) and its options' ``search``, less the
    settings in ``fixed``.
    """
    family = families.family(config.model)
    found = {name: dict(spec) for name, spec in family.search.items()}
    found.update({
        name: dict(spec["search"]) for name, spec in families.own_options(config.model).items()
        if "search" in spec and spec.get("feedback") in (None, config.feedback or "explicit")
    })  # fmt: skip
    return {name: spec for name, spec in found.items() if name not in set(fixed)}


def tune(config: TrainConfig, *, trials: int | None = None, timeout: float | None = None, jobs: int = 1,
         folds: int = 1, confirm: int = 5, out="tune", storage=None, fixed=(), optimizers=(),
         announce=print) -> TuneResult:  # fmt: skip
    """Searches settings of ``config.model`` on the validation cut, then scores the best once on the test part.

    Args:
      config: The fixed settings (data, split, seed, epoch cap, ...); the searched ones start from it.
      trials: Stop when the study has this many finished (completed or pruned) trials, counting those
        of an earlier search in the same storage. None (with no ``timeout``): 30.
      timeout: Stop starting trials after this many seconds.
      jobs: Processes searching side by side (this one and ``jobs - 1`` more), sharing the storage.
      folds: Validation cuts each trial is ranked on, its score their mean: cuts of
        ``validation_fraction`` of the training part that share no rating, a fit on each (the first is
        the one ``tfrec train`` stops on). More cuts rank settings on more ratings, so the best trial
        is less often one that fit its cut by chance, at ``folds`` times a trial's cost. Explicit
        ratings in one table only.
      confirm: The finalists: this many best trials are fit on ``CONFIRM_CUTS`` cuts (or ``folds``) and
        the best mean wins; 0 or 1: the best as ranked (and where only one cut fits, or exists).
      out: The directory for the study, ``best.json``, ``report.json`` and the plots.
      storage: The SQLite file of the study; default ``out/study.db``.
      fixed: Settings the search leaves at ``config``'s values.
      optimizers: Optimizer names to choose among (two or more); default: ``config.optimizer``.
      announce: Called with a line per finished trial (helper processes print theirs); None: silent.

    The best settings are written with ``refit`` on unless ``config.refit`` says otherwise: trained
    again on the whole training part, validation cut included, for the best trial's epoch count
    (as Surprise's ``GridSearchCV`` refits its best estimator on all the training data); the
    search itself ranks the first fit's validation score.

    Raises:
      TfrecError: no validation cut, ``folds`` cuts that do not fit in the training part, an unknown
        setting in ``fixed``, or a storage of another search.
    """
    opt = _search.optuna()
    quiet, announce = announce is None, announce or (lambda line: None)
    refit = True if config.refit is None else config.refit  # read before check() fills in the family's
    base, space_, fingerprint = _settled(config, trials, fixed, optimizers, folds)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TfrecError(f"{out}: exists and is not a directory (a search writes its files into one)")
    out.mkdir(parents=True, exist_ok=True)
    storage = Path(storage) if storage else out / STUDY
    study = _search.open_study(opt, storage, config, base, space_, folds, fingerprint)
    retried = _search.retry_interrupted(opt, study)
    earlier = _search.finished(opt, study)
    if earlier or retried:
        again = f", {retried} interrupted one(s) again" if retried else ""
        announce(f"resuming: {earlier} finished trials in {storage}{again}")
    trials = 30 if trials is None and timeout is None else trials
    deadline = None if timeout is None else time.time() + timeout
    start = time.perf_counter()
    helpers = _search.start_helpers(storage, base, space_, trials, deadline, jobs - 1, quiet, folds)
    try:
        _search.search(study, base, space_, trials, deadline, announce, folds)
    finally:
        for helper in helpers:
            helper.wait()
    seconds = time.perf_counter() - start
    best, confirmation = _confirmed(opt, study, base, max(folds, CONFIRM_CUTS), confirm, announce)
    return _finish(study, best, confirmation, {**base, "refit": refit}, out, storage, space_, seconds, folds)


def check_folds(folds: int, validation_fraction: float) -> None:
    """``folds`` validation cuts of ``validation_fraction`` each fit in the training part, or one error."""
    if folds < 1 or folds * validation_fraction > 1 + 1e-9:
        most = int(1 / validation_fraction + 1e-9)
        raise TfrecError(f"folds must be from 1 to {most} (validation cuts of {validation_fraction:g} of the "
                         f"training part that share no rating), got {folds}")  # fmt: skip


def _settled(config: TrainConfig, trials, fixed, optimizers, folds: int = 1) -> tuple[dict, dict, str]:
    """``(fixed settings, search space, the split's fingerprint)`` of a checked config whose data loads
    and splits: every mistake is one error before the first trial, not each trial's."""
    config.check()
    if config.validation_fraction <= 0:
        raise TfrecError("a search ranks settings on the validation cut: give a validation fraction above 0")
    if config.checkpoint_dir:
        raise TfrecError("a search does not checkpoint its trials: the study itself resumes")
    if trials is not None and trials < 1:
        raise TfrecError(f"trials must be at least 1, got {trials}")
    check_folds(folds, config.validation_fraction)
    searched = space(config)
    unknown = sorted(set(fixed) - set(searched))
    if unknown:
        raise TfrecError(f"--fix {unknown[0]}: {config.model} searches {', '.join(searched) or 'nothing'}")
    from tfrec import data as tfdata

    table = tfdata.load(config.data, columns=config.columns, delimiter=config.delimiter)
    config.for_data(table.feedback)
    from tfrec.train.phases import cut

    if folds > 1:  # the last cut exists, and so every one before it (not a stream, not implicit feedback)
        cut(config, table, folds - 1)
    parts, fit, _ = cut(config, table)
    config.for_table(fit)  # the first trial is what `tfrec train` would run on this data
    space_ = space(config, fixed)
    if len(optimizers) > 1:
        space_["optimizer"] = {"choices": list(optimizers)}
    return config.as_dict(), space_, parts.fingerprint


def _confirmed(opt, study, base: dict, cuts: int, finalists: int, announce) -> tuple[object, dict | None]:
    """``(the chosen trial, the finalists' report or None)``: the ``finalists`` best trials scored on
    ``cuts`` validation cuts (the ones they were ranked on, then fits on the others; kept in the study,
    so a search carried on later does not fit them again), the best mean chosen."""
    from tfrec import train
    from tfrec._keras import tf
    from tfrec.data import stream

    complete = study.get_trials(deepcopy=False, states=(opt.trial.TrialState.COMPLETE,))
    if not complete:
        raise TfrecError(
            f"{study.study_name!r}: no trial finished (see the lines above), so there are no best settings"
        )
    config = TrainConfig.from_dict(base)
    cuts = min(cuts, int(1 / config.validation_fraction + 1e-9))  # as many as fit in the training part
    maximize = study.direction == opt.study.StudyDirection.MAXIMIZE
    ranked = sorted(complete, key=lambda t: t.value, reverse=maximize)
    if finalists < 2 or len(ranked) < 2 or cuts < 2 or config.implicit or stream.is_stream(config.data):
        return ranked[0], None
    rows, start = [], time.perf_counter()
    for trial in ranked[:finalists]:
        key = f"cuts of trial {trial.number}"
        scores = list(study.user_attrs.get(key) or trial.user_attrs.get("folds") or [trial.value])
        for fold in range(len(scores), cuts):
            tf.keras.backend.clear_session()  # the last fit's models and traced steps
            scores.append(train.validate(TrainConfig.from_dict({**base, **trial.params}), fold=fold)["validation"])
        study.set_user_attr(key, scores)
        rows.append({"trial": trial.number, "validation_cuts": scores, "mean": sum(scores) / len(scores)})
        announce(f"finalist trial {trial.number}: {rows[-1]['mean']:.4f} on {cuts} cuts "
                 f"({', '.join(f'{v:.4f}' for v in scores)})")  # fmt: skip
    chosen = (max if maximize else min)(rows, key=lambda row: row["mean"])["trial"]
    confirmation = {"cuts": cuts, "finalists": rows, "seconds": round(time.perf_counter() - start, 3)}
    return next(t for t in ranked if t.number == chosen), confirmation


def _finish(study, best, confirmation, base: dict, out: Path, storage: Path, space_: dict, seconds: float,
            folds: int) -> TuneResult:  # fmt: skip
    """The best settings written as ``best.json``, scored once on the test part, and the report and plots."""
    from tfrec import train
    from tfrec.data.sources import anchored

    # The data as a path that holds from any directory: `tfrec train --config` is often run elsewhere.
    config = TrainConfig.from_dict({**base, **best.params, "data": anchored(base["data"])})
    write_json_atomic(out / BEST, config.as_dict())
    result = train.run(TrainConfig.from_dict(config.as_dict()), verbose=0).report
    report = {
        "model": base["model"], "data": base["data"], "study": study.study_name, "storage": str(storage),
        "direction": study.direction.name.lower(), "space": space_, "folds": folds,
        "search_seconds": round(seconds, 3), "confirmation": confirmation,
        "best": {
            "trial": best.number, "params": best.params, "validation": best.value,
            "validation_folds": best.user_attrs.get("folds"),
            "validation_again": next(iter((result.get("validation") or {}).values()), None),
            **{k: v for k, v in result.items() if k.startswith(("test_", "popular_", "mean_test"))},
            "config": str(out / BEST),
        },
        "trials": [_trial_entry(t) for t in study.get_trials(deepcopy=False)],
        "plots": _plots(study, out),
    }  # fmt: skip
    write_json_atomic(out / REPORT, report)
    return TuneResult(config, report, study)


def _trial_entry(trial) -> dict:
    return {
        "number": trial.number, "state": trial.state.name.lower(), "value": trial.value, "params": trial.params,
        "epochs": trial.user_attrs.get("epochs"), "best_epoch": trial.user_attrs.get("best_epoch"),
        "folds": trial.user_attrs.get("folds"),
        "seconds": trial.user_attrs.get("seconds"),
        "per_epoch": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
    }  # fmt: skip


def _plots(study, out: Path) -> dict:
    """Optuna's own pictures of the search, as PNG files beside the report: ``{name: path or why not}``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from optuna.visualization import matplotlib as plots
    except ImportError:
        return {"history": "not drawn: matplotlib is not installed (pip install 'tfrec[tune]')"}
    import warnings

    drawn = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for key, path, draw in (("history", HISTORY_PLOT, plots.plot_optimization_history),
                                ("importances", IMPORTANCE_PLOT, plots.plot_param_importances)):  # fmt: skip
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as e:  # too few trials or settings to rank
                drawn[key] = f"not drawn: {e}"
                continue
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.savefig(out / path, dpi=100, bbox_inches="tight")
            matplotlib.pyplot.close(figure)
            drawn[key] = str(out / path)
    return drawn
