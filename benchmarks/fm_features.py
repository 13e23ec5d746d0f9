"""FM and FFM on ML-100K with ids alone and with side features, for benchmarks/RESULTS.md.

Run: python benchmarks/fm_features.py [--models fm ffm] [--seeds 42 1 2 3 4]
                                      [--sets ids user item all] [--lr X] [--l2 X] [--dim N]
Each run is a full `tfrec train` with the model's defaults (or the given
overrides): 80/20 split by the seed, early stopping on a 10% validation cut of
the training part, test RMSE/MAE on the held-out 20%. Prints a Markdown table,
then the mean and std over seeds of each (model, feature set).
"""

import argparse
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tfrec.config import TrainConfig  # noqa: E402
from tfrec.train import run  # noqa: E402

IDS = ("user_id", "movie_id")
USER = ("bucketized_user_age", "user_gender", "user_occupation_label", "user_zip_code")
ITEM = ("movie_genres",)
SETS = {"ids": IDS, "user": IDS + USER, "item": IDS + ITEM, "all": IDS + USER + ITEM}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["fm", "ffm"], choices=["fm", "ffm"])
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument("--lr", type=float)
    p.add_argument("--l2", type=float)
    p.add_argument("--dim", type=int)
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| model | features | seed | test RMSE | test MAE | validation RMSE | epochs (best) | fit s |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for model in args.models:
        for name in args.sets:
            rmses, fits = [], []
            for seed in args.seeds:
                config = TrainConfig(
                    model=model, data="ml-100k", seed=seed, features=SETS[name], learning_rate=args.lr, l2=args.l2,
                    dim=args.dim,
                )  # fmt: skip
                s = run(config, verbose=0).report
                rmses.append(s["test_rmse"])
                fits.append(s["fit_seconds"])
                print(
                    f"| {model} | {name} | {seed} | {s['test_rmse']:.4f} | {s['test_mae']:.4f} | "
                    f"{s['validation']['val_rmse']:.4f} | {s['epochs']} ({s['best_epoch']}) | {s['fit_seconds']:.2f} |",
                    flush=True,
                )
            summary.append((model, name, np.mean(rmses), np.std(rmses), np.mean(fits)))
    print("\n| model | features | test RMSE mean ± std | mean fit s |\n|---|---|---|---|")
    for model, name, mean, std, fit in summary:
        print(f"| {model} | {name} ({', '.join(SETS[name])}) | {mean:.4f} ± {std:.4f} | {fit:.2f} |")


if __name__ == "__main__":
    main()
