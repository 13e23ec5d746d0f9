"""The search loop behind :mod:`tfrec.tune`: Optuna's study, trials and helper processes.

``python -m tfrec._search ORDER`` is a helper process of a search (``tfrec.tune``'s ``jobs``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tfrec import families
from tfrec.config import TrainConfig
from tfrec.errors import TfrecError

#: The type of each ``TrainConfig`` field a family's ``search`` may name.
FIELD_TYPES = {"learning_rate": "float", "dim": "int", "l2": "float", "batch_size": "int", "optimizer": "str"}


def optuna():
    """Optuna, or a one-line error saying how to install it."""
    try:
        import optuna as module
    except ImportError:
        raise TfrecError("tfrec tune needs Optuna: pip install 'tfrec[tune]'") from None
    module.logging.set_verbosity(module.logging.ERROR)  # a failed trial ends the search with tfrec's own error
    return module


def kind(config: TrainConfig, name: str) -> str:
    return FIELD_TYPES.get(name) or families.family(config.model).options[name]["type"]


def as_choice(value):
    """A setting as a search draws it: a list (NCF's layers) as the command line writes it."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def suggest(trial, name: str, spec: dict, kind: str):
    """One setting drawn by ``trial``: a choice, or an int or a float in ``[low, high]`` (log scale with ``log``)."""
    if "choices" in spec:  # a list value (NCF's layers) as the command line writes it
        choices = [as_choice(c) for c in spec["choices"]]
        return trial.suggest_categorical(name, choices)
    log = bool(spec.get("log"))
    if kind == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=log)
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=log)


def pruning_callback(trial, monitor: str):
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


def objective(base: dict, space_: dict, folds: int = 1):
    """Optuna's objective: the validation score of one fit with the trial's settings, or with ``folds``
    above 1 the mean over that many validation cuts that share no rating, a fit on each.

    The pruner watches the first cut's epochs (the cut ``tfrec train`` stops on); the epoch counts
    recorded are the first cut's too, which the refit of the best settings repeats.
    """
    from tfrec import train
    from tfrec._keras import tf

    config = TrainConfig.from_dict(base)
    kinds = {name: kind(config, name) for name in space_}

    def objective(trial):
        drawn = {name: suggest(trial, name, spec, kinds[name]) for name, spec in space_.items()}
        start, scores = time.perf_counter(), []
        try:
            for fold in range(folds):
                tf.keras.backend.clear_session()  # the last fit's models and traced steps
                watch = [pruning_callback(trial, base_monitor(config))] if fold == 0 else []
                result = train.validate(TrainConfig.from_dict({**base, **drawn}), callbacks=watch, fold=fold)
                scores.append(result["validation"])
                if fold == 0:
                    trial.set_user_attr("epochs", result["epochs"])
                    trial.set_user_attr("best_epoch", result["best_epoch"])
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        if folds > 1:
            trial.set_user_attr("folds", scores)
        return sum(scores) / len(scores)

    return objective


def base_monitor(config: TrainConfig) -> str:
    """The validation score a search of ``config`` ranks by: RMSE, or NDCG@10 for implicit feedback."""
    return "val_ndcg@10" if config.implicit else "val_rmse"


def open_study(opt, storage: Path, config: TrainConfig, base: dict, space_: dict, folds: int = 1,
               fingerprint: str | None = None):  # fmt: skip
    """The study of ``storage`` for these fixed settings, created or loaded; a study of other settings,
    ranked on another number of validation cuts or of other data (``fingerprint``: the split's, which
    changes with the data's content; a file of the same name rewritten is other data) is refused."""
    name = f"{config.model} on {config.data}"
    base = {**base, "folds": folds} if folds > 1 else base  # what a trial's score means
    if fingerprint is not None:
        base = {**base, "split_fingerprint": fingerprint}
    study = opt.create_study(
        study_name=name, storage=f"sqlite:///{storage}", load_if_exists=True,
        direction="maximize" if config.implicit else "minimize",
        pruner=pruner(opt),
    )  # fmt: skip
    study.sampler = sampler(opt, config.seed, study)
    recorded = study.user_attrs.get("fixed")
    if recorded is None:
        study.set_user_attr("fixed", base)
        study.set_user_attr("space", space_)
        # The first trial is the settings as given (the family's defaults unless set): a search then
        # ends no worse on the validation cut than training without one.
        study.enqueue_trial({name: as_choice(base[name]) for name in space_ if name in base})
        return study
    # A study kept before the split's fingerprint was recorded has none to compare.
    changed = sorted(k for k in set(recorded) | set(base) if recorded.get(k) != base.get(k)
                     and (k in recorded or k != "split_fingerprint"))  # fmt: skip
    if changed == ["split_fingerprint"]:
        raise TfrecError(f"{storage}: its study '{name}' searched other data (the split's fingerprint was "
                         f"{recorded['split_fingerprint']}, now {base['split_fingerprint']}): "
                         "give another --out or --storage")  # fmt: skip
    if changed:
        raise TfrecError(
            f"{storage}: its study '{name}' searched with other fixed settings ({', '.join(changed)} differ): "
            "give another --out or --storage"
        )
    return study


