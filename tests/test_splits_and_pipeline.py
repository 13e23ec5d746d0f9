"""Splits are deterministic partitions with fingerprints; pipelines reshuffle every epoch."""

import numpy as np
import pytest

from tfrec import data
from tfrec.errors import DataError


@pytest.fixture(scope="module")
def table():
    return data.generate(users=60, items=40, ratings=1000, seed=5).ratings


def _partition(split, n):
    rows = np.concatenate([split.train_rows, split.test_rows])
    return sorted(rows.tolist()) == list(range(n))


def test_ratio_split_is_deterministic_and_fingerprinted(table):
    a, b = data.random_split(table, 0.2, seed=42), data.random_split(table, 0.2, seed=42)
    assert len(a.test) == 200 and len(a.train) == 800 and _partition(a, len(table))
    assert a.fingerprint == b.fingerprint and np.array_equal(a.test_rows, b.test_rows)
    c = data.random_split(table, 0.2, seed=43)
    assert c.fingerprint != a.fingerprint
    # The same rows of different content are a different split.
    other = data.generate(users=60, items=40, ratings=1000, seed=6).ratings
    assert data.random_split(other, 0.2, seed=42).fingerprint != a.fingerprint
    assert a.train.rating.tolist() == table.rating[a.train_rows].tolist()


def test_blocks_of_one_permutation_are_test_parts_that_share_no_rating(table):
    first = data.random_split(table, 0.2, seed=42)
    blocks = [data.random_split(table, 0.2, seed=42, block=k) for k in range(5)]
    assert blocks[0].fingerprint == first.fingerprint and blocks[0].name == first.name  # block 0: the split itself
    for s in blocks:
        assert len(s.test) == 200 and _partition(s, len(table))
    assert sorted(np.concatenate([s.test_rows for s in blocks]).tolist()) == list(range(len(table)))
    with pytest.raises(DataError, match="block 5 of 200 ratings does not fit"):
        data.random_split(table, 0.2, seed=42, block=5)


def test_folds_are_disjoint_contiguous_blocks(table):
    tests = [data.fold_split(table, k) for k in range(1, 6)]
    for k, s in enumerate(tests):
        assert s.test_rows.tolist() == list(range(k * 200, (k + 1) * 200)) and _partition(s, len(table))
    assert len({s.fingerprint for s in tests}) == 5


@pytest.mark.skipif(data.recbole_directory() is None, reason="recbole not installed")
def test_u1_fold_of_ml100k_matches_grouplens():
    split = data.split(data.load_recbole(), "u1")
    assert (len(split.train), len(split.test)) == (80_000, 20_000)
    # GroupLens u1.test starts (sorted by user, item): user 1 rated items 6, 10, 12, 14, 17 ...
    first = sorted(int(i) for u, i in zip(split.test.user_id, split.test.movie_id) if u == "1")[:5]
    assert first == [6, 10, 12, 14, 17]


def test_leave_last_out_takes_each_users_latest(table):
    split = data.leave_last_out(table)
    assert _partition(split, len(table))
    test_users = split.test.user
    assert len(np.unique(test_users)) == len(test_users)  # one per user
    for row in split.test_rows:
        same_user = table.timestamp[table.user == table.user[row]]
        assert table.timestamp[row] == same_user.max()


def _epoch(ds):
    return np.concatenate([b["timestamp"].numpy() for b in ds])


def test_training_pipeline_reshuffles_each_epoch_repeatably(table):
    ds = data.dataset(table, 64, shuffle=True, seed=1)
    first, second = _epoch(ds), _epoch(ds)
    assert sorted(first.tolist()) == sorted(table.timestamp.tolist())  # every row once
    assert not np.array_equal(first, second)
    again = data.dataset(table, 64, shuffle=True, seed=1)
    assert np.array_equal(_epoch(again), first) and np.array_equal(_epoch(again), second)
    assert [len(b["user_id"]) for b in ds] == [64] * 15 + [40]
    assert ds.cardinality().numpy() == 16


def test_an_endless_pipeline_gives_the_repeated_pipelines_batches_and_owns_no_variable(table):
    """`endless=True` (ParameterServerStrategy's dataset_fn may create no variable): epoch after epoch,
    the batches of the pipeline passed over again and again, from any first epoch, with or without
    the model's row numbers."""
    import tensorflow as tf

    vocabularies = (sorted(set(table.user_id)), sorted(set(table.movie_id)))
    for first in (1, 3):
        for vocab in (None, vocabularies):
            kwargs = dict(shuffle=True, seed=1, first_epoch=first, vocabularies=vocab)
            repeated = [b["timestamp"].numpy() for b in data.dataset(table, 64, **kwargs).repeat().take(40)]
            with tf.Graph().as_default():  # built in a graph: a variable in it would show in its collection
                data.dataset(table, 64, endless=True, **kwargs)
                assert not tf.compat.v1.global_variables()
            endless = [b["timestamp"].numpy() for b in data.dataset(table, 64, endless=True, **kwargs).take(40)]
            assert len(endless) == 40 and all(np.array_equal(a, b) for a, b in zip(repeated, endless))


