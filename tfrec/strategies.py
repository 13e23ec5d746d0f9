"""The built-in ``tf.distribute`` strategies of ``--strategy`` (entries of ``tfrec.registry.strategies``).

Each takes ``shards`` (what ``--shards`` gave, or None) and returns the strategy to build and train
under; only ``parameter_server`` reads it.
"""

from __future__ import annotations

import json
import os

from tfrec._keras import tf
from tfrec.errors import TfrecError


def auto(shards=None) -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, the one GPU when there is one (the default
    strategy places ops on ``/GPU:0``), else the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def default(shards=None) -> tf.distribute.Strategy:
    """No distribution."""
    return tf.distribute.get_strategy()


def mirrored(shards=None) -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs, or over all logical CPU devices when there is no GPU (how tests use it)."""
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def multi_worker(shards=None) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy over ``TF_CONFIG``'s workers (built before anything lists devices:
    that starts the runtime)."""
    if not os.environ.get("TF_CONFIG"):
        raise TfrecError(
            "--strategy multi-worker needs TF_CONFIG: the cluster's workers and this process's task "
            '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}})'
        )
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError as e:
        raise TfrecError(f"TF_CONFIG is not JSON: {e}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def parameter_server(shards=None) -> tf.distribute.Strategy:
    """ParameterServerStrategy over ``TF_CONFIG``'s chief, workers and ps tasks, variables split by
    ``shards`` (:mod:`tfrec.cluster`)."""
    from tfrec import cluster

    return cluster.parameter_server_strategy(shards)
