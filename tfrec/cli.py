"""The ``tfrec`` command: ``train``, ``export``, ``predict``, ``recommend``, ``data``, ``import-torch``, and the
commands other packages register (``tfrec.registry.commands``: the parity harness's ``parity`` and ``bench``).

A user's mistake (a bad flag, an unknown dataset, a malformed file) ends with
one line on stderr and exit status 2 (usage) or 1 (data), never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads; the CLI, not the library

from tfrec import families, registry  # noqa: E402
from tfrec.config import FEEDBACK_NAMES, PRECISION_NAMES, TrainConfig  # noqa: E402
from tfrec.arguments import nonnegative as _nonnegative, positive as _positive  # noqa: E402
from tfrec.errors import TfrecError  # noqa: E402
from tfrec.files import write_json_atomic  # noqa: E402

USAGE_ERROR, DATA_ERROR = 2, 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _per_model(key: str) -> str:
    def show(value):
        return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}"

    every = ((name, families.family(name).defaults_for(name)) for name in families.names())
    return "default per model: " + ", ".join(f"{m} {show(d[key])}" for m, d in every)


def _data_names() -> str:
    from tfrec.data.sources import names_help  # no TensorFlow

    return names_help()


def _listed(names) -> str:
    return ", ".join(names) or "none"


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
    help_ = f"{spec.get('help', '')} ({default})".strip()
    group.add_argument(f"--{name.replace('_', '-')}", dest=f"options.{name}", help=help_, **kwargs)


def _train_parser(sub) -> None:
    d = TrainConfig()
    p = sub.add_parser("train", help="train a model and report its test metrics")
    p.add_argument("--model", choices=families.names(), default=d.model)
    p.add_argument(
        "--data",
        default=d.data,
        help="dataset name, file, directory or spec (default %(default)s; the list: tfrec data --help)",
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
        "--epochs",
        type=int,
        help="at most this many (default: 500, early stopping ends a run first; 50 without validation)",
    )
    p.add_argument("--batch-size", type=int, help=_per_model("batch_size") + " (AutoRec: rating vectors)")
    p.add_argument("--dim", type=int, help="embedding dimension; " + _per_model("dim"))
    p.add_argument("--lr", type=float, help=_per_model("learning_rate"))
    p.add_argument("--l2", type=float, help=_per_model("l2"))
    p.add_argument(
        "--optimizer", choices=registry.optimizers.names(), default=d.optimizer, metavar="OPTIMIZER",
        help=f"{registry.optimizers.help()} (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--validation-fraction", type=float, default=d.validation_fraction)
    p.add_argument("--patience", type=int, help="early-stopping epochs; " + _per_model("patience"))
    p.add_argument("--steps-per-execution", type=int, default=d.steps_per_execution)
    p.add_argument(
        "--strategy", choices=registry.strategies.names(), default=d.strategy, metavar="STRATEGY",
        help=f"{registry.strategies.help()} (default %(default)s); a cluster's strategies read it from TF_CONFIG, "
        "and when tables are split the chief trains and a worker or ps task serves until the chief ends "
        "(docs/distributed.md)",
    )  # fmt: skip
    p.add_argument(
        "--shards", metavar="N|SIZE",
        help="parameter-server: split every table into N pieces by rows, or into pieces of at most SIZE "
        "(64MB); default: pieces of at least 256KB, at most one per parameter server",
    )  # fmt: skip
    p.add_argument(
        "--intra-op-threads", type=_nonnegative, metavar="N",
        help="TensorFlow's threads per op (default 1; "
        + _listed(n for f in families.families() if f.threads_per_op == "all" for n in f.variants)
        + ": 0, one per core)",
    )  # fmt: skip
    p.add_argument(
        "--mixed-precision", choices=PRECISION_NAMES,
        help=f"Dense layers ({_listed(n for f in families.families() for n in f.mixed_precision)}) compute in "
        "float16 (GPUs) or bfloat16 (CPUs with AMX/AVX512-BF16)",
    )  # fmt: skip
    p.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        help="after early stopping, retrain on the whole training part for the best epoch count ("
        + _per_model("refit")
        + ")",
    )
    p.add_argument(
        "--feedback", choices=FEEDBACK_NAMES,
        help="explicit ratings or implicit interactions (default: implicit for a file without ratings, else explicit)",
    )  # fmt: skip
    every, added = families.options(), set()
    for family in families.families():  # each family's own options, under its title
        own = [o for o in family.options if o not in added]
        if own:
            group = p.add_argument_group(f"{family.title} ({', '.join(family.variants)})")
            for option in own:
                _option_flag(group, option, family.options[option], every[option][1])
            added.update(own)
    p.add_argument(
        "--checkpoint-dir", metavar="DIR",
        help="save every epoch end to DIR; the same command started again resumes there",
    )  # fmt: skip
    p.add_argument(
        "--deterministic", action="store_true", help="TensorFlow op determinism: the same command, the same bits"
    )
    p.add_argument("--json", metavar="PATH", help="also write the summary and config as one JSON object")
    p.add_argument(
        "--save", metavar="DIR", help="write a run directory: model.keras (with optimizer state) and run.json"
    )
    p.add_argument("--export", metavar="DIR", help="write a SavedModel (serving_default, recommend) to DIR")
    p.add_argument("--quiet", action="store_true", help="no Keras progress output")
    p.add_argument(
        "--tensorboard", metavar="DIR", help="write Keras' TensorBoard logs (per-epoch training and validation metrics)"
    )


def _serving_parsers(sub) -> None:
    export = sub.add_parser("export", help="write a SavedModel from a run directory or a .keras file")
    export.add_argument("source", metavar="RUN_OR_MODEL", help="a `tfrec train --save` directory or a .keras file")
    export.add_argument("--out", required=True, metavar="DIR", help="the SavedModel directory (must not exist)")
    export.add_argument("--no-clip", action="store_true", help="do not clip predictions to the rating range")
    predict = sub.add_parser("predict", help="a SavedModel's rating of one (user, item) pair")
    predict.add_argument("path", metavar="SAVED_MODEL")
    predict.add_argument("--user", required=True, help="a raw user id")
    predict.add_argument("--item", "--movie", dest="item", required=True, metavar="ID", help="a raw item (movie) id")
    recommend = sub.add_parser("recommend", help="a SavedModel's top-k items for one user")
    recommend.add_argument("path", metavar="SAVED_MODEL")
    recommend.add_argument("--user", required=True, help="a raw user id")
    recommend.add_argument("-k", type=_positive, default=10, help="how many (default %(default)s)")
    recommend.add_argument("--include-rated", action="store_true", help="do not leave out items rated in training")
    recommend.add_argument(
        "--json", metavar="PATH", help="also write the list as JSON, keyed as the model's signature ('-': stdout only)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tfrec", description="Classic rating-prediction recommenders on TensorFlow Recommenders.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _train_parser(sub)
    _serving_parsers(sub)
    data = sub.add_parser(
        "data", help="inspect or fetch datasets", description="What --data takes: " + _data_names() + "."
    )
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    info = data_sub.add_parser("info", help="counts, density and rating histogram of a dataset")
    info.add_argument("name", help="dataset name, directory or spec")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fetch = data_sub.add_parser("download", help="download a MovieLens archive into the cache")
    fetch.add_argument("name")
    from tfrec.convert import command as import_torch

    import_torch.add_parser(sub, _positive, families.names())
    for entry in registry.discover_commands().entries():  # other packages' commands (the parity harness's)
        doc = (entry.load().__doc__ or "").strip().splitlines()
        sub.add_parser(entry.name, help=doc[0] if doc else "", add_help=False)
    sub.add_parser(
        "build-kernels",
        help="compile tfrec's native kernels now (for an image or CI; training builds them on first use)",
    )
    return parser


def _import_tensorflow_quietly(list_devices: bool = True) -> None:
    """Imports TensorFlow with native stderr muted.

    TensorFlow 2.19+ prints absl INFO lines at import (oneDNN, missing CUDA) that
    ``TF_CPP_MIN_LOG_LEVEL`` no longer silences (tensorflow/tensorflow#100442).
    Python-level errors are raised after stderr is restored, so none is hidden.
    """
    if "tensorflow" in sys.modules:
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: I001

        # Device discovery logs too (e.g. "failed call to cuInit" on a machine without a GPU driver);
        # `tfrec train` prints the devices it used instead. Not for a multi-worker run: collective ops
        # must be configured (by its strategy) before the runtime starts.
        if list_devices:
            tensorflow.config.list_physical_devices()
        # Python-side warnings such as SavedModel's "Skipping full serialization of ... Ranking" (the
        # unbuilt task has nothing to save); errors still show, as with TF_CPP_MIN_LOG_LEVEL=2.
        tensorflow.get_logger().setLevel("ERROR")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _cluster_task() -> str | None:
    """This process's task type in ``TF_CONFIG`` (without importing TensorFlow), or None."""
    try:
        return json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("type")
    except ValueError:
        return None  # the strategy reports a malformed TF_CONFIG


def _train(args) -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"options"}
    given = {k.partition(".")[2]: v for k, v in vars(args).items() if k.startswith("options.") and v is not None}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields}, learning_rate=args.lr, options=given)
    config.check()
    if config.splits_tables and _cluster_task() in ("worker", "ps"):
        _import_tensorflow_quietly(list_devices=False)
        from tfrec import cluster

        cluster.serve(announce=lambda line: print(line, flush=True))
        return
    from tfrec.data.sources import check_name  # no TensorFlow: a mistake answers at once

    check_name(config.data, config.columns, config.delimiter)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise TfrecError(f"--json {args.json}: directory {Path(args.json).parent} does not exist")
    for flag, target in (("--save", args.save), ("--export", args.export)):  # before training, not after
        path = Path(target) if target else None
        if path is not None and path.exists() and not (path.is_dir() and not any(path.iterdir())):
            raise TfrecError(f"{flag} {target}: already exists")
    _import_tensorflow_quietly(list_devices=not config.cluster)
    from tfrec.checkpoints import RunFinished
    from tfrec.train import configure_threads, run

    try:
        configure_threads(config.model, args.intra_op_threads)
    except TfrecError:
        if args.intra_op_threads is not None:  # asked for: a mistake to report
            raise
        # Called from a process whose TensorFlow runs already (a notebook, a test): its threads stay as they are.
        print("tfrec: note: TensorFlow is running in this process already; its thread settings stay", file=sys.stderr)

    try:
        result = run(config, verbose=0 if args.quiet else 2, tensorboard=args.tensorboard)
    except RunFinished as finished:  # not a mistake: a retry loop around a finished run ends here
        print(f"tfrec: {finished}", file=sys.stderr)
        return
    summary, model, train = dict(result.report), result.model, result.train
    import tensorflow as tf

    threading = tf.config.threading  # as TF has them (0: its default, one per core)
    summary["threads"] = {
        "intra_op": threading.get_intra_op_parallelism_threads(),
        "inter_op": threading.get_inter_op_parallelism_threads(),
    }
    if not summary["chief"]:  # another worker of a multi-worker run writes the outputs
        args.export = args.save = args.json = None
    if args.export:
        from tfrec import export

        export.save(model, args.export, rated=train)
    if args.save:
        _save_run(model, summary, args.save)
    best = f" (best {summary['best_epoch']})" if summary["best_epoch"] else ""
    rows = [
        ("model", config.model + (" (implicit)" if config.implicit else "")),
        ("data", f"{config.data}, split {config.split} (fingerprint {summary['split_fingerprint']})"),
    ]
    if summary["source"].startswith(f"{config.data} ("):  # a file of the user's own: the columns it took
        rows.append(("read", summary["source"]))
    if config.family.side_features:
        rows.append(("features", ", ".join(config.features)))
    if config.implicit:
        for name in ("hit_rate@10", "ndcg@10"):
            rows.append(
                (f"test {name}", f"{summary['test_' + name]:.4f}  (most popular: {summary['popular_' + name]:.4f})")
            )
    else:
        mean = f"  (the training mean: {summary['mean_test_rmse']:.4f})"
        rows += [("test RMSE", f"{summary['test_rmse']:.4f}{mean}"), ("test MAE", f"{summary['test_mae']:.4f}")]
    rows.append(("epochs", f"{summary['epochs']}{best}"))
    if summary["stopped"] == "epoch cap":
        cap = f"at the epoch cap ({config.epochs}) while validation was still improving: raise --epochs"
        rows.append(("stopped", cap))
    if summary["refit_epochs"]:
        rows.append(("refit", f"{summary['refit_epochs']} epochs on the whole training part"))
    rows.append(("fit seconds", f"{summary['fit_seconds']:.2f}"))
    if config.splits_tables:
        rows.append(("devices", f"tables on {', '.join(summary['devices'])}, steps on {summary['workers']} workers"))
    else:
        workers = f" on each of {summary['workers']} workers" if summary["workers"] > 1 else ""
        rows.append(("devices", ", ".join(summary["devices"]) + workers))
    per_op, inter_op = (summary["threads"][k] or "one per core" for k in ("intra_op", "inter_op"))
    rows.append(("threads", f"TensorFlow: {per_op} per op, {inter_op} inter-op"))
    if config.mixed_precision:
        rows.append(("precision", f"mixed {config.mixed_precision} (Dense layers)"))
    if args.export:
        rows.append(("SavedModel", args.export))
    if args.save:
        rows.append(("run", args.save))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}} {v}" for k, v in rows))
    if args.json:
        write_json_atomic(args.json, summary)


