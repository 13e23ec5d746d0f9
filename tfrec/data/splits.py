"""Deterministic train/test splits of a ratings table, each with a fingerprint.

A fingerprint is a short sha256 of the table's content digest and the row ids
in each part, in order. Two splits with the same fingerprint hold the same
ratings in the same order; parity fixtures record it and refuse a mismatch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import numpy as np

from tfrec.data.table import Ratings
from tfrec.errors import DataError

SPLITS_HELP = "ratio[:TEST_FRACTION] (default ratio:0.2), u1..u5, or leave-last-out"


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """A train and a test part of one table, with the rows each took.

    Attributes:
      train: The training ratings.
      test: The test ratings.
      train_rows: Row positions of ``train`` in the source table.
      test_rows: Row positions of ``test`` in the source table.
      name: How it was made, e.g. ``"ratio:0.2,seed=42"``.
      fingerprint: 16 hex digits identifying the split of that exact table.
    """

    train: Ratings
    test: Ratings
    train_rows: np.ndarray
    test_rows: np.ndarray
    name: str
    fingerprint: str


def _make(table: Ratings, train_rows, test_rows, name: str) -> Split:
    label = f"{table.name} split {name}"
    if len(train_rows) == 0 or len(test_rows) == 0:
        part = "train" if len(train_rows) == 0 else "test"
        raise DataError(f"{label}: the {part} part is empty ({len(table)} ratings in the table)")
    h = hashlib.sha256(table.digest().encode())
    for rows in (train_rows, test_rows):
        h.update(np.asarray(rows, np.int64).tobytes())
        h.update(b"|")
    return Split(
        train=table.take(train_rows, f"{table.name}/train"),
        test=table.take(test_rows, f"{table.name}/test"),
        train_rows=np.asarray(train_rows, np.int64),
        test_rows=np.asarray(test_rows, np.int64),
        name=name,
        fingerprint=h.hexdigest()[:16],
    )


def random_split(table: Ratings, test_fraction: float = 0.2, seed: int = 42, block: int = 0) -> Split:
    """Shuffles the rows with ``numpy.random.default_rng(seed)`` and cuts off a test part.

    Args:
      table: The ratings.
      test_fraction: Share of ratings in the test part, in (0, 1).
      seed: Seed of the permutation.
      block: Which test-sized block of the permutation is the test part: 0 is its first rows, ``k``
        the ``k``-th block after them. The blocks of one seed are disjoint, so blocks ``0..K-1`` are
        ``K`` validation cuts that share no rating (what ``tfrec tune --folds K`` ranks on).

    Raises:
      DataError: if ``test_fraction`` is not in (0, 1), the block does not fit in the table, or a part
        would be empty.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(table))
    n_test = int(round(len(table) * test_fraction))
    if block < 0 or (block + 1) * n_test > len(table):
        raise DataError(f"block {block} of {n_test} ratings does not fit in {table.name}'s {len(table)}")
    start, stop = block * n_test, (block + 1) * n_test
    name = f"ratio:{test_fraction:g},seed={seed}" + (f",block={block}" if block else "")
    return _make(table, np.concatenate([order[:start], order[stop:]]), order[start:stop], name)


def fold_split(table: Ratings, fold: int, folds: int = 5) -> Split:
    """The ``fold``-th of ``folds`` contiguous test blocks in the table's row order.

    On ML-100K in ``u.data`` order (the GroupLens files and the recbole copy both
    keep it) this is exactly GroupLens's ``u{fold}.base``/``u{fold}.test``:
    ``mku.sh`` takes lines ``(fold-1)*20000+1 .. fold*20000`` of ``u.data`` as the
    test set. Rows keep ``u.data`` order here (``mku.sh`` also sorts each file by
    user and item, which changes no membership).
    """
    if not 1 <= fold <= folds:
        raise DataError(f"fold must be in 1..{folds}, got {fold}")
    n = len(table)
    start, stop = (fold - 1) * n // folds, fold * n // folds
    rows = np.arange(n)
    test = (rows >= start) & (rows < stop)
    return _make(table, rows[~test], rows[test], f"u{fold}")


def leave_last_out(table: Ratings) -> Split:
    """Each user's latest rating (by timestamp; the later row wins a tie) is the test part.

    Users with a single rating keep it in training, so every test user is known.
    """
    rows = np.arange(len(table))
    order = np.lexsort((rows, table.timestamp, table.user))
    users_sorted = table.user[order]
    is_last = np.r_[users_sorted[1:] != users_sorted[:-1], True]
    counts = np.bincount(table.user, minlength=table.num_users)
    last = order[is_last & (counts[users_sorted] > 1)]
    test = np.zeros(len(table), bool)
    test[last] = True
    return _make(table, rows[~test], rows[test], "leave-last-out")


def parse(spec: str) -> tuple[str, float | int | None]:
    """``("ratio", F)``, ``("fold", k)`` or ``("leave-last-out", None)`` for a split spec (see :func:`split`).

    Raises:
      DataError: an unknown spec (the message lists the valid ones), or a test fraction outside (0, 1).
    """
    text = spec.strip().lower()
    match = re.fullmatch(r"ratio(?::([0-9.]+))?", text)
    if match:
        try:
            fraction = float(match.group(1) or 0.2)
        except ValueError:
            fraction = -1.0
        if not 0.0 < fraction < 1.0:
            raise DataError(f"split {spec!r}: the test fraction must be a number in (0, 1), as in ratio:0.2")
        return "ratio", fraction
    match = re.fullmatch(r"u([1-5])", text)
    if match:
        return "fold", int(match.group(1))
    if text in ("leave-last-out", "loo"):
        return "leave-last-out", None
    raise DataError(f"unknown split {spec!r}: use {SPLITS_HELP}")


def split(table: Ratings, spec: str = "ratio", seed: int = 42) -> Split:
    """Splits by a spec string: ``ratio[:F]``, ``u1``..``u5`` or ``leave-last-out``.

    Raises:
      DataError: an unknown spec (the message lists the valid ones).
    """
    kind, value = parse(spec)
    if kind == "ratio":
        return random_split(table, value, seed)
    if kind == "fold":
        return fold_split(table, value)
    return leave_last_out(table)
