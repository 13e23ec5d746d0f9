"""Test metrics and fit time of `tfrec train` defaults on ML-100K and other data, for benchmarks/RESULTS.md.

Run: python benchmarks/defaults.py [--models biased-mf mf ncf gmf neumf autorec-i autorec-u]
                                   [--seeds 42 1 2 3 4] [--splits ratio u1] [--implicit]
                                   [--data ml-100k SPEC ...]
Each seed is a full `tfrec train` run: the seed picks the split, the validation
cut, the initial weights, the batch order (and, implicit, the negatives and the
ranking candidates). Prints a Markdown table. With --implicit the models are
trained on implicit feedback (leave-last-out, NCF protocol) and the table gives
HR@10 and NDCG@10 beside the most-popular baseline's. ``--data`` takes any data
spec; for planted ``synthetic:`` data the table also gives the test RMSE over the
noise floor sigma (the planted ML-1M shape:
``synthetic:users=6040,items=3706,ratings=1000209,sigma=0.5,seed=1``; ML-10M's:
``synthetic:users=69878,items=10677,ratings=10000054,sigma=0.5,seed=1``). The
``settings`` column is what the run used (the defaults that follow the data
included), read from its report.
"""

import argparse
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tfrec.config import TrainConfig  # noqa: E402
from tfrec.train import run  # noqa: E402


def explicit(args) -> None:
    print("| data | model | split | seed | test RMSE | / sigma | test MAE | epochs (best) | settings | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for data in args.data:
        sigma = _sigma(data)
        for model in args.models:
            for split in args.splits:
                rmses = []
                for seed in args.seeds if split == "ratio" else args.seeds[:1]:
                    s = run(TrainConfig(model=model, data=data, split=split, seed=seed), verbose=0).report
                    rmses.append(s["test_rmse"])
                    c = s["config"]
                    settings = f"{c['optimizer']} {c['learning_rate']:g}, l2 {c['l2']:g}, refit {c['refit']}"
                    scores = f"{s['test_rmse']:.4f} | {_over(s['test_rmse'], sigma)} | {s['test_mae']:.4f}"
                    print(
                        f"| {data} | {model} | {split} | {seed} | {scores} | {s['epochs']} ({s['best_epoch']}) | "
                        f"{settings} | {s['fit_seconds']:.2f} |",
                        flush=True,
                    )
                if len(rmses) > 1:
                    mean, std = np.mean(rmses), np.std(rmses)
                    print(f"| {data} | {model} | {split} | mean ± std | {mean:.4f} ± {std:.4f} | "
                          f"{_over(mean, sigma)} | | | | |")  # fmt: skip


def _sigma(data: str) -> float | None:
    """The noise floor of a planted ``synthetic:`` spec (its ``sigma``, 0.5 unless given), else None."""
    if not data.startswith("synthetic:"):
        return None
    given = dict(kv.split("=") for kv in data.partition(":")[2].split(",") if kv)
    return float(given.get("sigma", 0.5))


def _over(rmse: float, sigma: float | None) -> str:
    return f"{rmse / sigma:.3f}" if sigma else "-"


def implicit(args) -> None:
    print("| model | seed | HR@10 | NDCG@10 | most popular HR@10 | most popular NDCG@10 | epochs (best) | fit s |")
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models:
        for seed in args.seeds:
            s = run(TrainConfig(model=model, feedback="implicit", seed=seed), verbose=0).report
            print(
                f"| {model} | {seed} | {s['test_hit_rate@10']:.4f} | {s['test_ndcg@10']:.4f} | "
                f"{s['popular_hit_rate@10']:.4f} | {s['popular_ndcg@10']:.4f} | "
                f"{s['epochs']} ({s['best_epoch']}) | {s['fit_seconds']:.2f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    parser.add_argument("--models", nargs="+", default=["biased-mf", "mf"])
    parser.add_argument("--splits", nargs="+", default=["ratio", "u1"])
    parser.add_argument("--implicit", action="store_true", help="implicit feedback (NCF models only)")
    parser.add_argument("--data", nargs="+", default=["ml-100k"], help="data specs (explicit runs)")
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    (implicit if args.implicit else explicit)(args)


if __name__ == "__main__":
    main()
