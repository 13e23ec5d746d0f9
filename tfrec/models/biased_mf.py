"""Biased matrix factorization: global mean plus user and item biases plus factors."""

from __future__ import annotations

from tfrec._keras import tf
from tfrec.families import Family
from tfrec.models._layers import IdEmbedding
from tfrec.models.mf import MatrixFactorization


FAMILY = Family(
    model="BiasedMatrixFactorization",
    title="Biased matrix factorization",
    variants={"biased-mf": {}},
    # Chosen by `tfrec tune` on ML-100K and on planted data of ML-1M's shape (benchmarks/RESULTS.md): lazy
    # Adam moves only the batch's rows (at ML-20M's shape dense Adam's whole-table steps cost several times
    # the time and end worse); the refit on the whole training part is worth more than any other setting.
    defaults={
        "dim": 32,
        "learning_rate": 0.005,
        "l2": 0.1,
        "batch_size": 1024,
        "patience": 3,
        "refit": True,
        "optimizer": "lazy-adam",
    },
    # L2 per rating, divided by ratings per user and item (tfrec.families.ratings_per_id): 0.1 on ML-100K
    # (58), 0.038 on ML-1M's shape (152); one fixed weight is 2.6x too strong on one or too weak on the other.
    scaled={"l2": 5.8},
    arguments={"dim": "dim", "l2": "l2", "bias_l2": "bias_l2"},
    options={
        # The biases are one number per id, and a weaker pull than the factors' fits them better, on ML-100K
        # and on planted data alike (benchmarks/RESULTS.md, "Defaults that follow the data").
        "bias_l2": {
            "type": "float",
            "default": 0.01,
            "min": 0.0,
            "help": "L2 weight on the looked-up biases",
            "search": {"low": 0.0001, "high": 1.0, "log": True},
        },
    },
    search={
        "learning_rate": {"low": 0.001, "high": 0.03, "log": True},
        "dim": {"low": 4, "high": 128, "log": True},
        "l2": {"low": 0.001, "high": 1.0, "log": True},
        "batch_size": {"choices": [64, 128, 256, 512, 1024]},
    },
    rank=20,
    default="biased-mf",  # what `tfrec train` trains without --model
)


@tf.keras.utils.register_keras_serializable(package="tfrec")
class BiasedMatrixFactorization(MatrixFactorization):
    """Biased MF, the "SVD" of the Netflix prize (Koren, Bell & Volinsky 2009).

    ``r_hat(u, i) = mu + b_u + b_i + p_u . q_i``, with ``mu`` the training mean
    (a constant), ``b_u, b_i`` one-dimensional embeddings initialised at zero and
    ``p_u, q_i`` the factors of :class:`MatrixFactorization`. An unseen user has
    ``b_u = 0, p_u = 0``, so it predicts ``mu + b_i``; an unseen item ``mu + b_u``.

    Args:
      user_vocabulary, item_vocabulary, dim, global_mean, rating_range: as in
        :class:`MatrixFactorization`.
      embeddings_initializer: Keras initializer of both factor tables; the default N(0, 0.01) starts
        the factors ten times smaller than plain MF's N(0, 0.1). The biases carry the rating level
        from the first step, so the factors need no head start, and small ones grow only where the
        ratings ask for them, whatever the initial draw.
      l2: L2 weight on the looked-up factors per batch.
      bias_l2: L2 weight on the looked-up biases per batch. Default: ``l2`` (``tfrec train``: the
        ``bias_l2`` option, 0.01).

    Example (``train`` is a training ``tfrec.data.Ratings``, such as
    ``tfrec.data.split(tfrec.data.load("ml-100k")).train``; tests run it):
      >>> model = BiasedMatrixFactorization.from_table(train, l2=0.1)
      >>> model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
      >>> history = model.fit(tfrec.data.dataset(train, 1024, shuffle=True), epochs=1, verbose=0)
      >>> model({"user_id": tf.constant(["1", "nobody"]), "movie_id": tf.constant(["1", "1"])}).shape
      TensorShape([2])
    """

    default_embedding_std = 0.01

    def __init__(self, user_vocabulary, item_vocabulary, dim=32, l2=0.0, bias_l2=None, **kwargs):
        super().__init__(user_vocabulary, item_vocabulary, dim=dim, l2=l2, **kwargs)
        self.bias_l2 = float(l2 if bias_l2 is None else bias_l2)
        users, items = len(self.user_vocabulary), len(self.item_vocabulary)
        # Unmasked, as the factors: the scores below drop an unseen id's terms with tf.where.
        self.user_bias = IdEmbedding(users, 1, "zeros", self.bias_l2, mask_unseen=False, name="user_bias")
        self.item_bias = IdEmbedding(items, 1, "zeros", self.bias_l2, mask_unseen=False, name="item_bias")

    def score_rows(self, users, items, training=False):
        # Each term that reads an unseen id's row (row 0) is dropped by a tf.where, which also keeps the
        # loss's gradient off that row: the same numbers as zero-masked rows, at a third of the work.
        known_user, known_item = users > 0, items > 0
        user_bias = tf.where(known_user, self.user_bias(users)[:, 0], 0.0)
        item_bias = tf.where(known_item, self.item_bias(items)[:, 0], 0.0)
        interaction = tf.where(tf.logical_and(known_user, known_item), self.interaction(users, items), 0.0)
        return self.global_mean + (user_bias + item_bias) + interaction  # the sum in the order it always had

    def score_items(self, users, item_state=None):
        items = self.item_rows()  # every known item: only the user can be unseen
        factors = tf.matmul(self.user_factors(users), self.item_factors(items), transpose_b=True)
        user_terms = tf.where((users > 0)[:, tf.newaxis], self.user_bias(users) + factors, 0.0)
        return self.global_mean + tf.transpose(self.item_bias(items)) + user_terms

    def get_config(self):
        return {**super().get_config(), "bias_l2": self.bias_l2}
