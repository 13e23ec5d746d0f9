"""Matrix factorization: a rating is the dot product of a user and an item vector."""

from __future__ import annotations


from tfrec._keras import tf

from tfrec.families import Family
from tfrec.models._base import RatingModel
from tfrec.models._layers import factor_initializer, IdEmbedding


FAMILY = Family(
    model="MatrixFactorization",
    title="Matrix factorization",
    variants={"mf": {}},
    # Plain MF, with no mean or bias terms to carry the rating level, overfits at lr 0.01 before it converges.
    # Lazy Adam, the refit and the L2 that follows the data: as biased MF's, measured there and here.
    defaults={
        "dim": 32,
        "learning_rate": 0.003,
        "l2": 0.1,
        "batch_size": 1024,
        "patience": 3,
        "refit": True,
        "optimizer": "lazy-adam",
    },
    scaled={"l2": 5.8},
    arguments={"dim": "dim", "l2": "l2"},
    search={
        "learning_rate": {"low": 0.001, "high": 0.03, "log": True},
        "dim": {"low": 4, "high": 128, "log": True},
        "l2": {"low": 0.001, "high": 1.0, "log": True},
        "batch_size": {"choices": [64, 128, 256, 512, 1024]},
    },
    rank=10,
)


@tf.keras.utils.register_keras_serializable(package="tfrec")
class MatrixFactorization(RatingModel):
    """Plain matrix factorization (Koren, Bell & Volinsky 2009; the PyTorch MF tutorials).

    ``r_hat(u, i) = p_u . q_i`` with ``p_u, q_i`` in R^dim, the ``nn.Embedding``
    model of the classic PyTorch MF posts. It has no mean or bias terms, so a
    pair with an unseen user or item (no learned vectors) predicts the training
    global mean instead of 0.

    Args:
      user_vocabulary: Known user ids (strings); others map to the OOV row.
      item_vocabulary: Known movie ids (strings).
      dim: Factor dimension. Default 32.
      l2: L2 weight on the looked-up factors per batch (see ``IdEmbedding``).
      embeddings_initializer: Keras initializer of both tables. PyTorch's
        ``nn.Embedding`` draws N(0, 1); Keras' Embedding U(-0.05, 0.05); the
        default N(0, 0.1) starts small factors that Adam moves in a few epochs.
      global_mean: Training mean rating, the answer for unseen ids.
      rating_range: ``(min, max)`` to clip predictions to at inference, or None.

    Example (``train`` is a training ``tfrec.data.Ratings``, such as
    ``tfrec.data.split(tfrec.data.load("ml-100k")).train``; tests run it):
      >>> model = MatrixFactorization.from_table(train, dim=32)
      >>> model.compile(optimizer=tf.keras.optimizers.Adam(0.003))
      >>> history = model.fit(tfrec.data.dataset(train, 1024, shuffle=True), epochs=1, verbose=0)
      >>> model({"user_id": tf.constant(["1", "nobody"]), "movie_id": tf.constant(["1", "1"])}).shape
      TensorShape([2])
    """

    default_embedding_std = 0.1

    def __init__(
        self,
        user_vocabulary,
        item_vocabulary,
        dim: int = 32,
        l2: float = 0.0,
        embeddings_initializer="default",
        global_mean: float = 0.0,
        rating_range=None,
        **kwargs,
    ):
        super().__init__(rating_range=rating_range, **kwargs)
        embeddings_initializer = factor_initializer(embeddings_initializer, self.default_embedding_std)
        self.dim = int(dim)
        self.l2 = float(l2)
        self.global_mean = float(global_mean)
        self._add_lookups(user_vocabulary, item_vocabulary)
        users, items = len(self.user_vocabulary), len(self.item_vocabulary)
        # No row-0 mask: ``score_rows`` and ``score_items`` answer the global mean wherever an id is unseen,
        # and that tf.where also keeps the loss's gradient off the unseen row (biased MF does the same).
        init = embeddings_initializer
        self.user_factors = IdEmbedding(users, dim, init, l2, mask_unseen=False, name="user_factors")
        self.item_factors = IdEmbedding(items, dim, init, l2, mask_unseen=False, name="item_factors")

    def interaction(self, users, items):
        """``p_u . q_i`` for row indices from :meth:`lookup`."""
        return tf.reduce_sum(self.user_factors(users) * self.item_factors(items), axis=-1)

    scores_item_grid = False

    def score_rows(self, users, items, training=False):
        known = tf.logical_and(users > 0, items > 0)
        return tf.where(known, self.interaction(users, items), self.global_mean)

    def item_rows(self):
        """Rows ``1..V`` of the item vocabulary (every known item)."""
        return tf.range(1, len(self.item_vocabulary) + 1, dtype=tf.int64)

    def score_items(self, users, item_state=None):
        scores = tf.matmul(self.user_factors(users), self.item_factors(self.item_rows()), transpose_b=True)
        return tf.where((users > 0)[:, tf.newaxis], scores, self.global_mean)

    def get_config(self):
        return {
            **super().get_config(),
            "user_vocabulary": self.user_vocabulary,
            "item_vocabulary": self.item_vocabulary,
            "dim": self.dim,
            "l2": self.l2,
            "embeddings_initializer": tf.keras.initializers.serialize(self.user_factors.initializer),
            "global_mean": self.global_mean,
        }
