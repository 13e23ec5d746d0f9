"""Searching a model's settings with Optuna: the code behind ``tfrec tune``.

    result = tfrec.tune.tune(TrainConfig(model="biased-mf", data="ml-100k"), trials=40, out="tune/bmf")
    result.best         # a TrainConfig; `tfrec train --config tune/bmf/best.json` trains it

A search tries settings from the family's declared space (``Family.search`` for the settings every
family has, the ``search`` of each of its own options) on the validation cut of the training part.
Each trial is one ``fit`` with early stopping that reports its validation score every epoch, and
Optuna's median pruner ends a trial whose score at an epoch trails the median of earlier trials'
at that epoch. The test part is read once, after the search, to score the best settings, trained again on the
whole training part for the best trial's epoch count (``refit``).

Built on Optuna rather than a loop of tfrec's own: its TPE sampler, pruners, storage and plots are
maintained and known, and its studies live in a database. tfrec keeps the study in a SQLite file,
so a killed search started again carries on where it stopped (a trial the kill interrupted is
tried again), and ``jobs`` processes search side by side, sharing that file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tfrec import families
from tfrec.config import TrainConfig
from tfrec.errors import TfrecError
from tfrec.files import write_json_atomic

#: What a search's directory holds.
STUDY, BEST, REPORT = "study.db", "best.json", "report.json"
HISTORY_PLOT, IMPORTANCE_PLOT = "history.png", "importances.png"
#: The type of each ``TrainConfig`` field a family's ``search`` may name.
FIELD_TYPES = {"learning_rate": "float", "dim": "int", "l2": "float", "batch_size": "int", "optimizer": "str"}


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


def optuna():
    """Optuna, or a one-line error saying how to install it."""
    try:
        import optuna as module
    except ImportError:
        raise TfrecError("tfrec tune needs Optuna: pip install 'tfrec[tune]'") from None
    module.logging.set_verbosity(module.logging.ERROR)  # a failed trial ends the search with tfrec's own error
    return module


def space(config: TrainConfig, fixed=()) -> dict[str, dict]:
    """What a search of ``config.model`` tries: setting -> ``{"low", "high"[, "log"]}`` or ``{"choices"}``.

    The family's ``search`` (learning rate, dim, L2, batch size) and its options' ``search``, less the
    settings in ``fixed``.
    """
    family = families.family(config.model)
    found = {name: dict(spec) for name, spec in family.search.items()}
    found.update({
        name: dict(spec["search"]) for name, spec in family.options.items()
        if "search" in spec and spec.get("feedback") in (None, config.feedback or "explicit")
    })  # fmt: skip
    return {name: spec for name, spec in found.items() if name not in set(fixed)}


def _kind(config: TrainConfig, name: str) -> str:
    return FIELD_TYPES.get(name) or families.family(config.model).options[name]["type"]


def _as_choice(value):
    """A setting as a search draws it: a list (NCF's layers) as the command line writes it."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def _suggest(trial, name: str, spec: dict, kind: str):
    """One setting drawn by ``trial``: a choice, or an int or a float in ``[low, high]`` (log scale with ``log``)."""
    if "choices" in spec:  # a list value (NCF's layers) as the command line writes it
        choices = [_as_choice(c) for c in spec["choices"]]
        return trial.suggest_categorical(name, choices)
    log = bool(spec.get("log"))
    if kind == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=log)
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=log)


