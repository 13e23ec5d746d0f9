"""Top-k ranking metrics of the NCF protocol: HR@k and NDCG@k over sampled candidates.

Each user has one held-out item and ``n`` sampled items it never rated
(:func:`tfrec.data.ranking_candidates`). A model scores all ``1 + n``; with
``g`` candidates scored above the held-out item and ``t`` tied with it, the
item's rank (0-based) is uniform on ``g .. g + t`` under random tie-breaking,
and the metrics are its expectations:

    HR@k   = P(rank < k)
    NDCG@k = E[1{rank < k} / log2(rank + 2)]

(One relevant item, so the ideal DCG is 1.) Expected values make ties fair to
scorers with many of them, such as the most-popular baseline.
"""

from __future__ import annotations

import weakref

import numpy as np
from tfrec._keras import tf

from tfrec.data.implicit import Candidates
from tfrec.data.table import Ratings


def rank_metrics(scores: tf.Tensor, k: int = 10):
    """Per-user HR@k and NDCG@k from scores ``[users, 1 + n]`` (column 0 is the held-out item)."""
    scores = tf.convert_to_tensor(scores)
    positive, others = scores[:, :1], scores[:, 1:]
    above = tf.reduce_sum(tf.cast(others > positive, tf.float32), axis=1)
    ties = tf.reduce_sum(tf.cast(tf.equal(others, positive), tf.float32), axis=1)
    hit = tf.clip_by_value((k - above) / (ties + 1.0), 0.0, 1.0)
    offsets = tf.range(tf.shape(scores)[1], dtype=tf.float32)[tf.newaxis, :]
    rank = above[:, tf.newaxis] + offsets
    counted = tf.cast((offsets <= ties[:, tf.newaxis]) & (rank < k), tf.float32)
    ndcg = tf.reduce_sum(counted / (tf.math.log(rank + 2.0) / tf.math.log(2.0)), axis=1) / (ties + 1.0)
    return hit, ndcg


def ranking_metrics(model, candidates: Candidates, k: int = 10, batch_size: int = 256) -> dict:
    """Mean HR@k and NDCG@k of ``model`` over the candidates, through a tf.data pipeline.

    Args:
      model: Any callable from ``{"user_id": [N], "movie_id": [N]}`` string
        tensors to ``[N]`` scores: a tfrec model, a loaded SavedModel's
        function, or :func:`most_popular`.
      candidates: From :func:`tfrec.data.ranking_candidates`.
      k: The cut-off.
      batch_size: Users per batch.

    Returns:
      ``{f"hit_rate@{k}": float, f"ndcg@{k}": float}``.
    """
    width = candidates.movie_id.shape[1]
    step = _scorer(model, width, k)
    ds = tf.data.Dataset.from_tensor_slices((candidates.user_id, candidates.movie_id)).batch(batch_size)
    hits, ndcgs = [], []
    for users, items in ds:
        hit, ndcg = step(users, items)
        hits.append(hit.numpy())
        ndcgs.append(ndcg.numpy())
    return {f"hit_rate@{k}": float(np.concatenate(hits).mean()), f"ndcg@{k}": float(np.concatenate(ndcgs).mean())}


_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _scorer(model, width: int, k: int):
    """One traced function per model, candidate width and k, reused across epochs."""
    cache = _SCORERS.setdefault(model, {})
    if (width, k) not in cache:
        scorer = weakref.ref(model)  # the cache must not keep the model alive
        spec = (tf.TensorSpec([None], tf.string), tf.TensorSpec([None, width], tf.string))

        @tf.function(input_signature=spec)
        def step(users, items):
            flat = {"user_id": tf.repeat(users, width), "movie_id": tf.reshape(items, [-1])}
            return rank_metrics(tf.reshape(scorer()(flat), [-1, width]), k)

        cache[(width, k)] = step
    return cache[(width, k)]


def most_popular(train: Ratings):
    """The most-popular baseline: an item's score is its number of training ratings.

    Returns a callable with the model interface of :func:`ranking_metrics`;
    an item without training ratings scores 0.
    """
    counts = np.bincount(train.item, minlength=train.num_items)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(train.item_ids), tf.constant(counts, tf.float32)), 0.0
    )
    return lambda features: table.lookup(features["movie_id"])


class RankingMetrics(tf.keras.callbacks.Callback):
    """Adds ``val_hit_rate@k`` and ``val_ndcg@k`` to the epoch logs, so
    ``EarlyStopping(monitor="val_ndcg@10", mode="max")`` can use them.

    Put it before EarlyStopping in ``callbacks``: Keras hands every callback
    the same logs dict, in order.
    """

    def __init__(self, candidates: Candidates, k: int = 10, prefix: str = "val_"):
        super().__init__()
        self.candidates, self.k, self.prefix = candidates, k, prefix

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for name, value in ranking_metrics(self.model, self.candidates, self.k).items():
            logs[self.prefix + name] = value
