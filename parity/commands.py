"""The harness's ``tfrec`` commands, which tfrec finds through the ``tfrec.commands`` entry points
(pyproject.toml) and never imports by name: ``tfrec parity [CASE...]`` and ``tfrec bench ...``.

A command is a callable ``(argv, parser_class) -> exit status``; the first line of its docstring is
its line in ``tfrec --help``, and ``tensorflow = True`` on it asks tfrec to import TensorFlow
(quietly) before calling it. This module imports nothing heavy, so ``tfrec --help`` stays fast.
"""

from __future__ import annotations

import argparse


def parity(argv, parser_class=argparse.ArgumentParser) -> int:
    """check the models against the PyTorch reference fixtures"""
    parser = parser_class(prog="tfrec parity", description="Checks tfrec's models against the PyTorch fixtures.")
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    args = parser.parse_args(argv)
    from parity.cases import ALL_CASES

    from tfrec.errors import TfrecError

    unknown = [c for c in args.cases if c not in ALL_CASES]
    if unknown:
        raise TfrecError(f"unknown parity case(s) {', '.join(unknown)}; known: {', '.join(ALL_CASES)}")
    from parity.check import main as check

    return check(args.cases)


parity.tensorflow = True


def bench(argv, parser_class=argparse.ArgumentParser) -> int:
    """epoch time of model.fit beside the PyTorch reference (see tfrec bench --help)"""
    from parity import bench as timing

    return timing.main(argv, parser_class=parser_class)