def test_a_resumed_pipeline_continues_with_the_next_epochs_order(table):
    """first_epoch=3 starts where a pipeline that already ran epochs 1 and 2 goes on, for every family."""
    from tfrec.data.implicit import implicit_dataset
    from tfrec.data.vectors import vector_dataset

    for make, key in (
        (lambda e: data.dataset(table, 64, shuffle=True, seed=1, first_epoch=e), "timestamp"),
        (lambda e: implicit_dataset(table, 2, 64, seed=1, first_epoch=e), "movie_id"),
        (lambda e: vector_dataset(table, "user", 8, shuffle=True, seed=1, first_epoch=e), "ratings"),
    ):
        whole, resumed = make(1), make(3)
        passes = [np.concatenate([b[key].numpy() for b in whole]) for _ in range(3)]
        assert not np.array_equal(passes[1], passes[2])
        np.testing.assert_array_equal(np.concatenate([b[key].numpy() for b in resumed]), passes[2])
    with pytest.raises(DataError, match="first_epoch"):
        data.dataset(table, 64, shuffle=True, first_epoch=0)


def test_eval_pipeline_keeps_order_and_values(table):
    batch = next(iter(data.dataset(table, 1000)))
    assert [x.decode() for x in batch["user_id"].numpy()] == table.user_id.tolist()
    assert [x.decode() for x in batch["movie_id"].numpy()] == table.movie_id.tolist()
    np.testing.assert_array_equal(batch["user_rating"].numpy(), table.rating)


def test_row_pipeline_gives_each_ids_row_in_the_models_vocabulary(table):
    """With vocabularies a batch carries int64 rows (StringLookup's numbering, 0 for an id the
    vocabulary lacks) beside the same ratings and timestamps, in the order the id pipeline gives."""
    import tfrec  # noqa: F401  (Keras 2)
    import tensorflow as tf

    users, items = table.user_ids[::2].tolist(), table.item_ids[1::3].tolist()  # some ids are unseen
    features = ("user_id", "movie_id", "user_rating", "timestamp")
    by_id = data.dataset(table, 64, shuffle=True, seed=3, features=features)
    by_row = data.dataset(table, 64, shuffle=True, seed=3, features=features, vocabularies=(users, items))
    lookups = [tf.keras.layers.StringLookup(vocabulary=v, num_oov_indices=1) for v in (users, items)]
    zeros = 0
    for a, b in zip(by_id, by_row):
        assert list(b) == ["user_row", "movie_row", "user_rating", "timestamp"]
        assert b["user_row"].dtype == b["movie_row"].dtype == tf.int64 and b["user_rating"].dtype == tf.float32
        np.testing.assert_array_equal(b["user_row"].numpy(), lookups[0](a["user_id"]).numpy())
        np.testing.assert_array_equal(b["movie_row"].numpy(), lookups[1](a["movie_id"]).numpy())
        np.testing.assert_array_equal(b["user_rating"].numpy(), a["user_rating"].numpy())
        np.testing.assert_array_equal(b["timestamp"].numpy(), a["timestamp"].numpy())
        zeros += int(np.sum(b["user_row"].numpy() == 0))
    assert 0 < zeros < len(table)


def test_side_features_are_joined_per_rating(tmp_path):
    from conftest import ml100k_dir

    table = data.load_directory(ml100k_dir(tmp_path))
    batch = next(iter(data.dataset(table, 10, features="all")))
    assert batch["movie_genres"].to_list()[0] == [2, 3, 4]  # movie 10: Animation, Children, Comedy
    assert batch["bucketized_user_age"].numpy().tolist()[:4] == [18.0, 18.0, 18.0, 50.0]
    assert batch["movie_title"].numpy()[2].decode() == "Cafe Olé (1996)"


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_whole_epoch_gathers_give_the_batches_of_per_batch_gathers(table, monkeypatch, drop_remainder):
    """Pipelines of row numbers and ratings only gather an epoch at a time; the batches are the same."""
    vocabularies = (table.user_ids[::2].tolist(), table.item_ids.tolist())
    features = ("user_id", "movie_id", "user_rating")

    def epochs(first_epoch):
        ds = data.dataset(table, 64, shuffle=True, seed=2, features=features, vocabularies=vocabularies,
                          drop_remainder=drop_remainder, first_epoch=first_epoch)  # fmt: skip
        graph = ds._as_serialized_graph().numpy()  # noqa: SLF001
        return [[{k: v.numpy() for k, v in b.items()} for b in ds] for _ in range(3)], b"ParallelMapDataset" in graph

    whole, mapped = epochs(1)
    resumed, _ = epochs(2)
    monkeypatch.setattr("tfrec.data.pipeline.WHOLE_EPOCH_ROWS", 0)
    per_batch, per_batch_mapped = epochs(1)
    assert not mapped and per_batch_mapped  # the two ways were both taken
    assert [len(b["user_row"]) for b in whole[0]] == [64] * 15 + ([] if drop_remainder else [40])
    for epoch_whole, epoch_batch in zip(whole, per_batch):
        assert len(epoch_whole) == len(epoch_batch)
        for a, b in zip(epoch_whole, epoch_batch):
            assert a.keys() == b.keys() == {"user_row", "movie_row", "user_rating"}
            for key in a:
                assert a[key].dtype == b[key].dtype
                np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(whole[0][0]["user_row"], whole[1][0]["user_row"])  # a new order each epoch
    np.testing.assert_array_equal(resumed[0][0]["user_row"], whole[1][0]["user_row"])
