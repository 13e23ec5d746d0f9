"""Building, placing and fitting models: the code behind ``tfrec train``.

``model.fit`` is the only training loop; this module only chooses where the
model lives (a ``tf.distribute`` strategy), compiles it with measured defaults,
and wires data, early stopping and evaluation together.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from tfrec._keras import tf

from tfrec import data as tfdata
from tfrec.config import TrainConfig
from tfrec.errors import TfrecError
from tfrec.models import BiasedMatrixFactorization, MatrixFactorization

MODELS = {"mf": MatrixFactorization, "biased-mf": BiasedMatrixFactorization}
OPTIMIZERS = {
    "adam": tf.keras.optimizers.Adam,
    "adagrad": tf.keras.optimizers.Adagrad,
    "sgd": tf.keras.optimizers.SGD,
}


def strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy to build and train under.

    ``auto``: MirroredStrategy over all GPUs when there are several, the one GPU
    when there is one (the default strategy places ops on ``/GPU:0``), else the
    CPU. ``mirrored``: MirroredStrategy over all GPUs, or over all logical CPU
    devices when there is no GPU (how tests exercise it). ``default``: no
    distribution.
    """
    if kind == "default":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise TfrecError(f"unknown strategy {kind!r}: use auto, default or mirrored")


def build(model: str, train: tfdata.Ratings, config: TrainConfig | None = None, strategy_=None, **kwargs):
    """Creates and compiles a model from a training table under a strategy.

    Args:
      model: ``mf`` or ``biased-mf``.
      train: The training table (vocabularies, mean and range come from it).
      config: Optimizer, learning rate, dim, l2, steps per execution; default TrainConfig().
      strategy_: The strategy; default ``strategy(config.strategy)``.
      **kwargs: Extra model constructor arguments.

    Returns:
      The compiled model; its variables live under the strategy.
    """
    config = config or TrainConfig(model=model)
    config.check()
    strategy_ = strategy_ or strategy(config.strategy)
    with strategy_.scope():
        net = MODELS[model].from_table(train, dim=config.dim, l2=config.l2, **kwargs)
        net.compile(
            optimizer=OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate),
            steps_per_execution=config.steps_per_execution,
        )
    return net


def run(config: TrainConfig, verbose: int = 1, callbacks=()) -> dict:
    """Loads, splits, fits with early stopping and evaluates: ``tfrec train``.

    Returns:
      ``{"test_rmse", "test_mae", "epochs", "fit_seconds", "split_fingerprint",
      "config", "model"}`` (``model`` is the trained Keras model).
    """
    config.check()
    tf.keras.utils.set_random_seed(config.seed)
    table = tfdata.load(config.data)
    parts = tfdata.split(table, config.split, seed=config.seed)
    train, validation = parts.train, None
    if config.validation_fraction > 0:
        cut = tfdata.random_split(parts.train, config.validation_fraction, seed=config.seed)
        train, validation = cut.train, cut.test
    strategy_ = strategy(config.strategy)
    net = build(config.model, train, config, strategy_)
    train_ds = tfdata.dataset(
        train, config.batch_size, shuffle=True, seed=config.seed,
        drop_remainder=strategy_.num_replicas_in_sync > 1,
    )  # fmt: skip
    eval_size = max(config.batch_size, 8192)
    val_ds = tfdata.dataset(validation, eval_size) if validation is not None else None
    stop = []
    if val_ds is not None:
        stop = [
            tf.keras.callbacks.EarlyStopping(monitor="val_rmse", patience=config.patience, restore_best_weights=True)
        ]
    start = time.perf_counter()
    history = net.fit(
        train_ds, validation_data=val_ds, epochs=config.epochs, verbose=verbose,
        callbacks=[*stop, *callbacks],
    )  # fmt: skip
    fit_seconds = time.perf_counter() - start
    result = net.evaluate(tfdata.dataset(parts.test, eval_size), return_dict=True, verbose=0)
    return {
        "test_rmse": float(result["rmse"]),
        "test_mae": float(result["mae"]),
        "epochs": len(history.history["loss"]),
        "best_epoch": int(np.argmin(history.history["val_rmse"])) + 1 if val_ds is not None else None,
        "fit_seconds": round(fit_seconds, 3),
        "split_fingerprint": parts.fingerprint,
        "config": dataclasses.asdict(config),
        "model": net,
    }
