"""Test RMSE of a model's `tfrec train` defaults over initial factors of several spreads, each drawn several
times on one split, for benchmarks/RESULTS.md ("Initial factors").

Run: python benchmarks/initial_factors.py [--model biased-mf] [--stds 0.1 0.03 0.01 0.003] [--draws 4]
                                          [--seeds 42] [--data ml-100k]

Each run is `tfrec train` with the defaults (early stopping on the validation cut, then the refit), the
factor tables drawn N(0, std) (the family's ``default_embedding_std``, set on the class). The seed picks the
split and the validation cut as always; draw ``d`` adds ``d`` to the seed TensorFlow draws the initial
weights and the batch order from, so draw 0 is the run `tfrec train --seed S` makes and the other draws
differ from it only in those. Prints a Markdown table: a row per run, then each spread's mean and standard
deviation over its draws.
"""

import argparse
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tfrec import families  # noqa: E402
from tfrec._keras import tf  # noqa: E402
from tfrec.config import TrainConfig  # noqa: E402
from tfrec.train import run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="biased-mf")
    parser.add_argument("--stds", type=float, nargs="+", default=[0.1, 0.03, 0.01, 0.003])
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--data", default="ml-100k")
    args = parser.parse_args()
    model_class = families.model_class(args.model)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.model} defaults on {args.data}")
    print("| std | seed | draw | test RMSE | validation RMSE | epochs (best) |")
    print("|---|---|---|---|---|---|")
    seeded = tf.keras.utils.set_random_seed
    summary = []
    for std in args.stds:
        model_class.default_embedding_std = std
        rmses = []
        for seed in args.seeds:
            for draw in range(args.draws):
                # tfrec seeds TensorFlow with the run's seed before each fit: shift it for the weights alone
                tf.keras.utils.set_random_seed = lambda s, draw=draw: seeded(s + draw)
                report = run(TrainConfig(model=args.model, data=args.data, seed=seed), verbose=0).report
                rmses.append(report["test_rmse"])
                validation = report["validation"]["val_rmse"]
                print(f"| {std:g} | {seed} | {draw} | {report['test_rmse']:.4f} | {validation:.4f} | "
                      f"{report['epochs']} ({report['best_epoch']}) |", flush=True)  # fmt: skip
        summary.append(f"- std {std:g}: {np.mean(rmses):.4f} ± {np.std(rmses):.4f} ({min(rmses):.4f}-{max(rmses):.4f})")
    tf.keras.utils.set_random_seed = seeded
    print("\nMean ± standard deviation (min-max) of the test RMSE over the draws:")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
