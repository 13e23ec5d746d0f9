"""Proof that an exported SavedModel predicts what the PyTorch weights predict.

The SavedModel is loaded by ``tf.saved_model.load`` in a separate Python process that does not
import tfrec (as TensorFlow Serving would load it), and its ``serving_default`` scores the pairs.
The expected scores come either from the user's own PyTorch model (a file of ``user,item,prediction``
rows it wrote: :func:`predictions_of`), the check that covers everything the model does, a mean
added outside its weights included; or from the PyTorch weights themselves: the model family's numpy
forward pass (``tfrec.convert.layouts``' ``scores``, float64, no torch), which proves the export equals the
weights and nothing more. The check passes when the largest absolute difference is at most ``TOLERANCE`` (1e-5, the
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
    loaded = tf.saved_model.load(export)
    serve = loaded.signatures["serving_default"]
    item = next(name for name in loaded.signatures["recommend"].structured_outputs if name != "scores")
    got = serve(user_id=tf.constant(users, tf.string), **{item: tf.constant(items, tf.string)})
    np.save(out, got["predictions"].numpy().astype(np.float64))
"""


def sample_pairs(users: list[str], items: list[str], n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (user row, item row) pairs drawn uniformly from the id maps' cross product (0-based rows)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, len(users), n), rng.integers(0, len(items), n)


def pairs_of(table, users: list[str], items: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """``(user rows, item rows, left out)``: a ratings table's pairs whose ids are both in the id maps."""
    u, i = _rows(table, users, items)
    keep = (u >= 0) & (i >= 0)
    if not keep.any():
        raise DataError(f"{table.name}: none of its pairs has both ids in the id maps")
    return u[keep], i[keep], int((~keep).sum())


def _rows(table, users: list[str], items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each rating's 0-based row in the id maps, -1 where its id is not there."""
    user_row = {u: r for r, u in enumerate(users)}
    item_row = {i: r for r, i in enumerate(items)}
    u = np.array([user_row.get(str(x), -1) for x in table.user_id], np.int64)
    i = np.array([item_row.get(str(x), -1) for x in table.movie_id], np.int64)
    return u, i


#: Column names of a predictions file (compared in lower case, letters and digits only).
PREDICTION_NAMES = ("prediction", "predictions", "predicted", "pred", "yhat")


def prediction_column(path) -> str | None:
    """The predictions column of a ratings-shaped file, or None if it has none (then it is a ratings file)."""
    from tfrec.data import files

    for name in files.column_names(path):
        if "".join(c for c in name.lower() if c.isalnum()) in PREDICTION_NAMES:
            return name
    return None


def predictions_of(path, column: str, users: list[str], items: list[str]):
    """``(user rows, item rows, predictions, left out)`` of a predictions file, for pairs both of whose ids
    are in the id maps; the user and item columns are found as in a ratings file (``user``, ``item``...).

    Raises:
      DataError: a file without such pairs, or a bad value (naming the file, line and column).
    """
    from tfrec.data import files

    table = files.load_file(path, {"rating": column})
    u, i = _rows(table, users, items)
    keep = (u >= 0) & (i >= 0)
    if not keep.any():
        raise DataError(f"{path}: none of its pairs has both ids in the id maps")
    return u[keep], i[keep], table.rating[keep].astype(np.float64), int((~keep).sum())


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
    signed = got - expected
    diff = np.abs(signed)
    worst = int(np.argmax(diff)) if len(diff) else 0
    return {
        "pairs": int(len(diff)),
        "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
        "mean_abs_diff": float(diff.mean()) if len(diff) else 0.0,
        "worst_pair": worst,
        "offset": float(signed.mean()) if len(diff) else 0.0,  # export minus expected, on average
        "offset_spread": float(signed.std()) if len(diff) else 0.0,
        "tolerance": tolerance,
        "passed": bool(len(diff) and diff.max() <= tolerance),
    }


def constant_offset(report: dict) -> float | None:
    """The difference every pair shares when a failed check is one constant (a global mean that differs), else None."""
    tolerance = report["tolerance"]
    if report["passed"] or abs(report["offset"]) <= tolerance or report["offset_spread"] > tolerance:
        return None
    return report["offset"]


def verdict(report: dict) -> str:
    """One line for a person."""
    word = "PASS" if report["passed"] else "FAIL"
    return (
        f"{word}: {report['pairs']} pairs, max |difference| {report['max_abs_diff']:.3g} "
        f"(tolerance {report['tolerance']:g}), mean {report['mean_abs_diff']:.3g}, "
        f"expected from {report['expected_from']}"
    )
