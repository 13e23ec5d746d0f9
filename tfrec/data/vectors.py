"""Rating vectors for AutoRec: one user's (or item's) ratings as a row, dense per batch only.

The training ratings are held as compressed rows (CSR: ``row_splits``,
``columns``, ``values``). A batch of row numbers gathers its rows as a ragged
tensor, which becomes a ``tf.SparseTensor`` and then a dense ``[batch, width]``
matrix with ``tf.sparse.to_dense``. Only one batch is ever dense, so ML-20M's
138K x 27K matrix never is.

Rows and columns are numbered by the model convention of
``RatingModel.table_args``: the ids present in the table, in vocabulary order
(row ``r`` is the id at ``StringLookup`` index ``r + 1``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tfrec._keras import tf

from tfrec.data.pipeline import epoch_batches, epoch_pipeline
from tfrec.data.table import Ratings
from tfrec.errors import DataError

BY = ("item", "user")


@dataclasses.dataclass(frozen=True, eq=False)
class RatingRows:
    """A ratings table as compressed rows: the ratings of row ``r`` are
    ``values[row_splits[r]:row_splits[r + 1]]`` at ``columns[...]`` (sorted).

    Attributes:
      row_ids, column_ids: Raw ids of the rows and columns, in vocabulary order.
      row_splits: int64 ``[rows + 1]``.
      columns: int32 ``[ratings]``.
      values: float32 ``[ratings]``.
    """

    row_ids: np.ndarray
    column_ids: np.ndarray
    row_splits: np.ndarray
    columns: np.ndarray
    values: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.row_ids), len(self.column_ids)


def present(positions: np.ndarray):
    """Sorted distinct positions and each input's rank among them (the model's row - 1)."""
    return np.unique(positions, return_inverse=True)


def rating_rows(table: Ratings, by: str = "item") -> RatingRows:
    """The table's ratings grouped by item (I-AutoRec) or by user (U-AutoRec).

    Raises:
      DataError: an unknown ``by`` or a (user, item) pair rated twice (a vector
        has one cell per pair, so the table must not hold duplicates).
    """
    if by not in BY:
        raise DataError(f"by must be 'item' or 'user', got {by!r}")
    users, user_rank = present(table.user)
    items, item_rank = present(table.item)
    if by == "item":
        row_ids, rows, column_ids, cols = table.item_ids[items], item_rank, table.user_ids[users], user_rank
    else:
        row_ids, rows, column_ids, cols = table.user_ids[users], user_rank, table.item_ids[items], item_rank
    return RatingRows(row_ids, column_ids, *compress(rows, cols, table.rating, len(row_ids), table))


def compress(rows, cols, values, num_rows: int, table: Ratings | None = None):
    """``(row_splits, columns, values)`` of the ratings at (rows[k], cols[k]), columns sorted per row.

    Raises:
      DataError: a cell given twice (a vector has one entry per pair); with
        ``table`` (whose rows these are) the message names the user and movie.
    """
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    twice = np.flatnonzero((rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1]))
    if len(twice):
        r = order[twice[0] + 1]
        item = "movie" if table is not None and table.item_key == "movie_id" else "item"
        where = f"{table.name}: user {table.user_id[r]} rated {item} {table.movie_id[r]}" if table else f"row {r}"
        raise DataError(f"{where} more than once; rating vectors need one rating per pair")
    row_splits = np.zeros(num_rows + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=num_rows), out=row_splits[1:])
    return row_splits, cols.astype(np.int32), np.asarray(values, np.float32)[order]


def sparse_rows(row_splits, columns, values, rows, width) -> tf.SparseTensor:
    """Rows ``rows`` of a CSR matrix as a ``[len(rows), width]`` SparseTensor.

    Works on tensors or variables, so a model can keep its training ratings and
    call it per batch. Row numbers must be valid (``0 <= row < len(row_splits) - 1``).
    """
    cols = tf.gather(tf.RaggedTensor.from_row_splits(columns, row_splits, validate=False), rows)
    vals = tf.gather(tf.RaggedTensor.from_row_splits(values, row_splits, validate=False), rows)
    indices = tf.stack([cols.value_rowids(), tf.cast(cols.flat_values, tf.int64)], axis=1)
    shape = tf.stack([tf.size(rows, out_type=tf.int64), tf.cast(width, tf.int64)])
    return tf.SparseTensor(indices, vals.flat_values, shape)


def dense_rows(row_splits, columns, values, rows, width):
    """Rows of a CSR matrix as dense ``[len(rows), width]`` ratings and their 0/1 mask."""
    sparse = sparse_rows(row_splits, columns, values, rows, width)
    return tf.sparse.to_dense(sparse), tf.sparse.to_dense(tf.sparse.map_values(tf.ones_like, sparse))


#: Rating matrices up to this many entries are held densely by :func:`vector_dataset` (64 MB float32 each).
DENSE_ENTRIES = 1 << 24


def vector_dataset(
    table: Ratings,
    by: str = "item",
    batch_size: int = 64,
    *,
    shuffle: bool = False,
    seed: int = 42,
    drop_remainder: bool = False,
    first_epoch: int = 1,
    ragged: bool = False,
) -> tf.data.Dataset:
    """Batches of rating vectors: ``{"ratings": [B, width], "mask": [B, width]}`` float32.

    Each example is one item's ratings by every user in the table (``by="item"``)
    or one user's ratings of every item (``by="user"``); ``mask`` is 1 where a
    rating exists. With ``shuffle`` the row order is drawn anew each epoch with
    ``stateless_shuffle(seed, epoch)``, as in :func:`tfrec.data.dataset`
    (``first_epoch`` too).

    ``ragged=True`` gives the same vectors by their observed entries only:
    ``{"columns": [B, None] int32, "ratings": [B, None] float32}`` ragged
    tensors, the positions and values of each vector's ratings (columns sorted).
    A batch then costs its ratings, not ``B x width`` entries; ``AutoRec`` reads
    both forms, and ``tfrec train`` feeds it this one.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    csr = rating_rows(table, by)
    n, width = csr.shape
    gather = _gatherer(csr, ragged)
    rows = epoch_batches(n, int(batch_size), seed, shuffle, drop_remainder, table.name, first_epoch)
    return epoch_pipeline(
        rows.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
    )


