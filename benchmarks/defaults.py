"""Test metrics and fit time of `tfrec train` defaults on ML-100K, for benchmarks/RESULTS.md.

Run: python benchmarks/defaults.py [--models biased-mf mf ncf gmf neumf autorec-i autorec-u]
                                   [--seeds 42 1 2 3 4] [--splits ratio u1] [--implicit]
Each seed is a full `tfrec train` run: the seed picks the split, the validation
cut, the initial weights, the batch order (and, implicit, the negatives and the
ranking candidates). Prints a Markdown table. With --implicit the models are
trained on implicit feedback (leave-last-out, NCF protocol) and the table gives
HR@10 and NDCG@10 beside the most-popular baseline's.
"""

import argparse
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tfrec.config import TrainConfig  # noqa: E402
from tfrec.train import run  # noqa: E402


def explicit(args) -> None:
    print("| model | split | seed | test RMSE | test MAE | epochs (best) | fit s |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for split in args.splits:
            rmses = []
            for seed in args.seeds if split == "ratio" else args.seeds[:1]:
                s = run(TrainConfig(model=model, split=split, seed=seed), verbose=0).report
                rmses.append(s["test_rmse"])
                print(
                    f"| {model} | {split} | {seed} | {s['test_rmse']:.4f} | {s['test_mae']:.4f} | "
                    f"{s['epochs']} ({s['best_epoch']}) | {s['fit_seconds']:.2f} |",
                    flush=True,
                )
            if len(rmses) > 1:
                print(f"| {model} | {split} | mean ± std | {np.mean(rmses):.4f} ± {np.std(rmses):.4f} | | | |")


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
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    (implicit if args.implicit else explicit)(args)


if __name__ == "__main__":
    main()
