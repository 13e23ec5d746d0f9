"""Per-sample SGD matrix factorization through ``model.fit`` beside the PyTorch tutorials' per-sample loop.

The classic PyTorch MF tutorials train one rating per step with plain SGD: ``nn.Embedding`` factors
(k=20, N(0, 1)), learning rate 0.01, 10 epochs over MovieLens-100K's 80/20 training part (the parity
case ``mf-per-sample-sgd``). Both sides run here, one after the other, each in its own process:

- **tfrec**: the code a Keras user writes, ``compile(optimizer="sgd", steps_per_execution=N)`` and
  ``model.fit(model.training_dataset(train, batch_size=1))``: many steps per ``tf.function`` call,
  no Python per step.
- **torch**: parity's PyTorch loop (``parity/reference``, the loop the fixture comes from): a
  ``torch.randperm`` order, one ``zero_grad``/forward/``backward``/``step`` per rating. ``dense`` is
  the tutorials' ``nn.Embedding`` (dense gradients: every step updates whole tables), ``sparse`` the
  same with ``sparse=True`` embeddings (each step updates two rows).

Run: python benchmarks/per_sample.py [--epochs 10] [--steps-per-execution 1000] [--sides tfrec torch-dense]
Prints one Markdown table (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CASE = "mf-per-sample-sgd"
SIDES = ("tfrec", "torch-dense", "torch-sparse")


def tfrec_side(args) -> dict:
    import tensorflow as tf

    import tfrec
    from parity.cases import METRIC_CASES

    case = METRIC_CASES[CASE]
    tfrec.train.configure_threads(case.model)
    split = tfrec.data.split(tfrec.data.load(case.data), case.split, seed=case.seed)
    tf.keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    model = tfrec.models.MatrixFactorization.from_table(
        split.train,
        dim=case.dim,
        embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=case.init_std),
        rating_range=None,  # unclipped, as PyTorch evaluates
    )
    model.compile(optimizer="sgd", steps_per_execution=args.steps_per_execution)  # Keras' SGD: learning rate 0.01
    times = []

    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.began)

    ds = model.training_dataset(split.train, batch_size=1, seed=args.seed)
    model.fit(ds, epochs=args.epochs, verbose=0, callbacks=[Timer()])
    total = time.perf_counter() - start
    test = model.evaluate(model.dataset(split.test, 8192), return_dict=True, verbose=0)
    return _result("tfrec", args, times, total, float(test["rmse"]), len(split.train))


def torch_side(args, sparse: bool) -> dict:
    import torch

    from parity.cases import METRIC_CASES
    from parity.data import case_data
    from parity.reference import train as reference

    case = METRIC_CASES[CASE]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    d = case_data(case)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)])  # torch's first optimizer imports torch._dynamo
    start = time.perf_counter()
    model = reference.build(case, d)
    opts = reference.optimizers(case, model, sparse=sparse)
    inputs = (torch.from_numpy(d.train_users), torch.from_numpy(d.train_items))
    labels = torch.from_numpy(d.train_ratings)
    times, mark = [], [time.perf_counter()]

    def on_epoch_end(epoch):
        times.append(time.perf_counter() - mark[0])
        mark[0] = time.perf_counter()

    reference.train(case, model, inputs, labels, seed=args.seed, opts=opts, record=False, epochs=args.epochs,
                    on_epoch_end=on_epoch_end)  # fmt: skip
    total = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(d.test_users), torch.from_numpy(d.test_items))
        rmse = float(torch.sqrt(torch.mean((predicted - torch.from_numpy(d.test_ratings)) ** 2)))
    return _result("torch-sparse" if sparse else "torch-dense", args, times, total, rmse, len(labels))


def _result(side, args, times, total, rmse, ratings) -> dict:
    return {
        "side": side, "epochs": len(times), "total_s": round(total, 2), "first_epoch_s": round(times[0], 2),
        "median_epoch_s": round(statistics.median(times[1:] or times), 2),
        "steps_per_s": round(ratings / statistics.median(times[1:] or times)), "test_rmse_unclipped": round(rmse, 4),
    }  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-execution", type=int, default=1000, help="tfrec's compile(steps_per_execution=)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    p.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        side = tfrec_side(args) if args.side == "tfrec" else torch_side(args, sparse=args.side == "torch-sparse")
        print("RESULT " + json.dumps(side), flush=True)
        return 0
    rows = []
    for side in args.sides:
        argv = [sys.executable, __file__, "--side", side, "--epochs", str(args.epochs), "--seed", str(args.seed),
                "--steps-per-execution", str(args.steps_per_execution), "--threads", str(args.threads)]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            sys.exit(f"{side}: exit {done.returncode}: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
        rows.append(json.loads(lines[-1][len("RESULT ") :]))
        print(rows[-1], file=sys.stderr, flush=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; ML-100K 80/20, MF k=20, SGD 0.01, batch 1, "
        f"{args.epochs} epochs; tfrec steps_per_execution {args.steps_per_execution}, torch {args.threads} threads\n"
    )
    print("| side | total s (build + epochs) | first epoch s | median epoch s | steps/s | test RMSE (unclipped) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} | {r['total_s']} | {r['first_epoch_s']} | {r['median_epoch_s']} | {r['steps_per_s']} | "
              f"{r['test_rmse_unclipped']} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
