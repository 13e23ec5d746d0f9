"""``tfrec bench``: tfrec's ``model.fit`` beside the PyTorch reference, same data, batch, optimizer and threads.

It lives in the harness (``parity``), outside tfrec's import graph: ``tfrec bench`` loads it only when called.

For each model, each side runs in its own subprocess of the same Python (so
each has its own peak resident memory and neither warms the other's caches):

- **tfrec, CLI path** (``cli``): ``tfrec.train.build`` + ``training_dataset`` + ``model.fit`` with
  the model's ``tfrec train`` defaults (optimizer, learning rate, L2, batch
  size, steps per execution), one iterator over all epochs, as ``tfrec train`` fits.
- **tfrec, Python path** (``python``): the README's Python quickstart, the same settings:
  ``tfrec.train.configure_threads``, ``Model.from_table``, ``compile(optimizer=tfrec.optimizers...,
  steps_per_execution=...)``, ``model.fit(model.training_dataset(train, ...), epochs=...)``
  (Keras makes an iterator per epoch; ``fit`` creates the variables).
- **torch**: the parity package's reference model and its one PyTorch loop
  (``parity/reference``, the loop the fixtures come from, here without recording
  steps): ``torch.randperm`` per epoch, the same loss with the same
  L2, the same optimizer with the same learning rate (``adam``: ``torch.optim.Adam``; ``lazy-adam``,
  MF's and biased MF's default: sparse embeddings with ``torch.optim.SparseAdam``; ``adagrad``: sparse
  embeddings with ``torch.optim.Adagrad``), ``torch.set_num_threads``. ``--mixed-precision bfloat16``:
  tfrec's Dense layers in ``mixed_bfloat16``, the torch forward pass under
  ``torch.autocast("cpu", torch.bfloat16)``.

Epochs are timed by a Keras callback (tfrec) or around the loop (torch). Reported: the first epoch
(tfrec: tracing included) apart from the median of
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

ML20M_SHAPE = "synthetic:users=138493,items=26744,ratings=20000263"
PATHS = ("cli", "python")


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _parts(spec: str, seed: int):
    from tfrec import data

    return data.split(data.load(spec), "ratio", seed=seed)


def _config(args, train=None):
    """The run's settings, ``tfrec train``'s defaults where none are given (those that follow the data
    from ``train``, the part fit on)."""
    from tfrec.config import TrainConfig

    config = TrainConfig(
        model=args.model, data=args.data, seed=args.seed, batch_size=args.batch_size, optimizer=args.optimizer,
        learning_rate=args.lr, steps_per_execution=args.steps_per_execution or TrainConfig.steps_per_execution,
        mixed_precision=args.mixed_precision,
    )  # fmt: skip
    config.check() if train is None else config.for_table(train)
    return config


def cli_side(args) -> dict:
    """Times ``model.fit`` epochs of tfrec on ``tfrec train``'s path (in this process)."""
    import tfrec  # noqa: F401
    import tensorflow as tf

    from tfrec.train import build, configure_threads, endless, training_dataset, evaluation_dataset

    configure_threads(args.model, args.intra_op_threads, args.threads)
    parts = _parts(args.data, args.seed)
    config = _config(args, parts.train)
    tf.keras.utils.set_random_seed(config.seed)
    start = time.perf_counter()
    model = build(config.model, parts.train, config)
    train_ds, steps = endless(training_dataset(config, parts.train, model))  # as `tfrec train` fits
    # --target: the test part is Keras' validation data, scored after every epoch inside the one fit.
    test_ds, test_steps = (
        endless(evaluation_dataset(parts.test, 8192, model, cache=True)) if args.target else (None, None)
    )
    fit = {"steps_per_epoch": steps, "validation_data": test_ds, "validation_steps": test_steps}
    return _timed_fit("cli", args, model, train_ds, fit, start, parts)


def python_side(args) -> dict:
    """Times ``model.fit`` epochs of tfrec as the README's Python quickstart writes them (in this process)."""
    import tfrec
    import tensorflow as tf

    tfrec.train.configure_threads(args.model, args.intra_op_threads, args.threads)
    parts = _parts(args.data, args.seed)
    config = _config(args, parts.train)
    tf.keras.utils.set_random_seed(config.seed)
    start = time.perf_counter()
    model = tfrec.families.model_class(config.model).from_table(parts.train, **tfrec.train.model_kwargs(config))
    optimizer = tfrec.registry.optimizers.entry(config.optimizer).load()(learning_rate=config.learning_rate)
    if model.mixed_precision == "float16":
        optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, steps_per_execution=config.steps_per_execution)
    train_ds = model.training_dataset(parts.train, config.batch_size, seed=config.seed)
    fit = {"validation_data": model.dataset(parts.test, 8192) if args.target else None}
    return _timed_fit("python", args, model, train_ds, fit, start, parts)