def _pruning_callback(trial, monitor: str):
    """A Keras callback that reports ``monitor`` to ``trial`` every epoch and ends a pruned trial."""
    from tfrec._keras import tf

    class Pruning(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is None:
                return
            trial.report(float(value), epoch + 1)
            trial.set_user_attr("epochs", epoch + 1)
            if trial.should_prune():
                raise optuna().TrialPruned(f"epoch {epoch + 1}: {monitor} {float(value):.4f}")

    return Pruning()


def _objective(base: dict, space_: dict):
    """Optuna's objective: the validation score of one fit with the trial's settings."""
    from tfrec import train
    from tfrec._keras import tf

    config = TrainConfig.from_dict(base)
    kinds = {name: _kind(config, name) for name in space_}

    def objective(trial):
        drawn = {name: _suggest(trial, name, spec, kinds[name]) for name, spec in space_.items()}
        tf.keras.backend.clear_session()  # the last trial's models and traced steps
        start = time.perf_counter()
        try:
            result = train.validate(TrainConfig.from_dict({**base, **drawn}),
                                    callbacks=[_pruning_callback(trial, base_monitor(config))])  # fmt: skip
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        trial.set_user_attr("epochs", result["epochs"])
        trial.set_user_attr("best_epoch", result["best_epoch"])
        return result["validation"]

    return objective


def base_monitor(config: TrainConfig) -> str:
    """The validation score a search of ``config`` ranks by: RMSE, or NDCG@10 for implicit feedback."""
    return "val_ndcg@10" if config.implicit else "val_rmse"


def _study(opt, storage: Path, config: TrainConfig, base: dict, space_: dict):
    """The study of ``storage`` for these fixed settings, created or loaded; a study of other settings is refused."""
    name = f"{config.model} on {config.data}"
    study = opt.create_study(
        study_name=name, storage=f"sqlite:///{storage}", load_if_exists=True,
        direction="maximize" if config.implicit else "minimize",
        pruner=_pruner(opt),
    )  # fmt: skip
    study.sampler = _sampler(opt, config.seed, study)
    recorded = study.user_attrs.get("fixed")
    if recorded is None:
        study.set_user_attr("fixed", base)
        study.set_user_attr("space", space_)
        # The first trial is the settings as given (the family's defaults unless set): a search then
        # ends no worse on the validation cut than training without one.
        study.enqueue_trial({name: _as_choice(base[name]) for name in space_ if name in base})
    elif recorded != base:
        changed = sorted(k for k in set(recorded) | set(base) if recorded.get(k) != base.get(k))
        raise TfrecError(
            f"{storage}: its study '{name}' searched with other fixed settings ({', '.join(changed)} differ): "
            "give another --out or --storage"
        )
    return study


def _sampler(opt, seed: int, study):
    """Optuna's TPE sampler, seeded by the run's seed and the trials the study holds: a resumed search
    (or a helper process) draws new settings instead of repeating the first ones."""
    return opt.samplers.TPESampler(seed=seed + len(study.trials))


def _pruner(opt):
    """Stops a trial whose score at an epoch is worse than the median of earlier trials' at that epoch,
    once five trials have finished and from its fifth epoch on (Optuna's steps here are epochs, from 1):
    settings that learn slowly but far (a small learning rate, a strong L2) trail in the first epochs."""
    return opt.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)


def _retry_interrupted(opt, study) -> int:
    """Trials a killed search left unfinished, queued again with their settings (once each).

    A kill that Python sees (Ctrl-C) lets Optuna mark its trial failed; one that it does not (SIGKILL,
    a lost machine) leaves it running. A search started again is the only one on its study, so it
    marks the running ones failed, then queues every failed trial not queued again before. (A trial
    that fails by itself ends the search with its error, so failed trials here are interrupted ones.)
    """
    state = opt.trial.TrialState
    for trial in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        study.tell(trial.number, state=state.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    again = [t for t in trials if t.state == state.FAIL and t.number not in retried and t.params]
    for trial in again:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    return len(again)


def _finished(opt, study) -> int:
    done = (opt.trial.TrialState.COMPLETE, opt.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=done))


def _search(study, base: dict, space_: dict, trials: int | None, deadline: float | None, announce) -> None:
    """Runs trials in this process until the study has ``trials`` finished ones or ``deadline`` passes."""
    opt = optuna()
    if trials is not None and _finished(opt, study) >= trials:
        return
    parent = os.getppid()
    stops = []
    if trials is not None:
        done = (opt.trial.TrialState.COMPLETE, opt.trial.TrialState.PRUNED)
        stops.append(opt.study.MaxTrialsCallback(trials, states=done))

    def progress(study_, trial):
        announce(_line(trial, base))
        if os.getppid() != parent:  # the search that started this worker is gone
            study_.stop()

    timeout = None if deadline is None else max(0.0, deadline - time.time())
    study.optimize(_objective(base, space_), timeout=timeout, callbacks=[*stops, progress],
                   gc_after_trial=True)  # fmt: skip


def _line(trial, base: dict) -> str:
    """A trial's progress line: its number, score or how it ended, and its settings."""
    shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in trial.params.items())
    state = trial.state.name.lower()
    if state == "complete":
        outcome = f"{trial.value:.4f} after {trial.user_attrs.get('epochs')} epochs"
    elif state == "pruned":
        steps = sorted(trial.intermediate_values)
        outcome = f"pruned after {steps[-1] if steps else 0} epochs"
    else:
        outcome = state
    again = f"  (trial {trial.user_attrs['retry_of']} again)" if "retry_of" in trial.user_attrs else ""
    return f"trial {trial.number:>3}  {outcome:<28} {shown}{again}"


