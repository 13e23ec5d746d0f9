"""Layers shared by the rating models."""

from __future__ import annotations

import random

import numpy as np
from tfrec._keras import tf
from tfrec.errors import DataError


def id_lookup(vocabulary) -> tf.keras.layers.StringLookup:
    """Raw string ids -> rows 1..V of the vocabulary; any other id -> row 0 (out of vocabulary).

    A model does one lookup per id column and batch, and every table of that id
    (factors, bias) reads the same row index.
    """
    # A tuple, which Keras keeps as it is: a list becomes a tracked ListWrapper, walked string by string by
    # every `model.metrics` call (two or three an epoch).
    vocabulary = tuple(str(v) for v in vocabulary)
    return tf.keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1, mask_token=None)


def factor_initializer(value="default", std: float = 0.1):
    """A factor table's initializer: ``"default"`` is N(0, 0.1) (trains faster with Adam than Keras'
    U(-0.05, 0.05) or PyTorch's N(0, 1); measured on ML-100K), anything else goes to Keras."""
    return tf.keras.initializers.RandomNormal(stddev=std) if value == "default" else value


@tf.keras.utils.register_keras_serializable(package="tfrec")
class IdEmbedding(tf.keras.layers.Layer):
    """Row indices from :func:`id_lookup` -> rows of a table; the out-of-vocabulary row reads as zero.

    Row 0 (an unseen id) is masked to zero, so an unseen user contributes no
    factors and no bias, and a model answers for it with what it knows (global
    mean plus the item's terms). A model that answers for unseen ids itself
    (MF's and biased MF's ``tf.where``) passes ``mask_unseen=False`` and skips the
    mask: on ML-100K the masks were 14% of an MF training epoch and 12% of a biased
    MF one (benchmarks/RESULTS.md). NCF's tables keep it.

    Args:
      num_ids: Vocabulary size V; the table has V + 1 rows.
      dim: Output width (1 for a bias).
      initializer: Keras initializer of the table.
      l2: Weight of an L2 penalty on the rows looked up in a batch, as a Keras
        activity regularizer: ``l2 * sum(rows**2) / batch_size``. Unlike a
        regularizer on the whole table, it touches only the rows in the batch
        and weights each row by how often it is seen, as the per-sample SGD
        of the classic MF formulation (Funk, Koren) does.
      embeddings_regularizer: Optional Keras regularizer on the whole table.
      mask_unseen: Whether row 0 reads as zero (default) or as it is.
    """

    def __init__(
        self, num_ids, dim, initializer="zeros", l2=0.0, embeddings_regularizer=None, mask_unseen=True, **kwargs
    ):
        super().__init__(**kwargs)
        self.mask_unseen = bool(mask_unseen)
        self.num_ids = int(num_ids)
        self.dim = int(dim)
        self.l2 = float(l2)
        initializer = tf.keras.initializers.get(initializer)
        # A fresh instance per table: Keras warns that one instance reused gives identical draws.
        self.initializer = initializer.__class__.from_config(initializer.get_config())
        self.embeddings_regularizer = tf.keras.regularizers.get(embeddings_regularizer)
        self.embedding = tf.keras.layers.Embedding(
            self.num_ids + 1,
            self.dim,
            embeddings_initializer=self.initializer,
            embeddings_regularizer=self.embeddings_regularizer,
            activity_regularizer=tf.keras.regularizers.L2(self.l2) if self.l2 else None,
        )

    def call(self, index):
        rows = self.embedding(index)
        if not self.mask_unseen:
            return rows
        known = tf.cast(tf.not_equal(index, 0), rows.dtype)
        return rows * known[..., tf.newaxis]

    def get_config(self):
        regularizer = self.embeddings_regularizer
        return {
            **super().get_config(),
            "num_ids": self.num_ids,
            "dim": self.dim,
            "initializer": tf.keras.initializers.serialize(self.initializer),
            "l2": self.l2,
            "embeddings_regularizer": tf.keras.regularizers.serialize(regularizer) if regularizer else None,
            "mask_unseen": self.mask_unseen,
        }


