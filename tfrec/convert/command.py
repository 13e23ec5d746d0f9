"""``tfrec import-torch``: PyTorch weights and id maps in, a verified SavedModel out.

    tfrec import-torch mf.safetensors --model biased-mf --users users.txt --items items.txt \\
        --global-mean-from train.csv --export models/mf/1 --verify predictions.csv

The SavedModel is written to a staging directory beside ``--export``; with ``--verify`` it is
scored in a separate process and moved into place only if every pair agrees to 1e-5 with what is
expected: the user's own PyTorch model's predictions (a file with a ``prediction`` column), or the
weights' own scores (``sample``, or a ratings file's pairs). A failed import or check leaves
nothing at ``--export``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tfrec.errors import TfrecError


def add_parser(sub, positive, model_names) -> None:
    p = sub.add_parser("import-torch", help="a SavedModel from a trained PyTorch model's weights, checked")
    p.add_argument("weights", metavar="WEIGHTS", help="a .safetensors file, or a .pt/.pth/.bin state dict (torch)")
    p.add_argument("--model", required=True, choices=model_names, metavar="MODEL", help=", ".join(model_names))
    p.add_argument("--users", required=True, metavar="FILE", help="user ids in row order (or an id,row CSV)")
    p.add_argument("--items", required=True, metavar="FILE", help="item ids in row order (or an id,row CSV)")
    p.add_argument("--export", required=True, metavar="DIR", help="the SavedModel directory (new or empty)")
    p.add_argument("--map", action="append", default=[], metavar="THEIR=TFREC", help="rename a tensor (repeatable)")
    p.add_argument(
        "--ratings", metavar="DATA",
        help="the ratings the model was trained on (a ratings file): recommend leaves them out; AutoRec reads them",
    )  # fmt: skip
    mean = p.add_mutually_exclusive_group()
    mean.add_argument(
        "--global-mean", type=float, metavar="MEAN",
        help="biased MF: the mean the PyTorch model adds outside its weights (0: it adds none)",
    )  # fmt: skip
    mean.add_argument(
        "--global-mean-from", metavar="RATINGS_FILE",
        help="biased MF: that mean, as the mean rating of the file the model was trained on",
    )  # fmt: skip
    p.add_argument("--feedback", choices=["explicit", "implicit"], help="NCF: implicit = a sigmoid output")
    p.add_argument(
        "--item-key", choices=["item_id", "movie_id"], default="item_id",
        help="what the SavedModel calls items (default %(default)s; movie_id: MovieLens' name)",
    )  # fmt: skip
    p.add_argument(
        "--verify", metavar="FILE",
        help="check the export against your PyTorch model's predictions (a user,item,prediction file), or against "
        "the weights alone on a ratings file's pairs or on 'sample' (pairs of the id maps)",
    )  # fmt: skip
    p.add_argument("--pairs", type=positive, default=1000, help="pairs to check with --verify sample (default 1000)")
    p.add_argument("--json", metavar="PATH", help="also write the verification report as JSON ('-': stdout)")


def run(args) -> int:
    """Imports, exports (staged) and, with ``--verify``, checks before moving the export into place."""
    from tfrec import convert, export

    from tfrec import data, families

    target = Path(args.export)
    export.refuse_existing(target)
    options, rated = _options(args), data.load(args.ratings) if args.ratings else None
    if rated is not None and families.model_class(args.model).vector_kind(args.model):
        options["ratings"] = rated  # AutoRec predicts from the ratings it reads
    model = convert.from_torch(args.weights, args.model, args.users, args.items, mapping=args.map, **options)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        saved = export.save(model, staging / "model", rated=rated, clip=False)
        if args.verify:
            _verify(args, model, saved, target)
        if target.exists():
            target.rmdir()  # refuse_existing let it through: an empty directory
        os.replace(saved, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(target)
    return 0


def _options(args) -> dict:
    """The constructor arguments the weights do not give: the global mean, NCF's feedback, the item key."""
    import numpy as np

    from tfrec import data

    chosen = (("global_mean", args.global_mean), ("feedback", args.feedback), ("item_key", args.item_key))
    options = {k: v for k, v in chosen if v is not None}
    if args.global_mean_from:
        table = data.load(args.global_mean_from, one_per_pair=False)  # every row, as the PyTorch model saw them
        options["global_mean"] = float(table.rating.astype(np.float64).mean())
        print(f"global mean {options['global_mean']:.6g}: {len(table)} ratings of {args.global_mean_from}",
              file=sys.stderr)  # fmt: skip
    return options


def _verify(args, model, saved: Path, target: Path) -> None:
    """Scores the staged export in a separate process against what is expected; raises on a mismatch."""
    from tfrec import convert, data
    from tfrec.convert import layouts, verify

    users, items = list(model.user_vocabulary), list(model.item_vocabulary)
    column = None if args.verify == "sample" else verify.prediction_column(args.verify)
    if column is not None:  # the user's PyTorch model's own predictions
        u, i, expected, left_out = verify.predictions_of(args.verify, column, users, items)
        expected_from = f"{args.verify} (your model's predictions)"
    else:  # the weights alone, in numpy
        if args.verify == "sample":
            u, i = verify.sample_pairs(users, items, args.pairs)
            left_out = 0
        else:
            u, i, left_out = verify.pairs_of(data.load(args.verify), users, items)
        state, _ = convert.canonical_state(args.weights, args.model, args.map)
        expected = layouts.layout(type(model)).scores(model, state, u, i)
        expected_from = "the weights in numpy (float64)"
    got = verify.saved_model_scores(saved, [users[k] for k in u], [items[k] for k in i])
    report = {**verify.compare(expected, got), "expected_from": expected_from, "left_out_pairs": left_out,
              "export": str(target)}  # fmt: skip
    print(verify.verdict(report))
    _write_json(args.json, report)
    if not report["passed"]:
        what = "your model's predictions" if column is not None else "the weights"
        offset = verify.constant_offset(report)
        why = "" if offset is None else (
            f" (every pair is off by the same {offset:+.6g}: a global mean other than your model's? "
            "--global-mean / --global-mean-from)"
        )  # fmt: skip
        raise TfrecError(f"--verify: the export does not match {what}{why}; nothing written to {target}")


def _write_json(path, report) -> None:
    if not path:
        return
    text = json.dumps(report, indent=2)
    if path == "-":
        print(text)
        return
    Path(path).write_text(text + "\n", encoding="utf-8")
    print(f"report: {path}", file=sys.stderr)
