"""``python -m parity check [CASE...]`` (and ``tfrec parity``): the TensorFlow port against the fixtures.

Trajectory tier: the tfrec model gets the reference's initial weights, replays
its batches in its order with ``train_on_batch`` (tfrec's own ``train_step``),
and must match every step's data loss and the final test predictions to a
relative ``TRAJECTORY_RTOL`` in float32. The port's side of each framework
difference is explicit here:

- Adam: Keras adds epsilon to ``sqrt(v)`` before bias correction, PyTorch
  after; ``adaptive_epsilon=True`` makes Keras scale it as PyTorch does.
- Adagrad: Keras starts its accumulator at 0.1 and puts epsilon inside the
  square root; PyTorch starts at 0 with epsilon 1e-10 outside. With NCF's tiny
  initial gradients that differs by percent, so the port uses
  ``tfrec.optimizers.TorchAdagrad``, which divides as PyTorch does.
- Weight decay: PyTorch's ``weight_decay=w`` adds ``w * p`` to the gradient;
  Keras' ``L2(l)`` adds ``2 * l * p``. AutoRec's ``l2`` is the reference's
  ``weight_decay = 2 * l2`` on the weight matrices only (biases undecayed).
- MF/NCF ``l2`` is tfrec's per-batch penalty on looked-up rows; the reference
  adds the same term to its loss (``penalty``), not weight decay.
- AutoRec's masked loss is a mean over observed entries on both sides
  (``loss_normalization="observed"``).
- Initializers: the trajectory tier copies the reference's initial weights.
  The metric tier draws from the same distributions: normal embeddings of the
  case's std, and for AutoRec ``init="torch"`` (``nn.Linear``'s uniform), since
  Keras' Glorot init ends 0.006 RMSE away. NCF's tower keeps Glorot: it lands
  within tolerance either way.

Checking needs TensorFlow only, never torch.
"""

from __future__ import annotations

import inspect

import numpy as np

from parity import fixtures_io
from parity.cases import ALL_CASES, METRIC_ATOL, TRAJECTORY_RTOL, Case, case_config
from parity.data import case_data


def keras_optimizer(case: Case):
    """The Keras optimizer that takes PyTorch's steps for the case's optimizer (see module docstring)."""
    from tfrec._keras import tf
    from tfrec.optimizers import TorchAdagrad, torch_adam

    if case.optimizer == "sgd":
        return tf.keras.optimizers.SGD(case.learning_rate)
    if case.optimizer == "adagrad":
        return TorchAdagrad(case.learning_rate)
    return torch_adam(case.learning_rate)


def tf_model(case: Case, d):
    """The case's tfrec model, built as ``tfrec train`` builds it (its family's arguments), compiled for the case."""
    from tfrec import families
    from tfrec._keras import tf

    cls = families.model_class(case.model)
    kwargs = families.model_arguments(case.model, case_config(case))
    if _takes(cls, "embeddings_initializer"):
        # The reference's normal init; a trajectory case overwrites it with the reference's draws anyway.
        kwargs["embeddings_initializer"] = tf.keras.initializers.RandomNormal(stddev=case.init_std)
    model = cls.from_table(d.train, **kwargs)
    model.compile(optimizer=keras_optimizer(case))
    return model


def _takes(cls, argument: str) -> bool:
    """Whether ``cls`` or a class it extends names ``argument`` in its constructor."""
    return any(argument in inspect.signature(c.__init__).parameters for c in cls.__mro__ if "__init__" in vars(c))


def load_initial(model, arrays: dict) -> None:
    """Copies the reference's initial ``state_dict`` into the tfrec model, through tfrec's PyTorch converter."""
    from tfrec.convert import load_state

    load_state(model, {k.removeprefix("initial/"): v for k, v in arrays.items() if k.startswith("initial/")})


def _features(d, rows):
    from tfrec._keras import tf

    if d.vectors is not None:
        return {"ratings": tf.constant(d.vectors[rows]), "mask": tf.constant(d.mask[rows])}
    train = d.train
    return {
        "user_id": tf.constant(train.user_id[rows]),
        "movie_id": tf.constant(train.movie_id[rows]),
        "user_rating": tf.constant(train.rating[rows]),
    }


