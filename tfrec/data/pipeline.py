"""tf.data pipelines of example dicts from a ratings table.

The table's columns are held in memory as tensors (that is the cache: nothing
is re-read or re-parsed between epochs). A training pipeline draws a new
permutation of row indices every epoch with ``stateless_shuffle(seed, epoch)``
and gathers whole batches with it, so an epoch costs one shuffle op and one
gather per batch instead of a per-element shuffle buffer (which on 80K rows
costs more than a biased-MF epoch). ``Dataset.cache()`` is not used after the
shuffle on purpose: it would freeze the first epoch's order. The dataset functions here (and in
``implicit`` and ``vectors``) have no Python control flow on tensors, so they skip AutoGraph,
whose conversion would only add to a run's start.
"""

from __future__ import annotations

import weakref
from typing import Iterable

import numpy as np
from tfrec._keras import tf

from tfrec.data.table import RATING_FEATURES, RaggedColumn, Ratings
from tfrec.errors import DataError


def dataset(
    table: Ratings,
    batch_size: int = 1024,
    *,
    shuffle: bool = False,
    seed: int = 42,
    features: Iterable[str] | str | None = None,
    drop_remainder: bool = False,
    first_epoch: int = 1,
    vocabularies: tuple[Iterable[str], Iterable[str]] | None = None,
    endless: bool = False,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """A batched, prefetched ``tf.data.Dataset`` of example dicts (TFDS MovieLens names).

    Args:
      table, batch_size: The ratings, and examples per batch (the last may be smaller).
      shuffle: Draw a new order every epoch (for training). Epoch ``e`` uses
        ``stateless_shuffle(range(n), seed=[seed, e])``, so runs are repeatable.
      seed: Seed of the epoch permutations.
      features: Names to include; default the rating features
        (``user_id``, ``movie_id``, ``user_rating``, ``timestamp``); ``"all"``
        adds every side feature the table has.
      drop_remainder: With ``shuffle``, leave out each epoch's last partial
        batch (different rows each epoch). MirroredStrategy needs it: replicas
        all-gather the sparse embedding gradients, which must have equal shapes.
      first_epoch: The epoch the first pass over the dataset is: a run resumed
        after epoch ``e`` passes ``e + 1`` and sees the order it would have seen.
      vocabularies: A model's ``(user_vocabulary, item_vocabulary)``. The ids
        then come as ``user_row``, ``movie_row`` (int64: 1 + the id's position
        in the vocabulary, 0 for an unseen id, what the model's ``StringLookup``
        gives) instead of strings, so no batch gathers or hashes strings
        (on large data most of an epoch's input work). Models take either.
      shard: For a streamed part (``tfrec.data.stream``), ``(n, k)``: read only the k-th of n workers'
        share of its files.
      endless: With ``shuffle``, epoch after epoch without end, each epoch's
        number carried by the dataset itself instead of a variable it owns:
        the form ``ParameterServerStrategy``'s ``dataset_fn`` needs (it may
        create no variables); the batches are those of the repeated pipeline.

    Returns:
      Dicts of ``[batch]`` tensors (``movie_genres``: ``[batch, None]``, ragged).

    Raises:
      DataError: a bad batch size or a feature the table does not have.
    """
    if getattr(table, "streamed", False):  # a part of staged shards (tfrec.data.stream) reads its own files
        return table.dataset(
            batch_size, shuffle=shuffle, seed=seed, features=features, drop_remainder=drop_remainder,
            first_epoch=first_epoch, vocabularies=vocabularies, endless=endless, shard=shard,
        )  # fmt: skip
    if shard is not None:
        raise DataError("shard is for a streamed part, whose workers read their own files")
    return _table_dataset(table, batch_size, shuffle, seed, features, drop_remainder, first_epoch, vocabularies,
                          endless)  # fmt: skip


def _table_dataset(table, batch_size, shuffle, seed, features, drop_remainder, first_epoch, vocabularies, endless):
    """:func:`dataset` of a table held in memory."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    names = _feature_names(table, features)
    if vocabularies is not None:
        names = tuple({"user_id": "user_row", "movie_id": "movie_row"}.get(n, n) for n in names)
    gather = _gatherer(table, names, vocabularies)
    if shuffle and gather.numbers_only and len(table) <= WHOLE_EPOCH_ROWS:
        # Gathered an epoch at a time and sliced into batches: no per-batch map, whose fixed cost per batch
        # is a sizeable share of a step as small as an MF step.
        examples = epoch_batches(len(table), int(batch_size), seed, shuffle, drop_remainder, table.name,
                                 first_epoch, gather=gather, endless=endless)  # fmt: skip
        return epoch_pipeline(examples.prefetch(tf.data.AUTOTUNE))
    rows = epoch_batches(len(table), int(batch_size), seed, shuffle, drop_remainder, table.name, first_epoch,
                         endless=endless)  # fmt: skip
    return epoch_pipeline(
        rows.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
    )


_EPOCH_PIPELINES = weakref.WeakSet()


def epoch_pipeline(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Marks ``ds`` as one of tfrec's epoch pipelines (see :func:`is_epoch_pipeline`) and returns it."""
    _EPOCH_PIPELINES.add(ds)
    return ds


def is_epoch_pipeline(ds) -> bool:
    """Whether ``ds`` came from ``dataset``, ``vector_dataset`` or ``implicit_dataset`` unchanged.

    One pass over such a pipeline is one epoch, and the next pass draws the next epoch's order from
    the pipeline's own counter, so ``ds.repeat()`` with ``steps_per_epoch`` gives the batches Keras
    gets by making a new iterator each epoch (``RatingModel.fit`` relies on it).
    """
    try:
        return ds in _EPOCH_PIPELINES
    except TypeError:  # not hashable: not a dataset
        return False


#: Training pipelines of up to this many ratings (of a model's row numbers and ratings only) gather a whole
#: epoch at once, 16 bytes a rating; larger ones gather batch by batch.
WHOLE_EPOCH_ROWS = 1 << 22


def epoch_batches(
    n: int,
    batch_size: int,
    seed: int = 42,
    shuffle: bool = True,
    drop_remainder: bool = False,
    label: str = "data",
    first_epoch: int = 1,
    gather=None,
    endless: bool = False,
) -> tf.data.Dataset:
    """Batches of row indices ``0..n-1``: in order, or in a new permutation every epoch.

    Epoch ``e`` (counted from ``first_epoch`` by a variable the pipeline owns) uses
    ``stateless_shuffle(range(n), seed=[seed, e])``. The cardinality is set, so
    Keras knows the epoch length (``steps_per_execution`` needs it). With ``shuffle``,
    ``gather`` (row indices ``[m]`` -> dict of ``[m]`` tensors) turns each epoch's
    permutation into its examples at once, and the batches are of those. ``endless``: epochs
    ``first_epoch, first_epoch + 1, ...`` without end, numbered by the dataset (no variable).
    """
    if not shuffle:
        return tf.data.Dataset.range(n).batch(batch_size)
    if drop_remainder and n < batch_size:
        raise DataError(f"{label}: {n} examples make no full batch of {batch_size}")
    if not isinstance(first_epoch, (int, np.integer)) or first_epoch < 1:
        raise DataError(f"first_epoch must be a positive integer, got {first_epoch!r}")
    batches = batch_count(n, batch_size, drop_remainder)
    return epochs(_epoch_of(n, batch_size, seed, drop_remainder, gather), first_epoch, endless, batches)


def batch_count(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches in one pass over ``n`` examples: the last partial one counted unless dropped."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


def epochs(epoch, first_epoch: int = 1, endless: bool = False, batches: int | None = None) -> tf.data.Dataset:
    """One epoch per pass, from ``epoch`` (an epoch's number, an int64 tensor -> its dataset).

    A pass draws the next number from a variable the pipeline owns, counted from ``first_epoch``, and
    the cardinality is ``batches`` (one epoch's). ``endless``: epochs ``first_epoch, first_epoch + 1,
    ...`` in one pass without end, numbered by the dataset itself (no variable: the form
    ``ParameterServerStrategy``'s ``dataset_fn`` needs).
    """
    if endless:
        return tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
    counter = tf.Variable(first_epoch - 1, dtype=tf.int64, trainable=False, name="epoch_counter")
    rows = tf.data.Dataset.range(1).flat_map(lambda _: epoch(counter.assign_add(1)))
    return rows if batches is None else rows.apply(tf.data.experimental.assert_cardinality(batches))


def _feature_names(table: Ratings, features) -> tuple[str, ...]:
    if features is None:
        return RATING_FEATURES
    if features == "all":
        return table.features
    names = tuple([features] if isinstance(features, str) else features)
    unknown = [f for f in names if f not in table.features]
    if unknown:
        raise DataError(f"{table.name}: no feature(s) {', '.join(unknown)}; it has {', '.join(table.features)}")
    return names


def _epoch_of(n, batch_size, seed, drop_remainder=False, gather=None):
    """Epoch number (an int64 scalar tensor) -> a dataset of that epoch's batches."""
    full = (n // batch_size) * batch_size

    @tf.autograph.experimental.do_not_convert
    def batches(e):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), e])
        )
        examples = order if gather is None else gather(order)
        head = tf.nest.map_structure(lambda x: tf.reshape(x[:full], [-1, batch_size]), examples)
        ds = tf.data.Dataset.from_tensor_slices(head)
        if full < n and not drop_remainder:
            ds = ds.concatenate(tf.data.Dataset.from_tensors(tf.nest.map_structure(lambda x: x[full:], examples)))
        return ds

    return batches


