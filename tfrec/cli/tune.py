"""``tfrec tune``: search a model's settings on the validation cut (Optuna), then score the best once."""

from __future__ import annotations

import argparse
import dataclasses

from tfrec import families, registry
from tfrec.arguments import nonnegative, positive
from tfrec.cli._common import import_tensorflow_quietly, set_threads
from tfrec.config import FEEDBACK_NAMES, TrainConfig
from tfrec.errors import TfrecError


def add_parsers(sub) -> dict:
    """``tune``; returns its handler."""
    d = TrainConfig()
    p = sub.add_parser(
        "tune", help="search a model's settings on the validation cut, then score the best on the test part",
        description="Searches the family's declared settings (learning rate, dim, L2, batch size and its own "
        "options) with Optuna on the validation cut of the training part, then scores the best settings once "
        "on the test part. The study lives in OUT/study.db: the same command started again carries on.",
    )  # fmt: skip
    p.add_argument("--model", choices=families.names(), default=d.model, help="default %(default)s")
    p.add_argument("--data", default=d.data, help="as tfrec train's (default %(default)s)")
    p.add_argument("--columns", metavar="ROLE=COL,...", help="as tfrec train's")
    p.add_argument("--delimiter", help="as tfrec train's")
    p.add_argument("--split", help="as tfrec train's")
    p.add_argument("--feedback", choices=FEEDBACK_NAMES, help="as tfrec train's")
    p.add_argument("--seed", type=int, default=d.seed, help="the split's, each trial's and the sampler's")
    p.add_argument("--epochs", type=positive, help="each trial's epoch cap (default: tfrec train's)")
    p.add_argument("--patience", type=positive, help="each trial's early-stopping patience (default per model)")
    p.add_argument(
        "--validation-fraction", type=float, default=d.validation_fraction,
        help="the share of the training part each trial is ranked on (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--refit", action=argparse.BooleanOptionalAction,
        help="the best settings trained again on the whole training part for the best trial's epochs (default on)",
    )  # fmt: skip
    p.add_argument(
        "--optimizer", metavar="NAME[,NAME...]",
        help=f"one optimizer, or several to choose among (of {registry.optimizers.listed()}; default: the model's)",
    )  # fmt: skip
    p.add_argument("--fix", action="append", default=[], metavar="SETTING=VALUE",
                   help="leave a searched setting at VALUE (repeatable), e.g. --fix dim=32")  # fmt: skip
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--trials", type=positive, help="finished trials in the study, earlier ones counted (default 30)")
    stop.add_argument("--time", type=positive, metavar="SECONDS", help="start no trial after this many seconds")
    p.add_argument(
        "--folds", type=positive, default=1,
        help="validation cuts, sharing no rating, that each trial is ranked on by its mean (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--confirm", type=nonnegative, default=5, metavar="N",
        help="fit the N best trials on 3 validation cuts (or --folds) and take the best mean; 0: off "
        "(default %(default)s)",
    )  # fmt: skip
    p.add_argument("--jobs", type=positive, default=1, help="processes searching side by side (default %(default)s)")
    p.add_argument("--out", metavar="DIR", help="study, best.json, report.json and plots (default tune/MODEL)")
    p.add_argument("--storage", metavar="FILE", help="the study's SQLite file (default OUT/study.db)")
    p.add_argument("--json", metavar="PATH", help="also write the report here")
    return {"tune": _tune}


FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"options"}


def _fixed(items) -> dict:
    fixed = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise TfrecError(f"--fix {item!r}: expected SETTING=VALUE")
        fixed[name.replace("-", "_")] = value
    return fixed