def sampler(opt, seed: int, study):
    """Optuna's TPE sampler, seeded by the run's seed and the trials the study holds: a resumed search
    (or a helper process) draws new settings instead of repeating the first ones."""
    return opt.samplers.TPESampler(seed=seed + len(study.trials))


def pruner(opt):
    """Stops a trial whose score at an epoch is worse than the median of earlier trials' at that epoch,
    once five trials have finished and from its fifth epoch on (Optuna's steps here are epochs, from 1):
    settings that learn slowly but far (a small learning rate, a strong L2) trail in the first epochs."""
    return opt.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)


def retry_interrupted(opt, study) -> int:
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


def finished(opt, study) -> int:
    done = (opt.trial.TrialState.COMPLETE, opt.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=done))


def search(study, base: dict, space_: dict, trials: int | None, deadline: float | None, announce,
           folds: int = 1) -> None:  # fmt: skip
    """Runs trials in this process until the study has ``trials`` finished ones or ``deadline`` passes."""
    opt = optuna()
    if trials is not None and finished(opt, study) >= trials:
        return
    parent = os.getppid()
    stops = []
    if trials is not None:
        done = (opt.trial.TrialState.COMPLETE, opt.trial.TrialState.PRUNED)
        stops.append(opt.study.MaxTrialsCallback(trials, states=done))

    def progress(study_, trial):
        announce(line(trial, base))
        if os.getppid() != parent:  # the search that started this worker is gone
            study_.stop()

    timeout = None if deadline is None else max(0.0, deadline - time.time())
    study.optimize(objective(base, space_, folds), timeout=timeout, callbacks=[*stops, progress],
                   gc_after_trial=True)  # fmt: skip


def line(trial, base: dict) -> str:
    """A trial's progress line: its number, score or how it ended, and its settings."""
    shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in trial.params.items())
    state = trial.state.name.lower()
    if state == "complete" and trial.user_attrs.get("folds"):
        outcome = f"{trial.value:.4f} on {len(trial.user_attrs['folds'])} cuts, {trial.user_attrs.get('epochs')} epochs"
    elif state == "complete":
        outcome = f"{trial.value:.4f} after {trial.user_attrs.get('epochs')} epochs"
    elif state == "pruned":
        steps = sorted(trial.intermediate_values)
        outcome = f"pruned after {steps[-1] if steps else 0} epochs"
    else:
        outcome = state
    again = f"  (trial {trial.user_attrs['retry_of']} again)" if "retry_of" in trial.user_attrs else ""
    return f"trial {trial.number:>3}  {outcome:<28} {shown}{again}"


def start_helpers(storage: Path, base: dict, space_: dict, trials, deadline, count: int, quiet: bool,
                  folds: int = 1) -> list:  # fmt: skip
    """``count`` more processes running trials of the same study (``python -m tfrec._search``)."""
    order = {"storage": str(storage), "base": base, "space": space_, "trials": trials, "deadline": deadline,
             "quiet": quiet, "folds": folds}  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    return [
        subprocess.Popen([sys.executable, "-m", "tfrec._search", json.dumps({**order, "helper": k + 1})], env=env)
        for k in range(count)
    ]


def helper(order: dict) -> int:
    """A helper process's search: the same study, settings and stopping rule as the search that started it."""
    from tfrec.cli._common import import_tensorflow_quietly  # a process of the command: TensorFlow's start-up noise off

    import_tensorflow_quietly()
    from tfrec import train

    train.configure_threads(order["base"]["model"])
    opt = optuna()
    name = f"{order['base']['model']} on {order['base']['data']}"
    study = opt.load_study(study_name=name, storage=f"sqlite:///{order['storage']}", pruner=pruner(opt))
    study.sampler = sampler(opt, order["base"]["seed"] + 7919 * order["helper"], study)

    def announce(line):
        if not order["quiet"]:
            print(line, flush=True)

    search(study, order["base"], order["space"], order["trials"], order["deadline"], announce, order["folds"])
    return 0


if __name__ == "__main__":  # a helper process of a search (_start_helpers)
    sys.exit(helper(json.loads(sys.argv[1])))
