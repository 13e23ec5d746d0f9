"""Implicit feedback: rated pairs are positives, sampled unrated pairs negatives.

Negatives are drawn uniformly from the items of the table and rejected when
the user rated them, checked against the sorted keys ``user * items + item`` of
the rated pairs with ``tf.searchsorted``. Rejected draws are redrawn for those
slots only, until none is left. Nothing loops over users or the user x item
grid, and the same sampler serves the per-epoch training negatives (inside
``tf.data``) and the fixed 99 evaluation negatives of the NCF protocol.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tfrec._keras import tf

from tfrec.data.pipeline import epoch_batches, epoch_pipeline
from tfrec.data.table import Ratings
from tfrec.errors import DataError

MAX_ROUNDS = 1000  # each round redraws only the rejected slots; a user with one unrated item needs ~items rounds


def rated_keys(table: Ratings) -> np.ndarray:
    """Sorted distinct ``user * num_items + item`` of the table's rated pairs (int64)."""
    return np.unique(table.user.astype(np.int64) * table.num_items + table.item)


def _check_unrated_left(table: Ratings, users: np.ndarray, pool: np.ndarray, keys: np.ndarray) -> None:
    per_user = np.bincount((keys // table.num_items).astype(np.int64), minlength=table.num_users)
    full = np.flatnonzero(per_user[np.unique(users)] >= len(pool))
    if len(full):
        user = table.user_ids[np.unique(users)[full[0]]]
        raise DataError(f"{table.name}: user {user} rated all {len(pool)} items; no negative can be sampled")


def sample_unrated(users, keys, pool, num_items: int, seed) -> tf.Tensor:
    """One item per entry of ``users`` drawn uniformly from ``pool``, never a rated pair.

    Args:
      users: int64 user positions ``[n]``.
      keys: Sorted int64 keys of the rated pairs (:func:`rated_keys`).
      pool: int64 item positions to draw from.
      num_items: The table's item vocabulary size (the key stride).
      seed: A stateless seed, shape ``[2]``.

    Returns:
      int64 item positions ``[n]``. Raises InvalidArgumentError after
      ``MAX_ROUNDS`` rounds (callers check first that every user has an unrated item).
    """
    users = tf.convert_to_tensor(users, tf.int64)
    keys = tf.convert_to_tensor(keys, tf.int64)
    pool = tf.convert_to_tensor(pool, tf.int64)
    seed = tf.cast(seed, tf.int64)

    def draw(round_, count):
        s = tf.random.experimental.stateless_fold_in(seed, round_)
        return tf.gather(pool, tf.random.stateless_uniform([count], s, maxval=tf.size(pool, tf.int64), dtype=tf.int64))

    def rated(u, i):
        k = u * num_items + i
        at = tf.minimum(tf.searchsorted(keys, k, out_type=tf.int64), tf.size(keys, tf.int64) - 1)
        return tf.equal(tf.gather(keys, at), k)

    def redraw(round_, items):
        bad = tf.where(rated(users, items))
        fresh = draw(round_, tf.shape(bad, tf.int64)[0])
        return round_ + 1, tf.tensor_scatter_nd_update(items, bad, fresh)

    def pending(round_, items):
        return tf.reduce_any(rated(users, items))

    _, items = tf.while_loop(pending, redraw, (tf.constant(1, tf.int64), draw(0, tf.size(users, tf.int64))),
                             maximum_iterations=MAX_ROUNDS)  # fmt: skip
    tf.debugging.assert_equal(tf.reduce_any(rated(users, items)), False, message="negative sampling did not finish")
    return items


def implicit_dataset(
    table: Ratings,
    negatives: int = 4,
    batch_size: int = 1024,
    *,
    seed: int = 42,
    shuffle: bool = True,
    drop_remainder: bool = False,
    first_epoch: int = 1,
) -> tf.data.Dataset:
    """Batches of ``{"user_id", "movie_id", "label"}``: each rated pair (label 1) and
    ``negatives`` unrated pairs of the same user (label 0), fresh every epoch.

    Epoch ``e`` draws its negatives with seed ``(seed, e)`` and shuffles the
    ``(1 + negatives) * pairs`` examples with ``stateless_shuffle``; the first
    pass is epoch ``first_epoch`` (a resumed run passes the next epoch). A pair rated
    twice counts once.

    Raises:
      DataError: ``negatives < 1`` or a user who rated every item.
    """
    if not isinstance(negatives, (int, np.integer)) or negatives < 1:
        raise DataError(f"negatives must be a positive integer, got {negatives!r}")
    keys = rated_keys(table)
    pool = np.unique(table.item).astype(np.int64)
    pos_users, pos_items = keys // table.num_items, keys % table.num_items
    _check_unrated_left(table, pos_users, pool, keys)
    n = len(keys) * (1 + negatives)
    user_ids, item_ids = tf.constant(table.user_ids), tf.constant(table.item_ids)
    neg_users = tf.constant(np.repeat(pos_users, negatives))
    pos_users, pos_items = tf.constant(pos_users), tf.constant(pos_items)
    labels = tf.constant(np.r_[np.ones(len(keys), np.float32), np.zeros(len(keys) * negatives, np.float32)])
    epoch = tf.Variable(first_epoch - 1, dtype=tf.int64, trainable=False, name="negatives_epoch")
    rows = epoch_batches(n, int(batch_size), seed, shuffle, drop_remainder, table.name, first_epoch)

    @tf.autograph.experimental.do_not_convert
    def epoch_examples(_):
        # The row order of epoch e is drawn from (seed, e); the negatives from a different stream of it.
        e = epoch.assign_add(1)
        draw_seed = tf.random.experimental.stateless_fold_in(tf.stack([tf.constant(seed, tf.int64), e]), 1)
        neg_items = sample_unrated(neg_users, keys, pool, table.num_items, draw_seed)
        users = tf.concat([pos_users, neg_users], 0)
        items = tf.concat([pos_items, neg_items], 0)

        @tf.autograph.experimental.do_not_convert
        def gather(batch_rows):
            return {
                "user_id": tf.gather(user_ids, tf.gather(users, batch_rows)),
                "movie_id": tf.gather(item_ids, tf.gather(items, batch_rows)),
                "label": tf.gather(labels, batch_rows),
            }

        return rows.map(gather)

    batches = rows.cardinality()
    out = tf.data.Dataset.range(1).flat_map(epoch_examples)
    return epoch_pipeline(out.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE))


@dataclasses.dataclass(frozen=True, eq=False)
class Candidates:
    """Ranking candidates of the NCF evaluation protocol.

    Attributes:
      user_id: ``[U]`` raw user ids.
      movie_id: ``[U, 1 + negatives]`` raw movie ids; column 0 is the held-out
        item, the others sampled items the user never rated.
    """

    user_id: np.ndarray
    movie_id: np.ndarray


def ranking_candidates(test: Ratings, rated: Ratings, negatives: int = 99, seed: int = 42) -> Candidates:
    """Each test rating's item followed by ``negatives`` items its user never rated in ``rated``.

    The usual NCF protocol (He et al. 2017): with ``test`` the leave-last-out
    part, every user's held-out item is ranked against 99 sampled items. The
    negatives are drawn uniformly (with replacement) from every item of
    ``rated``, which should be the whole table (training and test), and are
    fixed by ``seed``, so every model is ranked on the same candidates.

    Raises:
      DataError: ``test`` and ``rated`` do not share vocabularies (take both
        from one table's split), ``negatives < 1``, or a user rated every item.
    """
    if not isinstance(negatives, (int, np.integer)) or negatives < 1:
        raise DataError(f"negatives must be a positive integer, got {negatives!r}")
    if test.num_users != rated.num_users or test.num_items != rated.num_items:
        raise DataError(f"{test.name} and {rated.name}: not parts of one table (their vocabularies differ)")
    keys = rated_keys(rated)
    pool = np.unique(rated.item).astype(np.int64)
    _check_unrated_left(rated, test.user, pool, keys)
    users = np.repeat(test.user.astype(np.int64), negatives)
    sampled = sample_unrated(users, keys, pool, rated.num_items, tf.constant([seed, 0], tf.int64)).numpy()
    items = np.concatenate([test.item[:, None], sampled.reshape(len(test), negatives)], axis=1)
    return Candidates(test.user_id, test.item_ids[items])
