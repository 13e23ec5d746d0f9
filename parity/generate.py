"""``python -m parity generate [CASE...]``: run the PyTorch references and write the fixtures.

Needs torch (``pip install -e ".[parity]"``). Runs single-threaded with the
case's seed, so generating twice writes the same bytes.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from parity import fixtures_io
from parity.cases import ALL_CASES, Case
from parity.data import case_data


def _versions() -> dict:
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def generate(case: Case, root: Path = fixtures_io.FIXTURES) -> None:
    """Runs the reference for one case and writes its fixture."""
    if case.tier == "metric":
        generate_metric(case, root)
        return
    import torch

    from parity.reference import train as reference

    torch.set_num_threads(1)
    torch.manual_seed(case.seed)
    d = case_data(case)
    if d.vectors is not None:
        model = reference.build(case, d)
        ratings, mask = torch.tensor(d.vectors), torch.tensor(d.mask)
        initial = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        losses, batches = reference.train(case, model, None, ratings, mask)
        with torch.no_grad():
            full = model(ratings * mask).numpy()
        predictions = full[d.test_rows_in_vectors, d.test_columns]
    else:
        model = reference.build(case, d)
        users, items = torch.tensor(d.train_users), torch.tensor(d.train_items)
        initial = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        losses, batches = reference.train(case, model, (users, items), torch.tensor(d.train_ratings))
        with torch.no_grad():
            predictions = model(torch.tensor(d.test_users), torch.tensor(d.test_items)).numpy()
    per_epoch = np.array_split(np.array(losses), case.epochs)
    record = {
        "case": case.config(),
        "split_fingerprint": d.fingerprint,
        "versions": _versions(),
        "step_losses": losses,
        "epoch_losses": [float(np.mean(e)) for e in per_epoch],
    }
    arrays = {f"initial/{k}": v for k, v in initial.items()}
    arrays["batches"] = np.concatenate(batches)
    arrays["batch_sizes"] = np.array([len(b) for b in batches], np.int64)
    arrays["predictions"] = predictions.astype(np.float32)
    fixtures_io.write(case.name, record, arrays, root)


def generate_metric(case: Case, root: Path = fixtures_io.FIXTURES) -> None:
    """Trains the reference once per seed on the case's split; records losses and test metrics."""
    import torch

    from parity.reference import train as reference

    torch.set_num_threads(1)
    d = case_data(case)
    low, high = float(d.train.rating.min()), float(d.train.rating.max())
    users, items = torch.tensor(d.train_users), torch.tensor(d.train_items)
    test_users, test_items = torch.tensor(d.test_users), torch.tensor(d.test_items)
    runs = []
    for seed in case.seeds:
        torch.manual_seed(seed)
        if d.vectors is not None:
            model = reference.build(case, d)
            ratings, mask = torch.tensor(d.vectors), torch.tensor(d.mask)
            losses, _ = reference.train(case, model, None, ratings, mask, seed=seed)
            with torch.no_grad():
                predicted = model(ratings * mask).clamp(low, high).numpy()[d.test_rows_in_vectors, d.test_columns]
        else:
            model = reference.build(case, d)
            losses, _ = reference.train(case, model, (users, items), torch.tensor(d.train_ratings), seed=seed)
            with torch.no_grad():
                predicted = model(test_users, test_items).clamp(low, high).numpy()
        error = predicted.astype(np.float64) - d.test_ratings
        runs.append({
            "seed": seed,
            "epoch_losses": [float(np.mean(e)) for e in np.array_split(np.array(losses), case.epochs)],
            "test_rmse": float(np.sqrt(np.mean(error**2))),
            "test_mae": float(np.mean(np.abs(error))),
        })  # fmt: skip
    record = {"case": case.config(), "split_fingerprint": d.fingerprint, "versions": _versions(), "runs": runs}
    for key in ("test_rmse", "test_mae"):
        values = [r[key] for r in runs]
        record[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    fixtures_io.write(case.name, record, None, root)


def main(names) -> int:
    for name in names or list(ALL_CASES):
        generate(ALL_CASES[name])
        print(f"wrote {fixtures_io.paths(name)[0]}")
    return 0
