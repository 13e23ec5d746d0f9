"""Layers shared by the rating models."""

from __future__ import annotations

import random

from tfrec._keras import tf


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
    """A factor table's initializer: ``"default"`` is N(0, ``std``), the model's ``default_embedding_std``
    (MF's 0.1 lies between Keras' U(-0.05, 0.05), whose products start near zero, and PyTorch's N(0, 1),
    whose products start as large as the ratings), anything else goes to Keras."""
    return tf.keras.initializers.RandomNormal(stddev=std) if value == "default" else value


@tf.keras.utils.register_keras_serializable(package="tfrec")
class IdEmbedding(tf.keras.layers.Layer):
    """Row indices from :func:`id_lookup` -> rows of a table; the out-of-vocabulary row reads as zero.

    Row 0 (an unseen id) is masked to zero, so an unseen user contributes no
    factors and no bias, and a model answers for it with what it knows (global
    mean plus the item's terms). A model that answers for unseen ids itself
    (MF's and biased MF's ``tf.where``) passes ``mask_unseen=False`` and skips the
    mask, a multiply on every looked-up row that is a large share of so small a step. NCF's
    tables keep it.

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


def gather_dense_gradient(vector, index):
    """``tf.gather(vector, index)`` whose gradient is a dense vector, as the dense path's bias gets.

    (``tf.gather``'s is ``IndexedSlices``, which Keras' Adam applies in another order of operations.)
    """

    @tf.custom_gradient
    def gather(vector):
        def grad(upstream):
            return tf.math.unsorted_segment_sum(upstream, index, tf.shape(vector)[0])

        return tf.gather(vector, index), grad

    return gather(tf.convert_to_tensor(vector))
