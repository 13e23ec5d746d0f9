"""``tfrec data info`` and ``tfrec data download``."""

from __future__ import annotations

import json

from tfrec.cli._common import Parser, import_tensorflow_quietly


def add_parsers(sub) -> dict:
    """``data info`` and ``data download``; returns their handlers."""
    from tfrec.data.sources import names_help  # no TensorFlow

    data = sub.add_parser("data", help="inspect or fetch datasets", description=f"What --data takes: {names_help()}.")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    info = data_sub.add_parser("info", help="counts, density and rating histogram of a dataset")
    info.add_argument("name", help="dataset name, directory or spec")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.add_argument("--columns", help="user=COL,item=COL[,rating=COL][,timestamp=COL] of your own file or shards")
    info.add_argument("--delimiter", help="of your own delimited file; default sniffed")
    fetch = data_sub.add_parser("download", help="download a MovieLens archive into the cache")
    fetch.add_argument("name")
    return {"data info": _info, "data download": _download}


def _info(args) -> None:
    import_tensorflow_quietly()
    from tfrec import data

    summary = data.load(args.name, columns=args.columns, delimiter=args.delimiter).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{summary['name']}  ({summary['source']})")
    for key in ("users", "items", "ratings"):
        print(f"  {key:<8} {summary[key]:>12,}")
    print(f"  {'density':<8} {summary['density']:>12.4%}")
    print(f"  {'mean':<8} {summary['rating_mean']:>12.4f}")
    total = summary["ratings"]
    print("  rating histogram:" if summary["rating_histogram"] else "  rating histogram: over 100 distinct values")
    for value, count in summary["rating_histogram"].items():
        print(f"    {value:>5}  {count:>10,}  {'#' * round(40 * count / total)}")
    print(f"  features: {', '.join(summary['features'])}")


def _download(args) -> None:
    import_tensorflow_quietly()
    from tfrec import data

    print(data.download(args.name))
