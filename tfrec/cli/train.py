"""``tfrec train``: its flags (the run's settings, then each family's own options) and the run."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path

from tfrec import families, registry
from tfrec.arguments import nonnegative
from tfrec.cli._common import import_tensorflow_quietly, listed, set_threads
from tfrec.config import DEFAULT_OPTIMIZER, FEEDBACK_NAMES, PRECISION_NAMES, TrainConfig
from tfrec.errors import TfrecError
from tfrec.files import write_json_atomic


def add_parsers(sub) -> dict:
    """``train``; returns its handler."""
    p = sub.add_parser("train", help="train a model and report its test metrics")
    _data_flags(p)
    _fit_flags(p)
    _placement_flags(p)
    _family_flags(p)
    _output_flags(p)
    return {"train": _train}


def _per_model(key: str) -> str:
    def show(value):
        if isinstance(value, bool):
            return "on" if value else "off"
        return value if isinstance(value, str) else f"{value:g}"

    every = ((name, families.family(name).defaults_for(name)) for name in families.names())
    fallback = {"optimizer": DEFAULT_OPTIMIZER}
    text = "default per model: " + ", ".join(f"{m} {show(d.get(key, fallback.get(key)))}" for m, d in every)
    following = [m for m in families.names() if key in families.family(m).scaled]
    if following:
        text += f" ({', '.join(following)}: on ML-100K; theirs follows the data's ratings per user and item)"
    return text


# Flags default to None, so that what was typed can be told from what was not: TrainConfig fills in
# its defaults, and with --config FILE the file's settings come between the two.


def _data_flags(p) -> None:
    d = TrainConfig()
    p.add_argument(
        "--config", metavar="FILE",
        help="settings from a JSON file: tfrec tune's best.json, or a run's --json report (flags override it)",
    )  # fmt: skip
    p.add_argument("--model", choices=families.names(), help=f"default {d.model}")
    p.add_argument(
        "--data", help=f"dataset name, file, directory or spec (default {d.data}; the list: tfrec data --help)"
    )
    p.add_argument(
        "--columns", metavar="ROLE=COL,...",
        help="your file's columns: user=COL,item=COL[,rating=COL][,timestamp=COL] (default: found by name; "
        "without a header, COL is a column number from 1)",
    )  # fmt: skip
    p.add_argument("--delimiter", help="of a delimited file (default: sniffed; tab: \\t)")
    p.add_argument(
        "--split", help="ratio[:F] | u1..u5 | leave-last-out (default ratio; leave-last-out for implicit feedback)"
    )
    p.add_argument(
        "--feedback", choices=FEEDBACK_NAMES,
        help="explicit ratings or implicit interactions (default: implicit for a file without ratings, else explicit)",
    )  # fmt: skip


def _fit_flags(p) -> None:
    d = TrainConfig()
    p.add_argument(
        "--epochs", type=int,
        help="at most this many (default: 500, early stopping ends a run first; 50 without validation)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, help=_per_model("batch_size") + " (AutoRec: rating vectors)")
    p.add_argument("--dim", type=int, help="embedding dimension; " + _per_model("dim"))
    p.add_argument("--lr", type=float, help=_per_model("learning_rate"))
    p.add_argument("--l2", type=float, help=_per_model("l2"))
    p.add_argument(
        "--optimizer", choices=registry.optimizers.names(), metavar="OPTIMIZER",
        help=f"{registry.optimizers.help()} ({_per_model('optimizer')})",
    )  # fmt: skip
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--validation-fraction", type=float, help=f"default {d.validation_fraction}")
    p.add_argument(
        "--min-count", type=int, metavar="N",
        help=f"streamed shards: ids rated fewer than N times take the unseen-id answer (default {d.min_count})",
    )  # fmt: skip
    p.add_argument("--patience", type=int, help="early-stopping epochs; " + _per_model("patience"))
    p.add_argument(
        "--refit", action=argparse.BooleanOptionalAction,
        help="after early stopping, retrain on the whole training part for the best epoch count "
        f"({_per_model('refit')})",
    )  # fmt: skip
    p.add_argument("--steps-per-execution", type=int, help=f"default {d.steps_per_execution}")
    p.add_argument(
        "--deterministic", action="store_true", default=None,
        help="TensorFlow op determinism: the same command, the same bits",
    )  # fmt: skip


def _placement_flags(p) -> None:
    d = TrainConfig()
    p.add_argument(
        "--strategy", choices=registry.strategies.names(), metavar="STRATEGY",
        help=f"{registry.strategies.help()} (default {d.strategy}); a cluster's strategies read it from TF_CONFIG, "
        "and when tables are split the chief trains and a worker or ps task serves until the chief ends "
        "(docs/distributed.md)",
    )  # fmt: skip
    p.add_argument(
        "--shards", metavar="N|SIZE",
        help="parameter-server: split every table into N pieces by rows, or into pieces of at most SIZE "
        "(64MB); default: pieces of at least 256KB, at most one per parameter server",
    )  # fmt: skip
    p.add_argument(
        "--intra-op-threads", type=nonnegative, metavar="N",
        help="TensorFlow's threads per op (default 1; "
        + listed(n for f in families.families() if f.threads_per_op == "all" for n in f.variants)
        + ": 0, one per core)",
    )  # fmt: skip
    p.add_argument(
        "--mixed-precision", choices=PRECISION_NAMES,
        help=f"Dense layers ({listed(n for f in families.families() for n in f.mixed_precision)}) compute in "
        "float16 (GPUs) or bfloat16 (CPUs with AMX/AVX512-BF16)",
    )  # fmt: skip


def _family_flags(p) -> None:
    """Each family's own options (``Family.options``), under its title; an option two families share
    is listed once, under the first."""
    every, added = families.options(), set()
    for family in families.families():
        own = [o for o in family.options if o not in added]
        if own:
            group = p.add_argument_group(f"{family.title} ({', '.join(family.variants)})")
            for option in own:
                _option_flag(group, option, family.options[option], every[option][1])
            added.update(own)


def _option_flag(group, name: str, spec, owners) -> None:
    """``--NAME`` of a family option (``Family.options``), stored as ``options.NAME``; None when not given."""

    def shown(value):
        return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    defaults = {shown(f.options[name]["default"]) for f in owners}
    default = f"default {defaults.pop()}" if len(defaults) == 1 else "default per model"
    metavar = {"int": "N", "float": "X", "ints": "N,N,...", "names": "NAME,..."}.get(spec["type"], "VALUE")
    kwargs = {"type": {"int": int, "float": float}.get(spec["type"], str), "metavar": metavar}
    if spec["type"] == "bool":
        kwargs = {"action": argparse.BooleanOptionalAction}
    elif "choices" in spec:
        kwargs = {"choices": list(spec["choices"])}
    users = f"{', '.join(spec['variants'])}: " if "variants" in spec else ""  # the variants it matters for
    help_ = f"{spec.get('help', '')} ({users}{default})".strip()
    group.add_argument(f"--{name.replace('_', '-')}", dest=f"options.{name}", help=help_, **kwargs)


def _output_flags(p) -> None:
    p.add_argument(
        "--checkpoint-dir", metavar="DIR",
        help="save every epoch end to DIR; the same command started again resumes there",
    )  # fmt: skip
    p.add_argument("--json", metavar="PATH", help="also write the summary and config as one JSON object")
    p.add_argument(
        "--save", metavar="DIR", help="write a run directory: model.keras (with optimizer state) and run.json"
    )
    p.add_argument("--export", metavar="DIR", help="write a SavedModel (serving_default, recommend) to DIR")
    p.add_argument("--quiet", action="store_true", help="no Keras progress output")
    p.add_argument(
        "--tensorboard", metavar="DIR", help="write Keras' TensorBoard logs (per-epoch training and validation metrics)"
    )


def _config(args) -> TrainConfig:
    """The checked config: the flags given, over ``--config``'s settings, over ``TrainConfig``'s defaults."""
    typed, options = _given(args)
    settings = _settings_file(args.config) if args.config else {}
    if "model" in typed and settings.get("model") not in (None, typed["model"]):
        # Another model's settings (its options, dims, rates) do not carry over: only the run's own.
        settings = {k: v for k, v in settings.items() if k in RUN_SETTINGS}
    with _as_given([*typed, *options], args.config):
        config = TrainConfig.from_dict({**settings, **typed, **options})
        config.check()
    return config


def _given(args) -> tuple[dict, dict]:
    """The settings and the family options given as flags: ``({field: value}, {option: value})``."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"options"}
    typed = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.lr is not None:
        typed["learning_rate"] = args.lr
    options = {k.partition(".")[2]: v for k, v in vars(args).items() if k.startswith("options.") and v is not None}
    return typed, options


