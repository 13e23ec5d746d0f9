"""`recommend` at ML-20M's vocabulary sizes: export time, SavedModel size, top-k latency and peak memory.

Run: python benchmarks/export_scale.py [--models biased-mf neumf autorec-i] [--ratings 2000000]
          [--users 138493] [--items 26744] [--batches 1 100]

Builds each model on a synthetic table with ML-20M's users and items (ratings
fewer than 20M by default to keep the build short; pass --ratings 20000263 for
the full shape), trains one step so nothing is at its initial value, exports
it with the training table's pairs as the rated items, loads it with
``tf.saved_model.load`` and times ``recommend`` (k=10) on user batches of the
given sizes (median of 3 calls after one warm-up). Peak resident memory is the
process's maximum RSS at the end (it includes the table and the model).
"""

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tfrec  # noqa: E402,F401
import tensorflow as tf  # noqa: E402
from tfrec import data, export  # noqa: E402
from tfrec.config import TrainConfig  # noqa: E402
from tfrec.train import build, training_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["biased-mf", "neumf", "autorec-i"])
    parser.add_argument("--users", type=int, default=138_493)
    parser.add_argument("--items", type=int, default=26_744)
    parser.add_argument("--ratings", type=int, default=2_000_000)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 100])
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    start = time.perf_counter()
    table = data.generate(args.users, args.items, args.ratings, seed=0).ratings
    print(f"table: {args.users} users x {args.items} items, {len(table)} ratings ({time.perf_counter() - start:.1f} s)")
    users = tf.constant(table.user_ids[: max(args.batches)])
    header = " | ".join(f"recommend k=10, {b} user{'s' * (b > 1)} (s)" for b in args.batches)
    print(f"| model | export s | SavedModel MB | {header} |")
    print("|---|---|---|" + "---|" * len(args.batches))
    for name in args.models:
        config = TrainConfig(model=name, data="synthetic")
        config.check()
        model = build(name, table, config)
        model.fit(training_dataset(config, table, model).take(1), epochs=1, verbose=0)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            path = export.save(model, Path(tmp) / name, rated=table)
            seconds = time.perf_counter() - start
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
            loaded = tf.saved_model.load(str(path))
            cells = []
            for batch in args.batches:
                call = loaded.signatures["recommend"]
                call(user_id=users[:batch], k=tf.constant(10))
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    call(user_id=users[:batch], k=tf.constant(10))
                    times.append(time.perf_counter() - start)
                cells.append(f"{statistics.median(times):.3f}")
        print(f"| {name} | {seconds:.1f} | {size:.1f} | " + " | ".join(cells) + " |", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory of the process: {peak:.2f} GB")


if __name__ == "__main__":
    main()
