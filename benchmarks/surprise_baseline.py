"""Surprise's SVD (per-sample SGD biased MF) on tfrec's split: the time-to-RMSE yardstick on small data.

Run: python benchmarks/surprise_baseline.py [--data ml-100k] [--seed 42] [--repeats 3]
Needs `pip install scikit-surprise` (not a tfrec dependency: it is a source build). Trains
`surprise.SVD()` with its defaults (100 factors, 20 epochs, lr 0.005, reg 0.02) on the training
part of `tfrec.data.split(load(DATA), "ratio", seed)` and reports the wall time of `fit` (median of
--repeats) and the test RMSE. Compare with `tfrec bench --models biased-mf --target 0.93`.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import surprise  # noqa: E402

from tfrec import data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ml-100k")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    parts = data.split(data.load(args.data), "ratio", seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.tsv")
        with open(path, "w") as f:
            for u, i, r in zip(parts.train.user_id, parts.train.movie_id, parts.train.rating):
                f.write(f"{u}\t{i}\t{r}\n")
        reader = surprise.Reader(line_format="user item rating", sep="\t", rating_scale=(1, 5))
        trainset = surprise.Dataset.load_from_file(path, reader).build_full_trainset()
    times, rmses = [], []
    for repeat in range(args.repeats):
        algo = surprise.SVD(random_state=repeat)
        start = time.perf_counter()
        algo.fit(trainset)
        times.append(time.perf_counter() - start)
        predicted = np.array([algo.predict(u, i).est for u, i in zip(parts.test.user_id, parts.test.movie_id)])
        rmses.append(float(np.sqrt(np.mean((predicted - parts.test.rating) ** 2))))
    print(f"surprise {surprise.__version__} SVD on {args.data} (split {parts.fingerprint}): "
          f"fit {statistics.median(times):.3f} s (median of {args.repeats}: {', '.join(f'{t:.3f}' for t in times)}), "
          f"test RMSE {', '.join(f'{r:.4f}' for r in rmses)}")  # fmt: skip


if __name__ == "__main__":
    main()
