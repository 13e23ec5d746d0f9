"""The ``tfrec`` command: ``train``, ``tune``, ``export``, ``predict``, ``recommend``, ``data``, ``import-torch``,
``build-kernels``, and the commands other packages register (``tfrec.registry.commands``: the parity
harness's ``parity`` and ``bench``). One module per group: :mod:`tfrec.cli.train`, :mod:`tfrec.cli.tune`,
:mod:`tfrec.cli.serving`, :mod:`tfrec.cli.data`, :mod:`tfrec.cli.tools`.

A user's mistake (a bad flag, an unknown dataset, a malformed file) ends with
one line on stderr and exit status 2 (usage) or 1 (data), never a traceback.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads; the CLI, not the library

from tfrec import registry  # noqa: E402
from tfrec.cli import data, serving, tools, train, tune  # noqa: E402
from tfrec.cli._common import DATA_ERROR, USAGE_ERROR, Parser, import_tensorflow_quietly  # noqa: E402
from tfrec.errors import TfrecError  # noqa: E402

__all__ = ["main", "DATA_ERROR", "USAGE_ERROR"]

GROUPS = (train, tune, serving, data, tools)


def _parser() -> tuple[Parser, dict]:
    """The parser of every command, and each command's handler."""
    parser = Parser(prog="tfrec", description="Classic rating-prediction recommenders on TensorFlow Recommenders.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    handlers = {}
    for group in GROUPS:
        handlers.update(group.add_parsers(sub))
    for entry in registry.discover_commands().entries():  # other packages' commands (the parity harness's)
        doc = (entry.load().__doc__ or "").strip().splitlines()
        sub.add_parser(entry.name, help=doc[0] if doc else "", add_help=False)
    return parser, handlers


def _other_command(entry, argv) -> int:
    target = entry.load()
    if getattr(target, "tensorflow", False):
        import_tensorflow_quietly()
    try:
        return target(argv, parser_class=Parser) or 0
    except TfrecError as e:
        print(f"tfrec: error: {e}", file=sys.stderr)
        return DATA_ERROR


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = registry.discover_commands().find(argv[0]) if argv else None
    if command is not None:  # another package's command parses its own arguments
        return _other_command(command, argv[1:])
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    command = args.command if args.command != "data" else f"data {args.data_command}"
    try:
        status = handlers[command](args)
    except TfrecError as e:
        print(f"tfrec: error: {e}", file=sys.stderr)
        return DATA_ERROR
    except KeyboardInterrupt:
        print("tfrec: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
