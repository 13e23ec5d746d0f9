"""Loading a user's ratings file at ML-20M's size: tfrec's file reader beside the MovieLens loader, same rows.

Writes planted ratings of ML-20M's shape (138,493 users, 26,744 items, 20,000,263 ratings) once as
``ratings.csv`` in GroupLens's ML-20M layout (``userId,movieId,rating,timestamp``), then loads that
one file in a fresh process each way and reports wall time and the process's peak resident memory:

- ``file``: ``tfrec.data.load(PATH)`` (``tfrec.data.files``: pyarrow's CSV reader, columns found by name);
- ``movielens``: ``tfrec.data.load(DIR)``, the MovieLens directory loader, on the same file.

    python benchmarks/load_files.py [--ratings N] [--dir /tmp/tfrec-load-bench] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ML20M = {"users": 138493, "items": 26744, "ratings": 20000263}

LOAD = """
import json, sys, time
import tfrec
from tfrec import data
from tfrec.cluster import memory
start = time.perf_counter()
table = data.load(sys.argv[1])
seconds = time.perf_counter() - start
peak = memory()["peak"] / 2**30  # VmHWM: this process since exec, not its parent
print(json.dumps({"seconds": round(seconds, 2), "peak_gb": round(peak, 3), "ratings": len(table),
                  "users": table.num_users, "items": table.num_items}))
"""


def write(directory: Path, ratings: int) -> Path:
    import numpy as np

    from tfrec import data

    path = directory / "ratings.csv"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    g = data.generate(users=ML20M["users"], items=ML20M["items"], ratings=ratings, round=True, seed=0)
    t = g.ratings
    import pyarrow as pa
    import pyarrow.csv as pcsv

    table = pa.table({
        "userId": t.user_ids[t.user].astype(np.int64), "movieId": t.item_ids[t.item].astype(np.int64),
        "rating": t.rating, "timestamp": np.arange(len(t), dtype=np.int64) + 1_000_000_000,
    })  # fmt: skip
    staged = path.with_suffix(".tmp")
    with open(staged, "wb") as f:  # GroupLens's header, unquoted (pyarrow quotes the names it writes)
        f.write(b"userId,movieId,rating,timestamp\n")
        pcsv.write_csv(table, f, pcsv.WriteOptions(include_header=False, quoting_style="none"))
    os.replace(staged, path)
    return path


def measure(target: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", LOAD, target], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"loading {target} failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=ML20M["ratings"])
    parser.add_argument("--dir", default="/tmp/tfrec-load-bench")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    path = write(Path(args.dir), args.ratings)
    print(f"{path}: {path.stat().st_size / 2**20:.0f} MiB ({time.perf_counter() - started:.0f} s to write)")
    print(f"self peak while writing: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
    print("| loader | run | seconds | peak GB | ratings | users | items |")
    print("|---|---|---|---|---|---|---|")
    for repeat in range(1, args.repeats + 1):
        for label, target in (("file (pyarrow)", str(path)), ("MovieLens directory", str(path.parent))):
            r = measure(target)
            counts = f"{r['ratings']} | {r['users']} | {r['items']}"
            print(f"| {label} | {repeat} | {r['seconds']} | {r['peak_gb']} | {counts} |")


if __name__ == "__main__":
    main()
