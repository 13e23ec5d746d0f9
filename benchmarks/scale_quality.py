"""Time to quality at scale: tfrec, the PyTorch reference and Surprise's SVD on planted ratings of ML-20M's shape.

The data are planted biased-MF ratings (``tfrec.data.synthetic``: ``mu + b_u + b_i + p_u . q_i`` plus
N(0, sigma^2) noise, not rounded), so the test RMSE no model can beat is sigma, and the target is
``(1 + --within) * sigma``. Every side starts its clock with the split on hand (no model built) and
stops it when a test RMSE scored after an epoch is at or under the target. One run, one side at a time.

The default target is 1.4 sigma, not a few percent above it: at ML-20M's density (about 115 training
ratings a user) even an estimator that knew the planted rank (8) would sit near 1.045 sigma (its excess
error is about sigma^2 (rank + 1) (1/n_user + 1/n_item)), and biased MF with ``tfrec train``'s defaults
(32 factors, L2 0.1) levels off near 1.26 sigma (0.631 after 30 epochs at ML-1M's shape, measured).
1.4 sigma is what that model reaches within its first few epochs there.

- ``tfrec bench --models biased-mf --target T`` (``parity/bench.py``): tfrec's CLI path and the README's
  Python path with ``tfrec train``'s defaults (Adam 0.01, dim 32, L2 0.1, batch 1024), and the parity
  PyTorch reference with the same settings (``--torch-optimizer``: PyTorch's dense Adam updates whole
  tables every step; ``lazy-adam`` is its ``SparseAdam``).
- ``tfrec train --model biased-mf`` as a user runs it: early stopping on a validation cut, then the refit
  on the whole training part; its fit seconds and test RMSE (it has no target to stop at).
- Surprise 1.1.5 ``SVD()`` with its defaults but ``n_epochs`` (100 factors, lr 0.005, reg 0.02): its
  ``fit`` has no per-epoch hook, so it fits with each of ``--surprise-epochs`` in turn until one reaches
  the target; the time to target is building its trainset from the training arrays plus that fit.

Run: python benchmarks/scale_quality.py [--shape SPEC] [--within 0.4] [--epochs 30] [--torch-optimizer lazy-adam]
     [--sides tfrec torch surprise train]   (``train``: the early-stopping ``tfrec train`` run, not by default)
Needs torch (the parity extra) and ``pip install scikit-surprise``. Prints Markdown (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ML20M_PLANTED = "synthetic:users=138493,items=26744,ratings=20000263,sigma=0.5,seed=1"


def _sigma(spec: str) -> float:
    import inspect

    from tfrec.data import synthetic

    given = dict(kv.split("=") for kv in spec.partition(":")[2].split(",") if kv)
    if given.get("round", "0") not in ("0", "false", "False"):
        raise SystemExit("--shape: rounded ratings have no known floor (round=0)")
    return float(given.get("sigma", inspect.signature(synthetic.generate).parameters["sigma"].default))


def surprise_side(args) -> dict:
    """Surprise's SVD: trainset built from the training arrays, then fits of growing ``n_epochs``."""
    import numpy as np
    import pandas as pd
    import surprise

    from tfrec import data

    parts = data.split(data.load(args.shape), "ratio", seed=args.seed)
    train, test = parts.train, parts.test
    start = time.perf_counter()
    frame = pd.DataFrame({"u": train.user, "i": train.item, "r": train.rating})
    low, high = float(train.rating.min()), float(train.rating.max())
    trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(low, high))).build_full_trainset()
    del frame
    built = time.perf_counter() - start
    # Test pairs as Surprise's inner ids (-1: not in its trainset, answered by the global mean as Surprise does).
    to_inner_u = np.full(len(train.user_ids), -1, np.int64)
    to_inner_i = np.full(len(train.item_ids), -1, np.int64)
    for raw, inner in trainset._raw2inner_id_users.items():
        to_inner_u[raw] = inner
    for raw, inner in trainset._raw2inner_id_items.items():
        to_inner_i[raw] = inner
    u, i = to_inner_u[test.user], to_inner_i[test.item]
    fits = []
    for epochs in args.surprise_epochs:
        algo = surprise.SVD(n_epochs=epochs, random_state=args.seed)
        began = time.perf_counter()
        algo.fit(trainset)
        fit_s = time.perf_counter() - began
        known = (u >= 0) & (i >= 0)
        est = np.full(len(u), trainset.global_mean)
        est[known] += (
            algo.bu[u[known]] + algo.bi[i[known]] + np.einsum("ij,ij->i", algo.pu[u[known]], algo.qi[i[known]])
        )
        rmse = float(np.sqrt(np.mean((np.clip(est, low, high) - test.rating) ** 2)))  # Surprise clips its estimates
        fits.append({"n_epochs": epochs, "fit_s": round(fit_s, 1), "test_rmse": round(rmse, 4)})
        print(fits[-1], file=sys.stderr, flush=True)
        if rmse <= args.target:
            break
    reached = next((f for f in fits if f["test_rmse"] <= args.target), None)
    return {
        "side": "surprise", "build_s": round(built, 1), "fits": fits,
        "target_s": round(built + reached["fit_s"], 1) if reached else None,
        "peak_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }  # fmt: skip


def cli_train(args) -> dict:
    """``tfrec train --model biased-mf`` with its defaults on the same data, as a user runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        argv = [sys.executable, "-m", "tfrec", "train", "--model", "biased-mf", "--data", args.shape,
                "--seed", str(args.seed), "--json", report, "--quiet"]  # fmt: skip
        began = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        wall = time.perf_counter() - began
        if done.returncode:
            raise SystemExit(f"tfrec train: exit {done.returncode}: {done.stderr.strip()[-500:]}")
        with open(report) as f:
            r = json.load(f)
    return {"side": "tfrec train", "wall_s": round(wall, 1), "fit_s": r["fit_seconds"], "test_rmse": r["test_rmse"],
            "epochs": r["epochs"], "refit_epochs": r["refit_epochs"]}  # fmt: skip


def bench(args) -> list[dict]:
    """``tfrec bench``'s sides: tfrec's two paths with ``tfrec train``'s defaults, torch with ``--torch-optimizer``."""
    from parity import bench as parity_bench

    results = []
    for side, optimizer in (("tfrec", "adam"), ("torch", args.torch_optimizer)):
        if side in args.sides:
            namespace = parity_bench._parser().parse_args(
                [
                    "--models",
                    "biased-mf",
                    "--data",
                    args.shape,
                    "--epochs",
                    str(args.epochs),
                    "--target",
                    str(args.target),
                    "--seed",
                    str(args.seed),
                    "--sides",
                    side,
                    "--optimizer",
                    optimizer,
                ]  # fmt: skip
            )
            labelled = f"torch ({optimizer})" if side == "torch" else None
            results += [{**r, "side": labelled or r["side"]} for r in parity_bench.run(namespace)]
            print(results[-1], file=sys.stderr, flush=True)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default=ML20M_PLANTED, help="a synthetic spec with round=0 (default: ML-20M's shape)")
    p.add_argument("--within", type=float, default=0.4, help="target: (1 + within) x the noise floor sigma")
    p.add_argument("--epochs", type=int, default=30, help="cap per tfrec/torch side")
    p.add_argument("--surprise-epochs", type=lambda s: [int(x) for x in s.split(",")], default=[20, 40])
    p.add_argument("--torch-optimizer", default="adam", choices=["adam", "lazy-adam"])
    p.add_argument("--sides", nargs="+", default=["tfrec", "torch", "surprise"],
                   choices=["tfrec", "torch", "train", "surprise"])  # fmt: skip
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--side", choices=["surprise"], help=argparse.SUPPRESS)
    p.add_argument("--target", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    floor = _sigma(args.shape)
    args.target = args.target or round(floor * (1 + args.within), 4)
    if args.side:
        print("RESULT " + json.dumps(surprise_side(args)), flush=True)
        return 0
    rows = []
    if {"tfrec", "torch"} & set(args.sides):
        rows += bench(args)
    if "train" in args.sides:
        rows.append(cli_train(args))
        print(rows[-1], file=sys.stderr, flush=True)
    if "surprise" in args.sides:
        argv = [
            sys.executable, __file__, "--side", "surprise", "--shape", args.shape, "--seed", str(args.seed),
            "--target", str(args.target), "--surprise-epochs", ",".join(map(str, args.surprise_epochs)),
        ]  # fmt: skip
        began = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            error = f"exit {done.returncode} after {time.perf_counter() - began:.0f} s: {tail}"
            rows.append({"side": "surprise", "error": error})
        else:
            rows.append(json.loads(lines[-1][len("RESULT ") :]))
        print(rows[-1], file=sys.stderr, flush=True)
    print(markdown(rows, args, floor))
    return 0


def markdown(rows, args, floor) -> str:
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores; data `{args.shape}` (80/20 split, seed {args.seed}); "
        f"noise floor {floor}, target test RMSE <= {args.target}",
        "",
        "| side | time to target s | epochs | last test RMSE | median epoch s | first epoch s | peak GB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["side"] == "tfrec train":
            lines.append(
                f"| `tfrec train` (early stopping, no target) | fit {r['fit_s']} s, wall {r['wall_s']} s "
                f"| {r['epochs']} (refit {r['refit_epochs']}) | {r['test_rmse']:.4f} | - | - | not measured |"
            )
        elif r["side"] == "surprise":
            if "error" in r:
                lines.append(f"| Surprise SVD | {r['error']} | | | | | |")
                continue
            fits = "; ".join(f"{f['n_epochs']} epochs: {f['fit_s']} s, RMSE {f['test_rmse']}" for f in r["fits"])
            reach = r["target_s"] if r["target_s"] else "not reached"
            last = r["fits"][-1]
            lines.append(
                f"| Surprise SVD (trainset {r['build_s']} s; fits {fits}) | {reach} | "
                f"{last['n_epochs']} | {last['test_rmse']} | - | - | {r['peak_gb']} |"
            )
        else:
            name = {"cli": "tfrec, CLI path", "python": "tfrec, Python quickstart path"}.get(r["side"], r["side"])
            lines.append(f"| {name} | {r['target_s'] or 'not reached'} | {r['epochs_timed']} | {r['last_test_rmse']} | "
                         f"{r['median_epoch_s']} | {r['first_epoch_s']} | {r['peak_gb']} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