def _config(args) -> tuple[TrainConfig, dict, list]:
    """``(config, fixed settings, optimizers)`` of the flags, checked without TensorFlow; the config is
    left unchecked for ``tune``, which tells a ``refit`` given from one left to the family."""
    from tfrec import tune
    from tfrec.data.sources import check_name

    fixed = _fixed(args.fix)
    optimizers = [o for o in (args.optimizer or "").split(",") if o]
    for name in optimizers:
        registry.optimizers.entry(name)  # an unknown name: one line naming the known ones
    settings = {k: v for k, v in vars(args).items()
                if k in ("model", "data", "columns", "delimiter", "split", "feedback", "seed", "epochs", "patience",
                         "validation_fraction", "refit") and v is not None}  # fmt: skip
    searched = tune.space(TrainConfig(model=settings["model"], feedback=settings.get("feedback")))
    for name, value in fixed.items():
        if name not in searched:
            flag = f" (a setting of every trial: --{name.replace('_', '-')})" if name in FIELDS else ""
            raise TfrecError(f"--fix {name}: {settings['model']} searches {', '.join(searched) or 'nothing'}{flag}")
        kind = tune.FIELD_TYPES.get(name)
        if kind in ("int", "float"):
            try:
                fixed[name] = int(value) if kind == "int" else float(value)
            except ValueError:
                raise TfrecError(f"--fix {name}={value}: not {'an integer' if kind == 'int' else 'a number'}") from None
    config = TrainConfig(**settings, optimizer=optimizers[0] if optimizers else None, **fixed)
    TrainConfig.from_dict(config.as_dict()).check()  # a copy: the config itself stays unchecked
    if config.validation_fraction <= 0:
        raise TfrecError("a search ranks settings on the validation cut: give --validation-fraction above 0")
    tune.check_folds(args.folds, config.validation_fraction)
    check_name(config.data, config.columns, config.delimiter)
    return config, fixed, optimizers


def _tune(args) -> None:
    config, fixed, optimizers = _config(args)  # no TensorFlow yet: a mistake answers at once
    import_tensorflow_quietly()
    from tfrec import tune

    set_threads(config.model)
    out = args.out or f"tune/{config.model}"
    result = tune.tune(config, trials=args.trials, timeout=args.time, jobs=args.jobs, folds=args.folds,
                       confirm=args.confirm, out=out, storage=args.storage, fixed=tuple(fixed), optimizers=optimizers,
                       announce=lambda line: print(line, flush=True))  # fmt: skip
    if args.json:
        from tfrec.files import write_json_atomic

        write_json_atomic(args.json, result.report)
    print(_summary(result, out))


def _summary(result, out: str) -> str:
    """The lines after the trials': the best trial, its test score, and what was written where."""
    best = result.report["best"]
    shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in best["params"].items())
    cuts = f" (mean of {len(best['validation_folds'])} cuts)" if best.get("validation_folds") else ""
    lines = [f"best trial {best['trial']}: validation {best['validation']:.4f}{cuts} ({shown})"]
    confirmation = result.report.get("confirmation")
    if confirmation:
        mean = next(row["mean"] for row in confirmation["finalists"] if row["trial"] == best["trial"])
        lines.append(f"chosen as the best mean, {mean:.4f} on {confirmation['cuts']} cuts, of the "
                     f"{len(confirmation['finalists'])} best trials")  # fmt: skip
    trial = next(t for t in result.report["trials"] if t["number"] == best["trial"])
    if trial["epochs"] == result.best.epochs and trial["best_epoch"] == trial["epochs"]:
        lines.append(f"note: it was still improving at the epoch cap ({result.best.epochs}): raise --epochs")
    if best.get("test_rmse") is not None:
        lines.append(f"test RMSE {best['test_rmse']:.4f}, MAE {best['test_mae']:.4f} "
                     f"(the training mean: {best['mean_test_rmse']:.4f})")  # fmt: skip
    else:
        lines.append(f"test HR@10 {best['test_hit_rate@10']:.4f}, NDCG@10 {best['test_ndcg@10']:.4f}")
    lines.append(f"settings  {best['config']}  (tfrec train --config {best['config']})")
    lines.append(f"report    {out}/report.json; plots: {', '.join(result.report['plots'].values())}")
    return "\n".join(lines)
