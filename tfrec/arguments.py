"""Argument types for command lines: ``tfrec``'s own, and any other tool's (the parity harness's ``tfrec bench``).

Each raises ``argparse.ArgumentTypeError``, which argparse turns into one usage line naming the flag.
"""

from __future__ import annotations

import argparse


def _number(kind, text: str, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def nonnegative(text: str) -> int:
    value = _number(int, text, "0 or more")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive(text: str) -> int:
    value = _number(int, text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(float, text, "a positive number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value