RUN_MODEL, RUN_JSON = "model.keras", "run.json"


def _save_run(model, summary: dict, target: str) -> None:
    """A run directory: the Keras model with its optimizer state, and the summary with the config and split."""
    from tfrec import export

    with export.staged_directory(target) as staging:
        export.save_keras(model, staging / RUN_MODEL)
        write_json_atomic(staging / RUN_JSON, summary)


def _load_run(source: str):
    """The model of a run directory or ``.keras`` file, and the training table whose ratings it knows (or None)."""
    from tfrec import data, export

    path = Path(source)
    if not path.exists():
        raise TfrecError(f"{path}: no such run directory or .keras file")
    if path.is_dir():
        if not (path / RUN_MODEL).is_file() or not (path / RUN_JSON).is_file():
            raise TfrecError(f"{path}: not a run directory (expected {RUN_MODEL} and {RUN_JSON})")
        try:
            run = json.loads((path / RUN_JSON).read_text())
            config = run["config"]
            spec, split, seed, recorded = config["data"], config["split"], config["seed"], run["split_fingerprint"]
        except (ValueError, KeyError, TypeError) as e:
            raise TfrecError(f"{path / RUN_JSON}: not a tfrec run summary ({e})") from None
        table = data.load(spec, columns=config.get("columns"), delimiter=config.get("delimiter"))
        parts = data.split(table, split, seed=seed)  # their own errors name the data
        if parts.fingerprint != recorded:
            raise TfrecError(
                f"{path / RUN_JSON}: the data {spec!r} no longer splits as it did in training "
                f"(fingerprint {parts.fingerprint}, recorded {recorded})"
            )
        return export.load_keras(path / RUN_MODEL), parts.train
    return export.load_keras(path), None


