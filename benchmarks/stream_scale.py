"""Training from streamed Parquet shards beside the in-memory table: peak memory, ratings per second, test RMSE.

Writes planted biased-MF ratings (``rating = 3.5 + b_u + b_i + p_u . q_i + eps``, rank 8, factor and bias
std 0.5, noise sigma 0.5: the floor a perfect model reaches) as Parquet shards of 5M rows, chunk by
chunk, never the whole in memory; (user, item) pairs are drawn uniformly, so at these sizes a pair
repeats about once in every 10^4 ratings at most. Then, each run a fresh ``tfrec train`` process
(biased MF, its defaults, ``--epochs E --validation-fraction 0``: every run trains the same epochs
on its whole training part, no early stopping) reporting its own peak resident memory:

- ``streamed``: ``--data DIR_OF_SHARDS`` (staged in that process: both passes count in its peak);
- ``in-memory``: ``--data ratings.parquet``, the same rows as one file, read into a table
  (``--in-memory`` sizes only; the split is the table's own 80/20 draw, the streamed one a hash of
  the ids, so the two test parts are different draws of the same data).

    python benchmarks/stream_scale.py --ratings 20000000 --in-memory 20000000 [--users 138493 --items 26744]
    python benchmarks/stream_scale.py --ratings 20000000 200000000 --users 1384930 --items 267440 --epochs 1

Data go under ``--dir`` (default /tmp/tfrec-stream-bench), never into the repository. Prints a
Markdown table: ratings, path, peak GB, staging s, fit s, training ratings per second, test RMSE and
its ratio to sigma, and how many ``Ratings`` tables the process built.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHARD_ROWS = 5_000_000
RANK, FACTOR_STD, BIAS_STD, MEAN, SIGMA = 8, 0.5, 0.5, 3.5, 0.5

RUN = """
import json, sys
from tfrec.data import table
built = [0]
init = table.Ratings.__init__
def counted(self, *args, **kwargs):
    built[0] += 1
    init(self, *args, **kwargs)
table.Ratings.__init__ = counted
from tfrec.cli import main
from tfrec.cluster import memory
status = main(sys.argv[1:])
peak = memory()["peak"] / 2**30  # VmHWM: this process since exec, not its parent
print("BENCH " + json.dumps({"status": status, "peak_gb": peak, "tables": built[0]}), flush=True)
"""


def write(directory: Path, ratings: int, users: int, items: int, one_file: bool) -> Path:
    """The planted ratings as ``shards/part-NNNNN.parquet`` (and ``ratings.parquet``, the same rows in one
    file, when ``one_file``); written once, reused by later runs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards, single = directory / "shards", directory / "ratings.parquet"
    if (shards / "done").is_file() and (single.is_file() or not one_file):
        return shards
    shards.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    p, q = rng.normal(0, FACTOR_STD, (users, RANK)), rng.normal(0, FACTOR_STD, (items, RANK))
    bu, bi = rng.normal(0, BIAS_STD, users), rng.normal(0, BIAS_STD, items)
    writer = None
    for k, start in enumerate(range(0, ratings, SHARD_ROWS)):
        n = min(SHARD_ROWS, ratings - start)
        u, i = rng.integers(0, users, n), rng.integers(0, items, n)
        r = MEAN + bu[u] + bi[i] + np.einsum("nk,nk->n", p[u], q[i]) + rng.normal(0, SIGMA, n)
        chunk = pa.table({"user_id": u + 1, "item_id": i + 1, "rating": r.astype(np.float32)})
        pq.write_table(chunk, shards / f"part-{k:05d}.parquet")
        if one_file:
            writer = writer or pq.ParquetWriter(single, chunk.schema)
            writer.write_table(chunk)
    if writer is not None:
        writer.close()
    (shards / "done").write_text(f"{ratings} {users} {items}\n")
    return shards


def train(data: str, epochs: int, cache: Path, out: Path) -> dict:
    args = ["train", "--model", "biased-mf", "--data", data, "--epochs", str(epochs), "--validation-fraction", "0",
            "--quiet", "--json", str(out)]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFREC_DATA": str(cache)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    line = [x for x in done.stdout.splitlines() if x.startswith("BENCH ")]
    if done.returncode != 0 or not line or json.loads(line[-1][6:])["status"] != 0:
        raise SystemExit(f"tfrec train --data {data} failed: {done.stderr.strip()[-2000:]}")
    report = json.loads(out.read_text())
    return {**json.loads(line[-1][6:]), "wall": wall, **report}


def staging_seconds(cache: Path) -> float | None:
    metas = sorted((cache / "streams").glob("*/meta.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(metas[-1].read_text())["seconds"] if metas else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, nargs="+", default=[20_000_000])
    parser.add_argument("--in-memory", type=int, nargs="*", default=[], help="sizes to also train from a table")
    parser.add_argument("--users", type=int, default=138_493)
    parser.add_argument("--items", type=int, default=26_744)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dir", default="/tmp/tfrec-stream-bench")
    args = parser.parse_args()
    root = Path(args.dir)
    print(f"planted biased MF, {args.users} users, {args.items} items, rank {RANK}, sigma {SIGMA}; "
          f"biased MF defaults, {args.epochs} epochs, no validation cut")  # fmt: skip
    print("| ratings | path | peak GB | staging s | fit s | training ratings / s | test RMSE | / sigma | tables |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ratings in args.ratings:
        directory = root / f"{ratings}-{args.users}x{args.items}"
        started = time.perf_counter()
        shards = write(directory, ratings, args.users, args.items, ratings in args.in_memory)
        print(f"<!-- data written or found in {time.perf_counter() - started:.0f} s: {directory} -->", flush=True)
        paths = [("streamed", str(shards))]
        if ratings in args.in_memory:
            paths.append(("in-memory", str(directory / "ratings.parquet")))
        for name, data in paths:
            cache = directory / f"cache-{name}-{time.time_ns()}"
            r = train(data, args.epochs, cache, directory / f"{name}.json")
            n = r["test_rmse"]
            trained = round(ratings * (1 - 0.2)) * args.epochs
            staged = staging_seconds(cache) if name == "streamed" else None
            staged_text = f"{staged:.0f}" if staged is not None else "-"
            speed = f"{trained / r['fit_seconds']:,.0f}"
            print(f"| {ratings:,} | {name} | {r['peak_gb']:.2f} | {staged_text} | {r['fit_seconds']:.0f} | {speed} | "
                  f"{n:.4f} | {n / SIGMA:.3f} | {r['tables']} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
