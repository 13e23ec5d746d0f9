"""Layers shared by the rating models."""

from __future__ import annotations

from tfrec._keras import tf


@tf.keras.utils.register_keras_serializable(package="tfrec")
class IdEmbedding(tf.keras.layers.Layer):
    """Raw string ids -> rows of an embedding table; an unseen id gets a zero row.

    A ``StringLookup`` over the training vocabulary maps ids to rows 1..V and any
    other id to row 0, the out-of-vocabulary row, whose output is masked to
    zero. So an unseen user contributes no factors and no bias, and a model
    answers for it with what it knows (global mean plus the item's terms).

    Args:
      vocabulary: The known ids (strings), usually the training split's.
      dim: Output width (1 for a bias).
      initializer: Keras initializer of the table.
      l2: Weight of an L2 penalty on the rows looked up in a batch, as a Keras
        activity regularizer: ``l2 * sum(rows**2) / batch_size``. Unlike a
        regularizer on the whole table, it touches only the rows in the batch
        and weights each row by how often it is seen, as the per-sample SGD
        of the classic MF formulation (Funk, Koren) does.
      embeddings_regularizer: Optional Keras regularizer on the whole table.
    """

    def __init__(self, vocabulary, dim, initializer="zeros", l2=0.0, embeddings_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = [str(v) for v in vocabulary]
        self.dim = int(dim)
        self.l2 = float(l2)
        initializer = tf.keras.initializers.get(initializer)
        # A fresh instance per table: Keras warns that one instance reused gives identical draws.
        self.initializer = initializer.__class__.from_config(initializer.get_config())
        self.embeddings_regularizer = tf.keras.regularizers.get(embeddings_regularizer)
        self.lookup = tf.keras.layers.StringLookup(vocabulary=self.vocabulary, num_oov_indices=1, mask_token=None)
        self.embedding = tf.keras.layers.Embedding(
            len(self.vocabulary) + 1,
            self.dim,
            embeddings_initializer=self.initializer,
            embeddings_regularizer=self.embeddings_regularizer,
            activity_regularizer=tf.keras.regularizers.L2(self.l2) if self.l2 else None,
        )

    def call(self, ids):
        index = self.lookup(ids)
        rows = self.embedding(index)
        known = tf.cast(tf.not_equal(index, 0), rows.dtype)
        return rows * known[..., tf.newaxis]

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "dim": self.dim,
            "initializer": tf.keras.initializers.serialize(self.initializer),
            "l2": self.l2,
            "embeddings_regularizer": tf.keras.regularizers.serialize(self.embeddings_regularizer)
            if self.embeddings_regularizer
            else None,
        }
