"""Proof that an exported SavedModel predicts what the PyTorch weights predict.

The SavedModel is loaded by ``tf.saved_model.load`` in a separate Python process that does not
import tfrec (as TensorFlow Serving would load it), and its ``serving_default`` scores the pairs.
The expected scores come from the PyTorch weights themselves: the model family's numpy forward pass
(``RatingModel.torch_scores``, float64, no torch), or scores the caller computed with the PyTorch
model. The check passes when the largest absolute difference is at most ``TOLERANCE`` (1e-5, the
bound Hugging Face's PyTorch-to-TensorFlow equivalence tests use).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from tfrec.errors import DataError

TOLERANCE = 1e-5

_SCORE = """
import json, sys
import numpy as np
import tensorflow as tf
with open(sys.argv[1]) as f:
    jobs = json.load(f)
for export, users, items, out in jobs:
    serve = tf.saved_model.load(export).signatures["serving_default"]
    got = serve(user_id=tf.constant(users, tf.string), movie_id=tf.constant(items, tf.string))
    np.save(out, got["predictions"].numpy().astype(np.float64))
"""


def sample_pairs(users: list[str], items: list[str], n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (user row, item row) pairs drawn uniformly from the id maps' cross product (0-based rows)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, len(users), n), rng.integers(0, len(items), n)


def pairs_of(table, users: list[str], items: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """``(user rows, item rows, left out)``: a ratings table's pairs whose ids are both in the id maps."""
    user_row = {u: r for r, u in enumerate(users)}
    item_row = {i: r for r, i in enumerate(items)}
    u = np.array([user_row.get(str(x), -1) for x in table.user_id], np.int64)
    i = np.array([item_row.get(str(x), -1) for x in table.movie_id], np.int64)
    keep = (u >= 0) & (i >= 0)
    if not keep.any():
        raise DataError(f"{table.name}: none of its pairs has both ids in the id maps")
    return u[keep], i[keep], int((~keep).sum())


def saved_model_scores(export_dir, user_ids, item_ids, timeout: float = 300) -> np.ndarray:
    """``serving_default``'s predictions for the id pairs, from a separate process without tfrec."""
    return saved_models_scores([(export_dir, user_ids, item_ids)], timeout)[0]


def saved_models_scores(jobs, timeout: float = 600) -> list[np.ndarray]:
    """:func:`saved_model_scores` of several ``(export_dir, user_ids, item_ids)`` in one separate process."""
    with tempfile.TemporaryDirectory() as tmp:
        spec, outs = os.path.join(tmp, "jobs.json"), [os.path.join(tmp, f"{k}.npy") for k in range(len(jobs))]
        with open(spec, "w") as f:
            json.dump([[os.fspath(d), list(map(str, u)), list(map(str, i)), o] for (d, u, i), o in zip(jobs, outs)], f)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
        done = subprocess.run(
            [sys.executable, "-c", _SCORE, spec], capture_output=True, text=True, env=env, timeout=timeout
        )  # fmt: skip
        if done.returncode:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(f"scoring the SavedModel in a separate process failed: {tail}")
        return [np.load(o, allow_pickle=False) for o in outs]


def compare(expected: np.ndarray, got: np.ndarray, tolerance: float = TOLERANCE) -> dict:
    """The report: pairs checked, the largest absolute and relative differences, and the verdict."""
    expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    diff = np.abs(expected - got)
    worst = int(np.argmax(diff)) if len(diff) else 0
    return {
        "pairs": int(len(diff)),
        "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
        "mean_abs_diff": float(diff.mean()) if len(diff) else 0.0,
        "worst_pair": worst,
        "tolerance": tolerance,
        "passed": bool(len(diff) and diff.max() <= tolerance),
    }


def verdict(report: dict) -> str:
    """One line for a person."""
    word = "PASS" if report["passed"] else "FAIL"
    return (
        f"{word}: {report['pairs']} pairs, max |difference| {report['max_abs_diff']:.3g} "
        f"(tolerance {report['tolerance']:g}), mean {report['mean_abs_diff']:.3g}, "
        f"expected from {report['expected_from']}"
    )
