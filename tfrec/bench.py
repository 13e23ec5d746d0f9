"""``tfrec bench``: tfrec's ``model.fit`` beside the PyTorch reference, same data, batch, optimizer and threads.

For each model, each side runs in its own subprocess of the same Python (so
each has its own peak resident memory and neither warms the other's caches):

- **tfrec**: ``tfrec.train.build`` + ``training_dataset`` + ``model.fit`` with
  the model's ``tfrec train`` defaults (optimizer, learning rate, L2, batch
  size, steps per execution), epochs timed by a Keras callback.
- **torch**: the parity package's reference model (``parity/reference``) and a
  plain PyTorch loop: ``torch.randperm`` per epoch, the same loss with the same
  L2, ``torch.optim.Adam`` with the same learning rate (``--optimizer lazy-adam``:
  sparse embeddings with ``torch.optim.SparseAdam``; ``adagrad``: sparse embeddings with
  ``torch.optim.Adagrad``), ``torch.set_num_threads``. ``--mixed-precision bfloat16``:
  tfrec's Dense layers in ``mixed_bfloat16``, the torch forward pass under
  ``torch.autocast("cpu", torch.bfloat16)``.

Reported: the first epoch (tfrec: tracing included) apart from the median of
the others, samples per second at the median, peak resident memory of the side's
process, and (``--target``) the wall time from the start (data on hand, model
not built) until the test RMSE after an epoch is at most the target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from tfrec.errors import TfrecError

MODELS = ("mf", "biased-mf", "ncf", "neumf", "autorec-i")
ML20M_SHAPE = "synthetic:users=138493,items=26744,ratings=20000263"


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _parts(spec: str, seed: int):
    from tfrec import data

    return data.split(data.load(spec), "ratio", seed=seed)


def _config(args):
    from tfrec.config import TrainConfig

    config = TrainConfig(
        model=args.model, data=args.data, seed=args.seed, batch_size=args.batch_size, optimizer=args.optimizer,
        learning_rate=args.lr, steps_per_execution=args.steps_per_execution or TrainConfig.steps_per_execution,
        mixed_precision=args.mixed_precision,
    )  # fmt: skip
    config.check()
    return config


def tf_side(args) -> dict:
    """Times ``model.fit`` epochs of tfrec (in this process)."""
    import tfrec  # noqa: F401
    import tensorflow as tf

    from tfrec.train import build, configure_threads, endless, training_dataset, evaluation_dataset

    configure_threads(args.model, args.intra_op_threads, args.threads)

    parts = _parts(args.data, args.seed)
    config = _config(args)
    tf.keras.utils.set_random_seed(config.seed)
    start = time.perf_counter()
    model = build(config.model, parts.train, config)
    train_ds, steps = endless(training_dataset(config, parts.train, model=model))  # as `tfrec train` fits
    times, reached, rmse = [], None, None
    # --target: the test part is Keras' validation data, scored after every epoch inside the one fit.
    test_ds, test_steps = (
        endless(evaluation_dataset(parts.test, 8192, model, cache=True)) if args.target else (None, None)
    )

    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began, self.trained = time.perf_counter(), None

        def on_test_begin(self, logs=None):  # the epoch's validation pass starts: its training is done
            self.trained = time.perf_counter() - self.began

        def on_epoch_end(self, epoch, logs=None):
            nonlocal reached, rmse
            times.append(self.trained if self.trained is not None else time.perf_counter() - self.began)
            if args.target:
                rmse = float(logs["val_rmse"])
                if rmse <= args.target:
                    reached = time.perf_counter() - start
                    self.model.stop_training = True

    model.fit(
        train_ds, epochs=args.epochs, steps_per_epoch=steps, verbose=0, callbacks=[Timer()], validation_data=test_ds,
        validation_steps=test_steps,
    )  # fmt: skip
    return _summary("tfrec", args, times, reached, rmse, parts)


def torch_side(args) -> dict:
    """Times epochs of the parity reference model in a plain PyTorch loop (in this process)."""
    import numpy as np
    import torch

    from parity.reference import models as reference

    torch.set_num_threads(args.threads)
    # TensorFlow flushes denormal floats to zero in its kernels; PyTorch does not by default, and NeuMF's
    # N(0, 0.01) embedding products go denormal and run 20x slower (measured). Compare like with like.
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    parts = _parts(args.data, args.seed)
    config = _config(args)
    train, test = parts.train, parts.test
    mean = float(train.rating.astype(np.float64).mean())
    users, items = train.num_users, train.num_items
    start = time.perf_counter()
    autorec = config.model.startswith("autorec")
    if autorec:
        model = reference.AutoRec(users, config.hidden, mean)
        matrix = torch.zeros(items, users)
        matrix[torch.from_numpy(train.item.astype(np.int64)), torch.from_numpy(train.user.astype(np.int64))] = (
            torch.from_numpy(train.rating.astype(np.float32))
        )
        mask = (matrix != 0).float()
        n = items
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        others = [p for name, p in model.named_parameters() if not name.endswith("weight")]
        groups = [{"params": weights, "weight_decay": 2 * config.l2}, {"params": others}]
    else:
        if config.model in ("mf", "biased-mf"):
            cls = reference.MF if config.model == "mf" else reference.BiasedMF
            extra = () if config.model == "mf" else (mean,)
            model = cls(users, items, config.dim, *extra, l2=config.l2, std=0.1)
        else:
            variant = {"ncf": "mlp", "gmf": "gmf", "neumf": "neumf"}[config.model]
            model = reference.NCF(users, items, variant, config.dim, config.layers, config.l2, 0.01, mean)
        u = torch.from_numpy(train.user.astype(np.int64))
        i = torch.from_numpy(train.item.astype(np.int64))
        r = torch.from_numpy(train.rating.astype(np.float32))
        n = len(train)
        groups = [{"params": list(model.parameters())}]
    optimizers = [torch.optim.Adam(groups, lr=config.learning_rate)]
    if config.optimizer == "lazy-adam":  # torch.optim.SparseAdam on sparse embedding gradients, Adam elsewhere
        tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
        for table in tables:
            table.sparse = True
        sparse = {id(t.weight) for t in tables}
        dense = [q for q in model.parameters() if id(q) not in sparse]
        optimizers = [torch.optim.SparseAdam([t.weight for t in tables], lr=config.learning_rate)]
        optimizers += [torch.optim.Adam(dense, lr=config.learning_rate)] if dense else []
    elif config.optimizer == "adagrad":  # torch.optim.Adagrad takes the sparse embedding gradients as they are
        for table in (m for m in model.modules() if isinstance(m, torch.nn.Embedding)):
            table.sparse = True
        optimizers = [torch.optim.Adagrad(groups, lr=config.learning_rate)]
    elif config.optimizer != "adam":
        raise TfrecError(f"the torch side runs adam, lazy-adam or adagrad, not {config.optimizer}")
    if config.mixed_precision not in (None, "bfloat16"):
        raise TfrecError("the torch side runs on the CPU: bfloat16 autocast, not float16 (use --sides tfrec)")
    autocast = torch.autocast("cpu", torch.bfloat16, enabled=config.mixed_precision == "bfloat16")
    times, reached, rmse = [], None, None
    for _ in range(args.epochs):
        began = time.perf_counter()
        model.train()
        order = torch.randperm(n)
        for first in range(0, n, config.batch_size):
            rows = order[first : first + config.batch_size]
            for optimizer in optimizers:
                optimizer.zero_grad()
            if autorec:
                m = mask[rows]
                inputs = torch.nn.functional.dropout(matrix[rows] * m, config.input_dropout)
                with autocast:
                    outputs = model(inputs)
                loss = (((outputs.float() - matrix[rows]) * m) ** 2).sum() / m.sum()
            else:
                with autocast:
                    outputs = model(u[rows], i[rows])
                loss = torch.mean((outputs.float() - r[rows]) ** 2)
                if config.l2:
                    loss = loss + model.penalty(u[rows], i[rows])
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
        times.append(time.perf_counter() - began)
        if args.target and not autorec:
            model.eval()
            with torch.no_grad():
                tu = torch.from_numpy(test.user.astype(np.int64))
                ti = torch.from_numpy(test.item.astype(np.int64))
                predicted = model(tu, ti).clamp(*map(float, (train.rating.min(), train.rating.max())))
                rmse = float(torch.sqrt(torch.mean((predicted - torch.from_numpy(test.rating)) ** 2)))
            if rmse <= args.target:
                reached = time.perf_counter() - start
                break
    return _summary("torch", args, times, reached, rmse, parts)


def _summary(side, args, times, reached, rmse, parts) -> dict:
    """One side's figures; ratings/s counts training ratings per epoch (AutoRec too, not vectors)."""
    rest = times[1:] or times
    median = statistics.median(rest)
    return {
        "side": side, "model": args.model, "data": args.data, "ratings": len(parts.train),
        "first_epoch_s": round(times[0], 4), "median_epoch_s": round(median, 4), "epochs_timed": len(times),
        "ratings_per_s": round(len(parts.train) / median), "peak_gb": round(_peak_gb(), 3),
        "target": args.target, "target_s": None if reached is None else round(reached, 3),
        "last_test_rmse": None if rmse is None else round(rmse, 4),
    }  # fmt: skip


