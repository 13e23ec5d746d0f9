"""``tfrec export``, ``tfrec predict`` and ``tfrec recommend``: run directories and SavedModels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tfrec.arguments import positive
from tfrec.cli._common import import_tensorflow_quietly
from tfrec.errors import TfrecError
from tfrec.files import write_json_atomic


def add_parsers(sub) -> dict:
    """``export``, ``predict`` and ``recommend``; returns their handlers."""
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
    recommend.add_argument("-k", type=positive, default=10, help="how many (default %(default)s)")
    recommend.add_argument("--include-rated", action="store_true", help="do not leave out items rated in training")
    recommend.add_argument(
        "--json", metavar="PATH", help="also write the list as JSON, keyed as the model's signature ('-': stdout only)"
    )
    return {"export": _export, "predict": _predict, "recommend": _recommend}


RUN_MODEL, RUN_JSON = "model.keras", "run.json"


def save_run(model, summary: dict, target: str) -> None:
    """A run directory: the Keras model with its optimizer state, and the summary with the config and split."""
    from tfrec import export

    with export.staged_directory(target) as staging:
        export.save_keras(model, staging / RUN_MODEL)
        write_json_atomic(staging / RUN_JSON, summary)


def load_run(source: str):
    """The model of a run directory or ``.keras`` file, and the training table whose ratings it knows (or None)."""
    from tfrec import data, export
    from tfrec.data.stream import Stream

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
        if isinstance(table, Stream):  # streamed shards: no table of the rated pairs to hold
            return export.load_keras(path / RUN_MODEL), None
        parts = data.split(table, split, seed=seed)  # their own errors name the data
        if parts.fingerprint != recorded:
            raise TfrecError(
                f"{path / RUN_JSON}: the data {spec!r} no longer splits as it did in training "
                f"(fingerprint {parts.fingerprint}, recorded {recorded})"
            )
        return export.load_keras(path / RUN_MODEL), parts.train
    return export.load_keras(path), None


def _export(args) -> None:
    import_tensorflow_quietly()
    from tfrec import export

    out = Path(args.out)
    if out.exists():
        raise TfrecError(f"--out {out}: already exists")
    model, train = load_run(args.source)
    if train is None and model.stored_ratings() is None:  # AutoRec keeps its ratings; others do not
        why = ("was trained on streamed shards, whose rated pairs stay in their files" if Path(args.source).is_dir()
               else "holds no training ratings (export a `tfrec train --save` directory instead)")  # fmt: skip
        print(f"tfrec: note: {args.source} {why}, so recommend leaves nothing out", file=sys.stderr)
    export.save(model, out, rated=train, clip=not args.no_clip)
    print(out)


def _predict(args) -> None:
    import_tensorflow_quietly()
    import tensorflow as tf

    from tfrec import export

    loaded = export.load(args.path)
    # A factorization machine's serving_default also takes side features; serving_ids uses the held ones.
    signature = loaded.signatures.get("serving_ids", loaded.signatures["serving_default"])
    item_key = export.item_key(loaded)
    out = signature(user_id=tf.constant([args.user]), **{item_key: tf.constant([args.item])})
    print(f"{out['predictions'].numpy()[0]:.4f}")


def _recommend(args) -> None:
    import_tensorflow_quietly()
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
