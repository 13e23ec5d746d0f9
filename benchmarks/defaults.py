"""Test RMSE/MAE and fit time of `tfrec train` defaults on ML-100K, for benchmarks/RESULTS.md.

Run: python benchmarks/defaults.py [--seeds 42 1 2 3 4]
Each seed is a full `tfrec train` run: the seed picks the 80/20 split, the
validation cut, the initial weights and the batch order. Prints a Markdown table.
"""

import argparse
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tfrec.config import TrainConfig  # noqa: E402
from tfrec.train import run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    parser.add_argument("--models", nargs="+", default=["biased-mf", "mf"])
    parser.add_argument("--splits", nargs="+", default=["ratio", "u1"])
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| model | split | seed | test RMSE | test MAE | epochs (best) | fit s |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for split in args.splits:
            rmses = []
            for seed in args.seeds if split == "ratio" else args.seeds[:1]:
                s = run(TrainConfig(model=model, split=split, seed=seed), verbose=0)
                rmses.append(s["test_rmse"])
                print(
                    f"| {model} | {split} | {seed} | {s['test_rmse']:.4f} | {s['test_mae']:.4f} | "
                    f"{s['epochs']} ({s['best_epoch']}) | {s['fit_seconds']:.2f} |",
                    flush=True,
                )
            if len(rmses) > 1:
                print(f"| {model} | {split} | mean ± std | {np.mean(rmses):.4f} ± {np.std(rmses):.4f} | | | |")


if __name__ == "__main__":
    main()