def _timed_fit(side, args, model, train_ds, fit_kwargs, start, parts) -> dict:
    """``model.fit`` for ``args.epochs``, each epoch's training timed; with ``--target``, stops when reached."""
    import tensorflow as tf

    times, reached, rmse = [], None, None

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

    model.fit(train_ds, epochs=args.epochs, verbose=0, callbacks=[Timer()], **fit_kwargs)
    return _summary(side, args, times, reached, rmse, parts)


def torch_side(args) -> dict:
    """Times epochs of the parity reference model in parity's PyTorch loop (in this process), not recording steps."""
    import contextlib

    import torch

    from tfrec import families

    from parity.data import case_data
    from parity.reference import train as reference

    torch.set_num_threads(args.threads)
    # TensorFlow flushes denormal floats to zero in its kernels; PyTorch does not by default, and NeuMF's
    # N(0, 0.01) embedding products go denormal and run 20x slower (measured). Compare like with like.
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    parts = _parts(args.data, args.seed)
    config = _config(args, parts.train)  # the defaults that follow the data, as the tfrec sides have them
    del parts  # freed before the reference loads its own copy: the side's peak memory is its own
    if config.mixed_precision not in (None, "bfloat16"):
        raise TfrecError("the torch side runs on the CPU: bfloat16 autocast, not float16 (use --sides tfrec)")
    if config.optimizer == "sgd":
        raise TfrecError("the torch side runs adam, lazy-adam or adagrad, not sgd")
    case = _case(config, args)
    d = case_data(case)
    # Imports stay outside the clock, as TensorFlow's import does on the tfrec side: the reference reads its
    # tfrec class, and torch's first optimizer imports torch._dynamo (3.6 s here).
    families.model_class(case.model)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    start = time.perf_counter()
    model = reference.build(case, d)
    # Adagrad takes the embeddings' sparse gradients as they are (lazy-adam: SparseAdam, in `optimizers`).
    opts = reference.optimizers(case, model, sparse=config.optimizer == "adagrad")
    vectors = d.vectors is not None
    if vectors:
        inputs, labels, mask = None, torch.from_numpy(d.vectors), torch.from_numpy(d.mask)
    else:
        inputs = (torch.from_numpy(d.train_users), torch.from_numpy(d.train_items))
        labels, mask = torch.from_numpy(d.train_ratings), None
    low, high = float(d.train.rating.min()), float(d.train.rating.max())
    test = [torch.from_numpy(a) for a in (d.test_users, d.test_items, d.test_ratings)]
    times, reached, rmse, mark = [], None, None, [time.perf_counter()]

    def on_epoch_end(epoch):
        nonlocal reached, rmse
        times.append(time.perf_counter() - mark[0])
        if args.target and not vectors:
            model.eval()
            with torch.no_grad():
                predicted = model(test[0], test[1]).clamp(low, high)
                rmse = float(torch.sqrt(torch.mean((predicted - test[2]) ** 2)))
            if rmse <= args.target:
                reached = time.perf_counter() - start
                return True
        mark[0] = time.perf_counter()
        return False

    bfloat16 = config.mixed_precision == "bfloat16"
    autocast = torch.autocast("cpu", torch.bfloat16) if bfloat16 else contextlib.nullcontext()
    reference.train(
        case, model, inputs, labels, mask, seed=args.seed, opts=opts, record=False,
        input_dropout=config.options.get("input_dropout", 0.0), autocast=autocast, epochs=args.epochs,
        on_epoch_end=on_epoch_end,
    )  # fmt: skip
    return _summary("torch", args, times, reached, rmse, d)


def _case(config, args):
    """The parity ``Case`` of a bench run: the ``tfrec train`` defaults of the model, the family's embedding init."""
    from tfrec import families

    from parity.cases import Case

    std = families.model_class(config.model).default_embedding_std
    own = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in config.options.items()}
    return Case(
        name="bench", model=config.model, optimizer=config.optimizer, learning_rate=config.learning_rate,
        batch_size=config.batch_size, epochs=args.epochs, dim=config.dim, l2=config.l2,
        init_std=std if std is not None else 1.0, data=config.data, split="ratio", seed=args.seed,
        **{k: own[k] for k in ("layers", "hidden", "features") if k in own},  # the model's own options
    )  # fmt: skip


def _summary(side, args, times, reached, rmse, parts) -> dict:
    """One side's figures; ratings/s counts training ratings per epoch (AutoRec too, not vectors).

    ``parts``: anything with the training table as ``train`` (a split, or parity's case data).
    """
    rest = times[1:] or times
    median = statistics.median(rest)
    return {
        "side": side, "model": args.model, "data": args.data, "ratings": len(parts.train),
        "first_epoch_s": round(times[0], 4), "median_epoch_s": round(median, 4), "epochs_timed": len(times),
        "ratings_per_s": round(len(parts.train) / median), "peak_gb": round(_peak_gb(), 3),
        "target": args.target, "target_s": None if reached is None else round(reached, 3),
        "last_test_rmse": None if rmse is None else round(rmse, 4),
    }  # fmt: skip