def _side_main(argv) -> None:
    args = _parser().parse_args(argv)
    result = (tf_side if args.side == "tfrec" else torch_side)(args)
    print("RESULT " + json.dumps(result), flush=True)


def _parser(parser_class=argparse.ArgumentParser) -> argparse.ArgumentParser:
    from tfrec.cli import _nonnegative, _positive, _positive_float
    from tfrec.config import OPTIMIZER_NAMES

    p = parser_class(prog="tfrec bench", description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--data", default="ml-100k", help=f"dataset spec (ML-20M's shape: {ML20M_SHAPE})")
    p.add_argument("--epochs", type=_positive, default=6, help="epochs per side (the first is reported apart)")
    p.add_argument("--batch-size", type=_positive, help="default: each model's `tfrec train` default")
    p.add_argument("--lr", type=_positive_float, help="default: each model's `tfrec train` default")
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZER_NAMES, help="the torch side: not sgd")
    p.add_argument("--steps-per-execution", type=_positive)
    p.add_argument("--mixed-precision", choices=["float16", "bfloat16"], help="ncf, neumf, autorec-*: Dense layers")
    p.add_argument(
        "--threads", type=_positive, default=os.cpu_count(), help="torch's threads; TF's inter-op threads"
    )  # fmt: skip
    p.add_argument(
        "--intra-op-threads", type=_nonnegative,
        help="TF's threads per op (0: TensorFlow's default; default, as `tfrec train`: 1; AutoRec: --threads)",
    )  # fmt: skip
    p.add_argument("--target", type=_positive_float, help="also time reaching this test RMSE (pair models)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--sides", nargs="+", default=["tfrec", "torch"], choices=["tfrec", "torch"])
    p.add_argument("--side", choices=["tfrec", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    return p


def run(args) -> list[dict]:
    """Runs every (model, side) in a subprocess and returns their results."""
    results = []
    for model in args.models:
        for side in args.sides:
            argv = [
                sys.executable, "-m", "tfrec.bench", "--side", side, "--model", model, "--data", args.data,
                "--epochs", str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed),
                "--optimizer", args.optimizer,
            ]  # fmt: skip
            for flag, value in (("--batch-size", args.batch_size), ("--lr", args.lr), ("--target", args.target),
                                ("--steps-per-execution", args.steps_per_execution),
                                ("--mixed-precision", args.mixed_precision),
                                ("--intra-op-threads", args.intra_op_threads)):  # fmt: skip
                if value is not None:
                    argv += [flag, str(value)]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
            done = subprocess.run(argv, capture_output=True, text=True, env=env)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise TfrecError(f"bench {side} {model}: exit {done.returncode}: {tail}")
            results.append(json.loads(lines[-1][len("RESULT ") :]))
    return results


def _intra_op_label(args) -> str:
    if args.intra_op_threads is not None:
        return f"{args.intra_op_threads or 'one per core'} per op"
    return f"1 per op, AutoRec {args.threads}"


def markdown(results: list[dict], args) -> str:
    """The RESULTS.md table: one row per model, tfrec beside torch."""
    by = {(r["model"], r["side"]): r for r in results}
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"data {args.data}, {args.epochs} epochs per side, {args.threads} threads "
        f"(TF: {args.threads} inter-op, {_intra_op_label(args)}), "
        f"precision {args.mixed_precision or 'float32'}",
        "",
        "| model | tfrec first epoch s | tfrec median epoch s | torch first epoch s | torch median epoch s | "
        "tfrec / torch | tfrec ratings/s | torch ratings/s | tfrec peak GB | torch peak GB |"
        + (f" time to RMSE {args.target} s (tfrec / torch) |" if args.target else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.target else ""),
    ]
    for model in args.models:
        t, p = by.get((model, "tfrec")), by.get((model, "torch"))

        def cell(r, key, fmt="{}"):
            return fmt.format(r[key]) if r and r[key] is not None else "not measured"

        ratio = f"{t['median_epoch_s'] / p['median_epoch_s']:.2f}" if t and p else "not measured"
        row = (
            f"| {model} | {cell(t, 'first_epoch_s')} | {cell(t, 'median_epoch_s')} | {cell(p, 'first_epoch_s')} | "
            f"{cell(p, 'median_epoch_s')} | {ratio} | {cell(t, 'ratings_per_s')} | {cell(p, 'ratings_per_s')} | "
            f"{cell(t, 'peak_gb')} | {cell(p, 'peak_gb')} |"
        )
        if args.target:
            reach = [cell(r, "target_s") if r and r["target_s"] else "not reached" for r in (t, p)]
            row += f" {reach[0]} / {reach[1]} |"
        lines.append(row)
    return "\n".join(lines)


def main(argv=None, parser_class=argparse.ArgumentParser) -> int:
    parser = _parser(parser_class)
    args = parser.parse_args(argv)
    if args.side:
        _side_main(argv if argv is not None else sys.argv[1:])
        return 0
    for model in args.models:  # a bad setting is refused here, not after a subprocess has loaded the data
        _config(argparse.Namespace(**{**vars(args), "model": model}))
    if "torch" in args.sides and args.optimizer == "sgd":
        parser.error("--optimizer sgd: the torch side runs adam, lazy-adam or adagrad (or use --sides tfrec)")
    print(markdown(run(args), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