def tune(config: TrainConfig, *, trials: int | None = None, timeout: float | None = None, jobs: int = 1,
         out="tune", storage=None, fixed=(), optimizers=(), announce=print) -> TuneResult:  # fmt: skip
    """Searches settings of ``config.model`` on the validation cut, then scores the best once on the test part.

    Args:
      config: The fixed settings (data, split, seed, epoch cap, ...); the searched ones start from it.
      trials: Stop when the study has this many finished (completed or pruned) trials, counting those
        of an earlier search in the same storage. None (with no ``timeout``): 30.
      timeout: Stop starting trials after this many seconds.
      jobs: Processes searching side by side (this one and ``jobs - 1`` more), sharing the storage.
      out: The directory for the study, ``best.json``, ``report.json`` and the plots.
      storage: The SQLite file of the study; default ``out/study.db``.
      fixed: Settings the search leaves at ``config``'s values.
      optimizers: Optimizer names to choose among (two or more); default: ``config.optimizer``.

    The best settings are written with ``refit`` on unless ``config.refit`` says otherwise: trained
    again on the whole training part, validation cut included, for the best trial's epoch count
    (as Surprise's ``GridSearchCV`` refits its best estimator on all the training data); the
    search itself ranks the first fit's validation score.
      announce: Called with a line per finished trial (helper processes print theirs); None: silent.

    Raises:
      TfrecError: no validation cut, an unknown setting in ``fixed``, or a storage of another search.
    """
    opt = optuna()
    quiet, announce = announce is None, announce or (lambda line: None)
    refit = True if config.refit is None else config.refit  # read before check() fills in the family's
    config.check()
    if config.validation_fraction <= 0:
        raise TfrecError("a search ranks settings on the validation cut: give a validation fraction above 0")
    if config.checkpoint_dir:
        raise TfrecError("a search does not checkpoint its trials: the study itself resumes")
    if trials is not None and trials < 1:
        raise TfrecError(f"trials must be at least 1, got {trials}")
    searched = space(config)
    unknown = sorted(set(fixed) - set(searched))
    if unknown:
        raise TfrecError(f"--fix {unknown[0]}: {config.model} searches {', '.join(searched) or 'nothing'}")
    from tfrec import data as tfdata

    table = tfdata.load(config.data, columns=config.columns, delimiter=config.delimiter)
    config.for_data(table.feedback)
    tfdata.split(table, config.split, seed=config.seed)  # a bad split is one error here, not every trial's
    base, space_ = config.as_dict(), space(config, fixed)
    if len(optimizers) > 1:
        space_["optimizer"] = {"choices": list(optimizers)}
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TfrecError(f"{out}: exists and is not a directory (a search writes its files into one)")
    out.mkdir(parents=True, exist_ok=True)
    storage = Path(storage) if storage else out / STUDY
    study = _study(opt, storage, config, base, space_)
    retried = _retry_interrupted(opt, study)
    earlier = _finished(opt, study)
    if earlier or retried:
        announce(
            f"resuming: {earlier} finished trials in {storage}"
            + (f", {retried} interrupted one(s) again" if retried else "")
        )
    trials = 30 if trials is None and timeout is None else trials
    deadline = None if timeout is None else time.time() + timeout
    start = time.perf_counter()
    helpers = _start_helpers(storage, base, space_, trials, deadline, jobs - 1, quiet)
    try:
        _search(study, base, space_, trials, deadline, announce)
    finally:
        for helper in helpers:
            helper.wait()
    return _finish(opt, study, {**base, "refit": refit}, out, storage, space_, time.perf_counter() - start)


def _start_helpers(storage: Path, base: dict, space_: dict, trials, deadline, count: int, quiet: bool) -> list:
    """``count`` more processes running trials of the same study (``python -m tfrec.tune``)."""
    order = {"storage": str(storage), "base": base, "space": space_, "trials": trials, "deadline": deadline,
             "quiet": quiet}  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    return [
        subprocess.Popen([sys.executable, "-m", "tfrec.tune", json.dumps({**order, "helper": k + 1})], env=env)
        for k in range(count)
    ]


def _helper(order: dict) -> int:
    """A helper process's search: the same study, settings and stopping rule as the search that started it."""
    from tfrec.cli._common import import_tensorflow_quietly  # a process of the command: TensorFlow's start-up noise off

    import_tensorflow_quietly()
    from tfrec import train

    train.configure_threads(order["base"]["model"])
    opt = optuna()
    name = f"{order['base']['model']} on {order['base']['data']}"
    study = opt.load_study(study_name=name, storage=f"sqlite:///{order['storage']}", pruner=_pruner(opt))
    study.sampler = _sampler(opt, order["base"]["seed"] + 7919 * order["helper"], study)

    def announce(line):
        if not order["quiet"]:
            print(line, flush=True)

    _search(study, order["base"], order["space"], order["trials"], order["deadline"], announce)
    return 0


def _finish(opt, study, base: dict, out: Path, storage: Path, space_: dict, seconds: float) -> TuneResult:
    """The best settings written as ``best.json``, scored once on the test part, and the report and plots."""
    from tfrec import train

    complete = study.get_trials(deepcopy=False, states=(opt.trial.TrialState.COMPLETE,))
    if not complete:
        raise TfrecError(f"{storage}: no trial finished (see the lines above), so there are no best settings")
    best = study.best_trial
    config = TrainConfig.from_dict({**base, **best.params})
    write_json_atomic(out / BEST, config.as_dict())
    result = train.run(TrainConfig.from_dict(config.as_dict()), verbose=0).report
    report = {
        "model": base["model"], "data": base["data"], "study": study.study_name, "storage": str(storage),
        "direction": study.direction.name.lower(), "space": space_, "search_seconds": round(seconds, 3),
        "best": {
            "trial": best.number, "params": best.params, "validation": best.value,
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


if __name__ == "__main__":  # a helper process of a search (_start_helpers)
    sys.exit(_helper(json.loads(sys.argv[1])))