def _export(args) -> None:
    _import_tensorflow_quietly()
    from tfrec import export

    out = Path(args.out)
    if out.exists():
        raise TfrecError(f"--out {out}: already exists")
    model, train = _load_run(args.source)
    if train is None and model.stored_ratings() is None:  # AutoRec keeps its ratings; others do not
        print(f"tfrec: note: {args.source} holds no training ratings, so recommend leaves nothing out "
              "(export a `tfrec train --save` directory instead)", file=sys.stderr)  # fmt: skip
    export.save(model, out, rated=train, clip=not args.no_clip)
    print(out)


def _predict(args) -> None:
    _import_tensorflow_quietly()
    import tensorflow as tf

    from tfrec import export

    loaded = export.load(args.path)
    # A factorization machine's serving_default also takes side features; serving_ids uses the held ones.
    signature = loaded.signatures.get("serving_ids", loaded.signatures["serving_default"])
    item_key = export.item_key(loaded)
    out = signature(user_id=tf.constant([args.user]), **{item_key: tf.constant([args.item])})
    print(f"{out['predictions'].numpy()[0]:.4f}")


def _recommend(args) -> None:
    _import_tensorflow_quietly()
    import tensorflow as tf

    from tfrec import export

    loaded = export.load(args.path)
    name = "recommend_including_rated" if args.include_rated else "recommend"
    out = loaded.signatures[name](user_id=tf.constant([args.user]), k=tf.constant(args.k, tf.int32))
    item_key = export.item_key(loaded)
    ranked = [(item.decode(), float(score)) for item, score in zip(out[item_key].numpy()[0], out["scores"].numpy()[0])]
    ranked = [(item, score) for item, score in ranked if item]  # "": fewer items than k left to recommend
    if args.json:
        listed = {"user_id": args.user, item_key: [i for i, _ in ranked], "scores": [s for _, s in ranked]}
        if args.json == "-":
            print(json.dumps(listed))
            return
        write_json_atomic(args.json, listed)
    width = max([12, *(len(item) for item, _ in ranked)])
    print(f"{'rank':>4}  {item_key:<{width}} score")
    for rank, (item, score) in enumerate(ranked, 1):
        print(f"{rank:>4}  {item:<{width}} {score:.4f}")


