"""Throughput of `tfrec train --strategy parameter-server` on a local cluster beside one process.

Runs, in one go on the same data: `tfrec train` in one process (tfrec's native kernels, then
TensorFlow's: the kernels a parameter server's variables take), then a local cluster of one
chief, ``--workers`` workers and ``--ps`` parameter servers on 127.0.0.1 (every table split over the
parameter servers), each with fixed epochs and no validation. Prints one Markdown row per run:
fit seconds, ratings per second (training ratings x epochs / fit seconds) and test RMSE.

    python benchmarks/parameter_server.py [--data SPEC] [--model biased-mf] [--epochs 3] [--optimizer adam]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _train(args: list[str], report: Path, env=None) -> dict:
    command = [sys.executable, "-m", "tfrec", "train", *args, "--json", str(report)]
    subprocess.run(command, check=True, env={**ENV, **(env or {})}, timeout=3600, capture_output=True)
    return json.loads(report.read_text())


def _cluster(args: list[str], report: Path, workers: int, ps: int) -> dict:
    from tfrec.cluster import local_cluster

    cluster = local_cluster(workers, ps)
    args = [*args, "--strategy", "parameter-server"]
    servers = []
    for task, count in (("ps", ps), ("worker", workers)):
        for index in range(count):
            config = json.dumps({"cluster": cluster, "task": {"type": task, "index": index}})
            servers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tfrec", "train", *args],
                    env={**ENV, "TF_CONFIG": config},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
    try:
        chief = json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})
        return _train(args, report, {"TF_CONFIG": chief})
    finally:
        for p in servers:
            try:
                p.wait(timeout=60)  # they end by themselves once the chief is gone
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic:users=50000,items=5000,ratings=1000000,seed=1")
    parser.add_argument("--model", default="biased-mf")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ps", type=int, default=2)
    options = parser.parse_args()
    args = ["--model", options.model, "--data", options.data, "--epochs", str(options.epochs), "--optimizer",
            options.optimizer,
            "--batch-size", str(options.batch_size), "--validation-fraction", "0", "--quiet"]  # fmt: skip
    print("| run | fit seconds | ratings/s | test RMSE |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            ("one process", lambda r: _train(args, r)),
            ("one process, TensorFlow's kernels", lambda r: _train(args, r, {"TFREC_NATIVE_OPS": "0"})),
            (
                f"cluster: chief, {options.workers} workers, {options.ps} ps, tables in {options.ps} pieces",
                lambda r: _cluster([*args, "--shards", str(options.ps)], r, options.workers, options.ps),
            ),
        ]
        for name, run in runs:
            report = run(Path(tmp) / "run.json")
            seen = report["config"]["epochs"] * _train_size(report)
            rate = seen / report["fit_seconds"]
            print(f"| {name} | {report['fit_seconds']:.2f} | {rate:,.0f} | {report['test_rmse']:.4f} |", flush=True)


def _train_size(report: dict) -> int:
    from tfrec import data

    config = report["config"]
    return len(data.split(data.load(config["data"]), config["split"], seed=config["seed"]).train)


if __name__ == "__main__":
    main()