@contextlib.contextmanager
def _as_given(flagged, config_file=None):
    """Re-raises a setting's error in the words the user gave it: ``--lr must be positive`` for a flag,
    ``--config F: learning_rate must be positive`` for a file's field (messages start with the field)."""
    try:
        yield
    except TfrecError as e:
        field, _, rest = str(e).partition(" ")
        if field in flagged:
            raise type(e)(f"--{'lr' if field == 'learning_rate' else field.replace('_', '-')} {rest}") from None
        if config_file and rest:
            raise type(e)(f"--config {config_file}: {e}") from None
        raise


#: What a ``--config`` file sets for any model: the data and the run, not the model's own settings.
RUN_SETTINGS = (
    "data", "columns", "delimiter", "split", "seed", "validation_fraction", "min_count", "feedback", "strategy",
)  # fmt: skip


def _settings_file(path: str) -> dict:
    """A ``--config`` file's settings: a flat JSON object of ``TrainConfig`` fields and options (``tfrec tune``'s
    ``best.json``), or a run report (``tfrec train --json``) whose ``config`` entry is one."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise TfrecError(f"--config {path}: {e.strerror}") from None
    except ValueError as e:
        raise TfrecError(f"--config {path}: not JSON ({e})") from None
    if isinstance(record, dict) and isinstance(record.get("config"), dict):
        record = record["config"]
    if not isinstance(record, dict):
        raise TfrecError(f"--config {path}: expected a JSON object of settings")
    return {k: v for k, v in record.items() if v is not None and k != "checkpoint_dir"}


def _cluster_task() -> str | None:
    """This process's task type in ``TF_CONFIG`` (without importing TensorFlow), or None."""
    try:
        return json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("type")
    except ValueError:
        return None  # the strategy reports a malformed TF_CONFIG