def _info(args) -> None:
    _import_tensorflow_quietly()
    from tfrec import data

    summary = data.load(args.name).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{summary['name']}  ({summary['source']})")
    for key in ("users", "items", "ratings"):
        print(f"  {key:<8} {summary[key]:>12,}")
    print(f"  {'density':<8} {summary['density']:>12.4%}")
    print(f"  {'mean':<8} {summary['rating_mean']:>12.4f}")
    total = summary["ratings"]
    print("  rating histogram:")
    for value, count in summary["rating_histogram"].items():
        print(f"    {value:>5}  {count:>10,}  {'#' * round(40 * count / total)}")
    print(f"  features: {', '.join(summary['features'])}")


def _download(args) -> None:
    _import_tensorflow_quietly()
    from tfrec import data

    print(data.download(args.name))


def _import_torch(args) -> int:
    _import_tensorflow_quietly()
    from tfrec.convert import command

    return command.run(args)


def _build_kernels(args) -> None:
    import time

    _import_tensorflow_quietly()
    from tfrec import ops

    if not ops.enabled():
        raise TfrecError("TFREC_NATIVE_OPS turns the native kernels off: unset it to build them")
    start = time.perf_counter()
    try:
        path = ops.build()
    except RuntimeError as e:
        raise TfrecError(f"the native kernels did not build: {e}") from None
    print(f"{path} ({time.perf_counter() - start:.1f} s)")


def _other_command(entry, argv) -> int:
    target = entry.load()
    if getattr(target, "tensorflow", False):
        _import_tensorflow_quietly()
    try:
        return target(argv, parser_class=_Parser) or 0
    except TfrecError as e:
        print(f"tfrec: error: {e}", file=sys.stderr)
        return DATA_ERROR


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = registry.discover_commands().find(argv[0]) if argv else None
    if command is not None:  # another package's command parses its own arguments
        return _other_command(command, argv[1:])
    args = _parser().parse_args(argv)
    command = args.command if args.command != "data" else f"data {args.data_command}"
    handler = {
        "train": _train, "export": _export, "predict": _predict, "recommend": _recommend,
        "data info": _info, "data download": _download, "import-torch": _import_torch,
        "build-kernels": _build_kernels,
    }[command]  # fmt: skip
    try:
        status = handler(args)
    except TfrecError as e:
        print(f"tfrec: error: {e}", file=sys.stderr)
        return DATA_ERROR
    except KeyboardInterrupt:
        print("tfrec: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
