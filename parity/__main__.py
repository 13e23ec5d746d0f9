"""``python -m parity {generate,check,report} [CASE...]``."""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity", description="tfrec's PyTorch parity harness")
    parser.add_argument("command", choices=["generate", "check", "report"])
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    args = parser.parse_args(argv)
    from parity.cases import ALL_CASES as CASES

    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    import tfrec  # noqa: F401  (Keras 2 before TensorFlow loads)

    if args.command == "generate":
        from parity.generate import main as run
    elif args.command == "report":
        from parity.report import main as run
    else:
        from parity.check import main as run
    return run(args.cases)


if __name__ == "__main__":
    sys.exit(main())