def trajectory(case: Case, record: dict, arrays: dict) -> dict:
    """Replays the case in TensorFlow; returns the differences and whether they pass."""
    from tfrec._keras import tf

    d = case_data(case)
    if d.fingerprint != record["split_fingerprint"]:
        raise ValueError(f"{case.name}: split fingerprint {d.fingerprint} != fixture's {record['split_fingerprint']}")
    model = tf_model(case, d)
    model(_features(d, np.arange(2)))  # builds every layer
    load_initial(model, arrays)
    batches = np.split(arrays["batches"], np.cumsum(arrays["batch_sizes"])[:-1])
    losses = []
    for rows in batches:
        out = model.train_on_batch(_features(d, rows), reset_metrics=True, return_dict=True)
        losses.append(out["loss"])
    if d.vectors is not None:
        full = model(_features(d, np.arange(len(d.vectors))), training=True).numpy()
        predictions = full[d.test_rows_in_vectors, d.test_columns]
    else:
        test = {"user_id": tf.constant(d.train.user_ids[np.unique(d.train.user)][d.test_users]),
                "movie_id": tf.constant(d.train.item_ids[np.unique(d.train.item)][d.test_items])}  # fmt: skip
        predictions = model(test, training=True).numpy()
    ref_losses = np.array(record["step_losses"])
    loss_diff = np.abs(np.array(losses) - ref_losses) / np.maximum(np.abs(ref_losses), 1e-12)
    # Relative at the rating scale: a prediction near 0 (MF's dot products can be) is compared to 1.
    pred_diff = np.abs(predictions - arrays["predictions"]) / np.maximum(np.abs(arrays["predictions"]), 1.0)
    return {
        "case": case.name,
        "tier": "trajectory",
        "steps": len(losses),
        "max_rel_loss_diff": float(loss_diff.max()),
        "max_rel_prediction_diff": float(pred_diff.max()),
        "tolerance": TRAJECTORY_RTOL,
        "passed": bool(loss_diff.max() <= TRAJECTORY_RTOL and pred_diff.max() <= TRAJECTORY_RTOL),
        "reference_epoch_losses": record["epoch_losses"],
        "port_epoch_losses": [float(np.mean(e)) for e in np.array_split(np.array(losses), case.epochs)],
    }


def metric(case: Case, record: dict) -> dict:
    """Trains the tfrec model once per seed with ``model.fit``; compares test RMSE/MAE means."""
    from tfrec import data as tfdata
    from tfrec._keras import tf

    d = case_data(case)
    if d.fingerprint != record["split_fingerprint"]:
        raise ValueError(f"{case.name}: split fingerprint {d.fingerprint} != fixture's {record['split_fingerprint']}")
    vocab_users, vocab_items = d.train.user_ids[np.unique(d.train.user)], d.train.item_ids[np.unique(d.train.item)]
    test = {"user_id": tf.constant(vocab_users[d.test_users]), "movie_id": tf.constant(vocab_items[d.test_items])}
    runs = []
    for seed in case.seeds:
        tf.keras.utils.set_random_seed(seed)
        model = tf_model(case, d)
        # Enough steps per call to hide Python even at one rating per step.
        model.compile(optimizer=keras_optimizer(case), steps_per_execution=max(16, 4096 // case.batch_size))
        if d.vectors is not None:
            train = tfdata.vector_dataset(d.train, d.vectors_by, case.batch_size, shuffle=True, seed=seed)
        else:  # the model's row numbers instead of id strings: the same batches, no string lookups
            vocabularies = (model.user_vocabulary, model.item_vocabulary)
            features = ("user_id", "movie_id", "user_rating")
            train = tfdata.dataset(
                d.train, case.batch_size, shuffle=True, seed=seed, features=features, vocabularies=vocabularies
            )
        history = model.fit(train, epochs=case.epochs, verbose=0)
        error = model(test).numpy().astype(np.float64) - d.test_ratings  # clipped to the rating range, as the reference
        runs.append({
            "seed": seed, "epoch_losses": history.history["loss"],
            "test_rmse": float(np.sqrt(np.mean(error**2))), "test_mae": float(np.mean(np.abs(error))),
        })  # fmt: skip
    result = {"case": case.name, "tier": "metric", "passed": True, "runs": runs}
    for key in ("test_rmse", "test_mae"):
        port = np.array([r[key] for r in runs])
        ref = record[key]
        tolerance = max(METRIC_ATOL, 3 * ref["std"])
        diff = float(port.mean() - ref["mean"])
        result[key] = {"reference": ref["mean"], "reference_std": ref["std"], "port": float(port.mean()),
                       "port_std": float(port.std()), "difference": diff, "tolerance": tolerance}  # fmt: skip
        result["passed"] &= abs(diff) <= tolerance
    result["reference_epoch_losses"] = np.mean([r["epoch_losses"] for r in record["runs"]], axis=0).tolist()
    result["port_epoch_losses"] = np.mean([r["epoch_losses"] for r in runs], axis=0).tolist()
    return result


def check(name: str) -> dict:
    """Checks one case (either tier) against its fixture."""
    case = ALL_CASES[name]
    record, arrays = fixtures_io.read(name)
    return metric(case, record) if case.tier == "metric" else trajectory(case, record, arrays)


def describe(r: dict) -> str:
    verdict = "PASS" if r["passed"] else "FAIL"
    if r["tier"] == "trajectory":
        return (
            f"{verdict}  {r['case']:<22} {r['steps']:>4} steps  loss rel diff {r['max_rel_loss_diff']:.1e}  "
            f"prediction rel diff {r['max_rel_prediction_diff']:.1e}  (tolerance {r['tolerance']:.0e})"
        )
    rmse, mae = r["test_rmse"], r["test_mae"]
    return (
        f"{verdict}  {r['case']:<22} test RMSE {rmse['port']:.4f} vs {rmse['reference']:.4f} "
        f"({rmse['difference']:+.4f}, tolerance {rmse['tolerance']:.4f})  MAE {mae['port']:.4f} vs "
        f"{mae['reference']:.4f} ({mae['difference']:+.4f}, tolerance {mae['tolerance']:.4f})"
    )


def main(names) -> int:
    failed = 0
    for name in names or list(ALL_CASES):
        r = check(name)
        failed += not r["passed"]
        print(describe(r), flush=True)
    return 1 if failed else 0