def vocabulary_rows(vocabulary, ids) -> np.ndarray:
    """Each id's row in ``vocabulary`` as a ``StringLookup`` with one OOV bucket numbers it (0: unseen)."""
    position = {str(v): k + 1 for k, v in enumerate(vocabulary)}
    return np.array([position.get(str(i), 0) for i in ids], np.int64)


def _gatherer(table: Ratings, names: tuple[str, ...], vocabularies=None):
    """A function from a batch of row indices to the example dict.

    The per-rating numbers (row numbers of a model's vocabularies, the rating) sit side by side in
    one ``[n, k]`` int32 block, so a batch reads an example's numbers with one gather (one cache line per
    example) instead of one gather per column. Strings, timestamps and side features are gathered apart.
    """
    packed, columns = {}, {}
    for name in names:
        if name == "user_row":
            packed[name] = vocabulary_rows(vocabularies[0], table.user_ids).astype(np.int32)[table.user]
        elif name == "movie_row":
            packed[name] = vocabulary_rows(vocabularies[1], table.item_ids).astype(np.int32)[table.item]
        elif name == "user_rating":
            packed[name] = np.asarray(table.rating, np.float32).view(np.int32)
        elif name == "user_id":
            columns[name] = (table.user, table.user_ids)
        elif name == "movie_id":
            columns[name] = (table.item, table.item_ids)
        elif name == "timestamp":
            columns[name] = (None, table.timestamp)
        elif name in table.user_features:
            columns[name] = (table.user, table.user_features[name])
        else:
            columns[name] = (table.item, table.item_features[name])
    # Each column becomes a tensor and TF stacks them: one copy fewer at the peak than np.stack and then a
    # copy into a tensor.
    packed_names = tuple(packed)
    block = tf.stack([tf.convert_to_tensor(packed.pop(name)) for name in packed_names], axis=1) if packed else None
    indexes = {id(index): tf.constant(index) for index, _ in columns.values() if index is not None}
    columns = {
        name: (None if index is None else indexes[id(index)], _tensor(values))
        for name, (index, values) in columns.items()
    }  # fmt: skip

    @tf.autograph.experimental.do_not_convert
    def gather(rows):
        out = {}
        if block is not None:
            numbers = tf.gather(block, rows)
            for k, name in enumerate(packed_names):
                column = numbers[:, k]
                out[name] = tf.bitcast(column, tf.float32) if name == "user_rating" else tf.cast(column, tf.int64)
        for name, (index, values) in columns.items():
            positions = rows if index is None else tf.gather(index, rows)
            out[name] = tf.gather(values, positions)
        return {name: out[name] for name in names}

    gather.numbers_only = not columns  # every feature is in the packed block (no strings, no ragged columns)
    return gather


def _tensor(column):
    if isinstance(column, RaggedColumn):
        return tf.RaggedTensor.from_row_splits(column.values, column.row_splits)
    column = np.asarray(column)
    if column.dtype.kind == "f":
        column = column.astype(np.float32)
    return tf.constant(column)
