"""``tfrec import-torch``: PyTorch weights and id maps in, a verified SavedModel out.

    tfrec import-torch mf.safetensors --model biased-mf --users users.txt --items items.txt \\
        --export models/mf/1 --verify sample

The SavedModel is written to a staging directory beside ``--export``; with ``--verify`` it is
scored in a separate process and moved into place only if every pair agrees with the weights'
own scores to 1e-5, so a failed import or check leaves nothing at ``--export``.
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
    p.add_argument("--ratings", metavar="DATA", help="AutoRec: the known ratings it predicts from (a ratings file)")
    p.add_argument("--global-mean", type=float, help="biased MF: the mean the PyTorch model adds outside its weights")
    p.add_argument("--feedback", choices=["explicit", "implicit"], help="NCF: implicit = a sigmoid output")
    p.add_argument(
        "--verify", metavar="DATA",
        help="check the export against the weights on a ratings file's pairs, or 'sample' (the id maps' cross product)",
    )  # fmt: skip
    p.add_argument("--pairs", type=positive, default=1000, help="pairs to check with --verify sample (default 1000)")
    p.add_argument("--json", metavar="PATH", help="also write the verification report as JSON ('-': stdout)")


def run(args) -> int:
    """Imports, exports (staged) and, with ``--verify``, checks before moving the export into place."""
    from tfrec import convert, data, export
    from tfrec.convert import verify

    target = Path(args.export)
    export.refuse_existing(target)
    options = {k: v for k, v in (("global_mean", args.global_mean), ("feedback", args.feedback)) if v is not None}
    if args.ratings:
        options["ratings"] = data.load(args.ratings)
    model = convert.from_torch(args.weights, args.model, args.users, args.items, mapping=args.map, **options)
    users, items = list(model.user_vocabulary), list(model.item_vocabulary)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        saved = export.save(model, staging / "model", clip=False)
        report = None
        if args.verify:
            if args.verify == "sample":
                u, i = verify.sample_pairs(users, items, args.pairs)
                left_out = 0
            else:
                u, i, left_out = verify.pairs_of(data.load(args.verify), users, items)
            state, _ = convert.canonical_state(args.weights, args.model, args.map)
            expected = model.torch_scores(state, u, i)
            got = verify.saved_model_scores(saved, [users[k] for k in u], [items[k] for k in i])
            report = {**verify.compare(expected, got), "expected_from": "the weights in numpy (float64)",
                      "left_out_pairs": left_out, "export": str(target)}  # fmt: skip
            print(verify.verdict(report))
            _write_json(args.json, report)
            if not report["passed"]:
                raise TfrecError(f"--verify: the export does not match the weights; nothing written to {target}")
        if target.exists():
            target.rmdir()  # refuse_existing let it through: an empty directory
        os.replace(saved, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(target)
    return 0


def _write_json(path, report) -> None:
    if not path:
        return
    text = json.dumps(report, indent=2)
    if path == "-":
        print(text)
        return
    Path(path).write_text(text + "\n", encoding="utf-8")
    print(f"report: {path}", file=sys.stderr)