def _check_outputs(config: TrainConfig, args) -> None:
    """Every mistake that can be found without TensorFlow, found before training, not after it."""
    from tfrec.data.sources import check_name  # no TensorFlow: a mistake answers at once

    try:
        check_name(config.data, config.columns, config.delimiter)
    except TfrecError as e:
        if args.config and args.data is None:  # a relative path reads from here, not from the file's directory
            raise type(e)(f"--config {args.config} names data {config.data!r}: {e} (give --data)") from None
        raise
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise TfrecError(f"--json {args.json}: directory {Path(args.json).parent} does not exist")
    for flag, target in (("--save", args.save), ("--export", args.export)):
        path = Path(target) if target else None
        if path is not None and path.exists() and not (path.is_dir() and not any(path.iterdir())):
            raise TfrecError(f"{flag} {target}: already exists")


def _train(args) -> None:
    config = _config(args)
    if config.splits_tables and _cluster_task() in ("worker", "ps"):
        import_tensorflow_quietly(list_devices=False)
        from tfrec import cluster

        cluster.serve(announce=lambda line: print(line, flush=True))
        return
    _check_outputs(config, args)
    import_tensorflow_quietly(list_devices=not config.cluster)
    from tfrec import report
    from tfrec.checkpoints import RunFinished
    from tfrec.train import run

    set_threads(config.model, args.intra_op_threads)
    typed, options = _given(args)
    try:
        with _as_given([*typed, *options]):  # the settings the data decides on are checked in the run
            result = run(config, verbose=0 if args.quiet else 2, tensorboard=args.tensorboard)
    except RunFinished as finished:  # not a mistake: a retry loop around a finished run ends here
        print(f"tfrec: {finished}", file=sys.stderr)
        return
    summary = dict(result.report)
    summary["threads"] = _threads()
    if not summary["chief"]:  # another worker of a multi-worker run writes the outputs
        args.export = args.save = args.json = None
    if args.export:
        from tfrec import export

        streamed = getattr(result.train, "streamed", False)  # its rated pairs are in files, not in memory
        if streamed:
            print("tfrec: note: trained on streamed shards, so the export's recommend leaves no rated item out",
                  file=sys.stderr)  # fmt: skip
        export.save(result.model, args.export, rated=None if streamed else result.train)
    if args.save:
        from tfrec.cli.serving import save_run

        save_run(result.model, summary, args.save)
    written = [("SavedModel", args.export), ("run", args.save)]
    print(report.table(report.rows(config, summary) + [(k, v) for k, v in written if v]))
    if args.json:
        write_json_atomic(args.json, summary)


def _threads() -> dict:
    """TensorFlow's thread settings as it has them (0: its default, one per core)."""
    import tensorflow as tf

    threading = tf.config.threading
    return {"intra_op": threading.get_intra_op_parallelism_threads(),
            "inter_op": threading.get_inter_op_parallelism_threads()}  # fmt: skip