def _models() -> tuple[str, ...]:
    """Every registered model whose class has a PyTorch reference (``parity/reference``), in listing order."""
    from tfrec import families

    from parity.reference import REFERENCE_CLASSES

    return tuple(n for n in families.names() if families.family(n).class_name(n) in REFERENCE_CLASSES)


def _side_main(argv) -> None:
    args = _parser().parse_args(argv)
    result = {"cli": cli_side, "python": python_side, "torch": torch_side}[args.side](args)
    print("RESULT " + json.dumps(result), flush=True)


def _parser(parser_class=argparse.ArgumentParser) -> argparse.ArgumentParser:
    from tfrec.arguments import nonnegative as _nonnegative, positive as _positive, positive_float as _positive_float
    from tfrec import registry

    p = parser_class(prog="tfrec bench", description=__doc__.splitlines()[0])
    models = _models()
    p.add_argument("--models", nargs="+", default=list(models), choices=models, help="default: all with a reference")
    p.add_argument("--data", default="ml-100k", help=f"dataset spec (ML-20M's shape: {ML20M_SHAPE})")
    p.add_argument("--epochs", type=_positive, default=6, help="epochs per side (the first is reported apart)")
    p.add_argument("--batch-size", type=_positive, help="default: each model's `tfrec train` default")
    p.add_argument("--lr", type=_positive_float, help="default: each model's `tfrec train` default")
    p.add_argument(
        "--optimizer", choices=registry.optimizers.names(),
        help="default: each model's `tfrec train` default; the torch side runs adam, lazy-adam or adagrad",
    )  # fmt: skip
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
    p.add_argument(
        "--path", nargs="+", default=list(PATHS), choices=PATHS,
        help="tfrec's code: cli (tfrec train's) and/or python (the README's quickstart); default both",
    )  # fmt: skip
    p.add_argument("--side", choices=[*PATHS, "torch"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    return p


def run(args) -> list[dict]:
    """Runs every (model, side) in a subprocess and returns their results."""
    results = []
    sides = [*(args.path if "tfrec" in args.sides else []), *(["torch"] if "torch" in args.sides else [])]
    for model in args.models:
        for side in sides:
            argv = [
                sys.executable, "-m", "parity.bench", "--side", side, "--model", model, "--data", args.data,
                "--epochs", str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed),
            ]  # fmt: skip
            for flag, value in (("--optimizer", args.optimizer), ("--batch-size", args.batch_size),
                                ("--lr", args.lr), ("--target", args.target),
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
    """The RESULTS.md table: one row per model and side (tfrec's CLI path, its Python path, torch)."""
    by = {(r["model"], r["side"]): r for r in results}
    target = f" time to RMSE {args.target} s |" if args.target else ""
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"data {args.data}, {args.epochs} epochs per side, {args.threads} threads "
        f"(TF: {args.threads} inter-op, {_intra_op_label(args)}), "
        f"precision {args.mixed_precision or 'float32'}",
        "",
        "| model | side | first epoch s | median epoch s | / torch | / CLI | ratings/s | peak GB |" + target,
        "|---|---|---|---|---|---|---|---|" + ("---|" if args.target else ""),
    ]

    def ratio(r, other):
        return f"{r['median_epoch_s'] / other['median_epoch_s']:.2f}" if other else "not measured"

    for model in args.models:
        torch, cli = by.get((model, "torch")), by.get((model, "cli"))
        for side in (*PATHS, "torch"):
            r = by.get((model, side))
            if r is None:
                continue
            row = (
                f"| {model} | {side} | {r['first_epoch_s']} | {r['median_epoch_s']} | "
                f"{ratio(r, torch) if side != 'torch' else '-'} | {ratio(r, cli) if side == 'python' else '-'} | "
                f"{r['ratings_per_s']} | {r['peak_gb']} |"
            )
            if args.target:
                row += f" {r['target_s'] if r['target_s'] else 'not reached'} |"
            lines.append(row)
    return "\n".join(lines)


def main(argv=None, parser_class=argparse.ArgumentParser) -> int:
    parser = _parser(parser_class)
    args = parser.parse_args(argv)
    if args.side:
        _side_main(argv if argv is not None else sys.argv[1:])
        return 0
    for model in args.models:  # a bad setting is refused here, not after a subprocess has loaded the data
        config = _config(argparse.Namespace(**{**vars(args), "model": model}))
        if "torch" in args.sides and config.optimizer == "sgd":
            parser.error("--optimizer sgd: the torch side runs adam, lazy-adam or adagrad (or use --sides tfrec)")
    print(markdown(run(args), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