@tf.keras.utils.register_keras_serializable(package="tfrec")
class SeededDropout(tf.keras.layers.Layer):
    """Dropout whose draws are a function of (seed, training step), so a resumed run draws what it would have.

    Keras' ``Dropout`` draws from a stateful random op whose position lives in
    the op kernel: it is not saved, and a model loaded from a file or
    checkpoint starts its draws over. This layer counts its training calls in a
    variable (saved with the weights, one count per step under a
    ``tf.distribute`` strategy) and draws the mask with
    ``stateless_uniform(seed=fold_in([seed, step], replica))``, so a run that is
    saved, loaded and continued drops exactly what an uninterrupted run drops.

    Args:
      rate: Fraction of inputs to zero in training; the rest scale by ``1 / (1 - rate)``.
      seed: Seed of the masks. Default: drawn from Python's ``random`` when the
        layer is made (``tf.keras.utils.set_random_seed`` makes it repeatable).
        It is kept in a variable beside the count, so restoring the weights
        (``.keras``, checkpoint) brings both back, however the model was rebuilt.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        seed = int(seed) if seed is not None else random.getrandbits(31)
        self.seed = self.add_weight(
            name="seed", shape=(), dtype=tf.int64, initializer=tf.keras.initializers.Constant(seed),
            trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )  # fmt: skip
        self.calls = self.add_weight(
            name="calls", shape=(), dtype=tf.int64, initializer="zeros", trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )  # fmt: skip

    def call(self, inputs, training=False):
        if not training or not self.rate:
            return inputs
        step = self.calls.assign_add(1)
        replica = tf.distribute.get_replica_context()
        replica_id = replica.replica_id_in_sync_group if replica is not None else 0
        seed = tf.random.experimental.stateless_fold_in(
            tf.stack([tf.identity(self.seed), step]), tf.cast(replica_id, tf.int64)
        )
        keep = tf.random.stateless_uniform(tf.shape(inputs), seed=seed) >= self.rate
        return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": int(self.seed.numpy())}


def mlp_tower(sizes, dropout: float = 0.0, activation="relu", name: str = "mlp", dtype=None) -> tf.keras.Sequential:
    """Dense layers of the given widths, each preceded by :class:`SeededDropout` when ``dropout > 0``.

    The NCF MLP: ``[256, 64]`` with ReLU is the TFRS basic ranking tutorial's tower
    (its final Dense(1) belongs to the model, which may fuse other branches first).
    ``dtype``: the layers' dtype policy (``RatingModel.dense_policy``); the output is in its compute dtype.
    """
    layers = []
    for size in sizes:
        if dropout:
            layers.append(SeededDropout(dropout, dtype=dtype))
        layers.append(tf.keras.layers.Dense(int(size), activation=activation, dtype=dtype))
    return tf.keras.Sequential(layers, name=name)


#: The activations the numpy oracles (``RatingModel.torch_scores``) evaluate.
NUMPY_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0), "linear": lambda x: x, None: lambda x: x, "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}  # fmt: skip


def torch_tensor(state, name: str, shape: tuple) -> np.ndarray:
    """``state[name]`` as float32 of ``shape`` (``None``: any size there); a wrong shape names both.

    Raises:
      DataError: the tensor's shape is not ``shape``. A missing name raises ``KeyError(name)``.
    """
    value = np.asarray(state[name], np.float32)
    if value.ndim != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        want = "[" + ", ".join("any" if w is None else str(w) for w in shape) + "]"
        raise DataError(f"tensor {name!r} has shape {list(value.shape)}, the model needs {want}")
    return value


def assign_torch_table(layer: IdEmbedding, state, name: str) -> None:
    """Sets an :class:`IdEmbedding`'s rows 1..V to an ``nn.Embedding`` weight ``[V, dim]``; row 0 (unseen ids) stays."""
    table = layer.embedding.embeddings
    weight = torch_tensor(state, name, (table.shape[0] - 1, table.shape[1]))
    table.assign(np.concatenate([table.numpy()[:1], weight], axis=0))


def assign_torch_linear(layer: tf.keras.layers.Dense, state, name: str) -> None:
    """Sets a Dense layer to ``nn.Linear`` ``name``'s weights: ``{name}.weight`` ``[out, in]`` is transposed."""
    units, inputs = layer.kernel.shape[1], layer.kernel.shape[0]
    layer.kernel.assign(torch_tensor(state, f"{name}.weight", (units, inputs)).T)
    layer.bias.assign(torch_tensor(state, f"{name}.bias", (units,)))


def rename_torch(state: dict, names: dict) -> dict:
    """``state`` with each tensor known under another name (``names``: ``{tfrec name: (alias, ...)}``) renamed.

    Raises:
      DataError: two of a name's aliases are both present.
    """
    out = dict(state)
    for canonical, aliases in names.items():
        found = [a for a in aliases if a in out]
        if canonical in out or not found:
            continue
        if len(found) > 1:
            raise DataError(
                f"tensors {', '.join(found)} could each be {canonical!r}: map one with --map NAME={canonical}"
            )
        out[canonical] = out.pop(found[0])
    return out