def _gatherer(csr, ragged: bool):
    """The map from a batch of row numbers to its vectors: ragged, or dense with their mask."""
    n, width = csr.shape
    if ragged:
        columns = tf.RaggedTensor.from_row_splits(csr.columns, csr.row_splits, validate=False)
        values = tf.RaggedTensor.from_row_splits(csr.values, csr.row_splits, validate=False)

        @tf.autograph.experimental.do_not_convert
        def gather(rows):
            return {"columns": tf.gather(columns, rows), "ratings": tf.gather(values, rows)}

    elif n * width <= DENSE_ENTRIES:
        # Small enough to hold densely (ML-100K: 1.6M entries, 6 MB): gathering rows is cheaper than
        # densifying each batch; the values are the same.
        rows_of = np.repeat(np.arange(n), np.diff(csr.row_splits))
        dense = np.zeros((n, width), np.float32)
        dense[rows_of, csr.columns] = csr.values
        observed = np.zeros((n, width), np.float32)
        observed[rows_of, csr.columns] = 1.0
        ratings_matrix, mask_matrix = tf.constant(dense), tf.constant(observed)

        @tf.autograph.experimental.do_not_convert
        def gather(rows):
            return {"ratings": tf.gather(ratings_matrix, rows), "mask": tf.gather(mask_matrix, rows)}

    else:
        splits, cols, vals = (tf.constant(a) for a in (csr.row_splits, csr.columns, csr.values))

        @tf.autograph.experimental.do_not_convert
        def gather(rows):
            ratings, mask = dense_rows(splits, cols, vals, rows, width)
            return {"ratings": ratings, "mask": mask}

    return gather


def vectors_in(features):
    """How many rating vectors a batch holds (int64), ragged or dense."""
    ratings = features["ratings"]
    return ratings.nrows() if isinstance(ratings, tf.RaggedTensor) else tf.shape(ratings, out_type=tf.int64)[0]


def observed_entries(features):
    """``(rows, columns, ratings, weights)`` of a batch's observed entries, in row-major order.

    From ragged vectors (``vector_dataset(..., ragged=True)``: every entry is
    observed, weight 1) or from dense ones and their mask (nonzero entries).
    """
    ratings = features["ratings"]
    if isinstance(ratings, tf.RaggedTensor):
        values = ratings.flat_values
        columns = tf.cast(features["columns"].flat_values, tf.int64)
        return ratings.value_rowids(), columns, values, tf.ones_like(values)
    mask = features["mask"]
    entries = tf.where(tf.not_equal(mask, 0))
    return entries[:, 0], entries[:, 1], tf.gather_nd(ratings, entries), tf.gather_nd(mask, entries)
