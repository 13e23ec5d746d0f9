"""Negative sampling, NCF ranking candidates and metrics, and AutoRec's rating vectors."""

import numpy as np
import pytest

import tfrec  # noqa: F401  (selects Keras 2 before tensorflow below)
import tensorflow as tf
from tfrec import data
from tfrec.data.implicit import Candidates, implicit_dataset, ranking_candidates, sample_unrated
from tfrec.data.vectors import rating_rows, vector_dataset
from tfrec.errors import DataError
from tfrec.metrics import most_popular, rank_metrics, ranking_metrics


@pytest.fixture(scope="module")
def dense_table():
    """30 users x 12 items with 70% of the cells rated: most uniform draws hit a rated pair."""
    rng = np.random.default_rng(3)
    cells = np.argwhere(rng.random((30, 12)) < 0.7)
    cells = cells[np.bincount(cells[:, 0], minlength=30)[cells[:, 0]] < 12]  # every user keeps an unrated item
    return data.Ratings.from_arrays(
        [f"u{u}" for u in cells[:, 0]], [f"i{i}" for i in cells[:, 1]], rng.integers(1, 6, len(cells))
    )


def test_negative_sampling_never_yields_a_rated_pair_and_changes_each_epoch(dense_table):
    rated = set(zip(dense_table.user_id, dense_table.movie_id))
    ds = implicit_dataset(dense_table, negatives=3, batch_size=64, seed=5)
    epochs = []
    for _ in range(3):
        batches = list(ds)
        users = np.concatenate([b["user_id"].numpy().astype(str) for b in batches])
        items = np.concatenate([b["movie_id"].numpy().astype(str) for b in batches])
        labels = np.concatenate([b["label"].numpy() for b in batches])
        assert len(labels) == 4 * len(rated) and labels.sum() == len(rated)
        pairs = list(zip(users, items))
        assert {p for p, y in zip(pairs, labels) if y == 1} == rated
        negatives = [p for p, y in zip(pairs, labels) if y == 0]
        assert not set(negatives) & rated
        # Each rated pair brings `negatives` draws for its own user.
        assert sorted(u for u, _ in negatives) == sorted(u for u, _ in rated for _ in range(3))
        epochs.append(sorted(negatives))
    assert epochs[0] != epochs[1] != epochs[2]


def test_negatives_are_repeatable_by_seed(dense_table):
    def first(seed):
        return next(iter(implicit_dataset(dense_table, 2, 32, seed=seed)))["movie_id"].numpy().tolist()

    assert first(1) == first(1) and first(1) != first(2)


def test_sampler_draws_uniformly_from_unrated_items():
    keys = np.array([0, 2], np.int64)  # user 0 rated items 0 and 2 of 4
    draws = sample_unrated(np.zeros(4000, np.int64), keys, np.arange(4), 4, [7, 0]).numpy()
    counts = np.bincount(draws, minlength=4)
    assert counts[0] == counts[2] == 0
    assert abs(counts[1] - 2000) < 150 and abs(counts[3] - 2000) < 150


def test_a_user_who_rated_everything_is_a_clear_error():
    table = data.Ratings.from_arrays(["a", "a", "b"], ["x", "y", "x"], [1, 2, 3])
    with pytest.raises(DataError, match="user a rated all 2 items"):
        implicit_dataset(table, 1, 4)
    with pytest.raises(DataError, match="negatives must be a positive integer"):
        implicit_dataset(table, 0, 4)


def test_ranking_candidates_hold_the_test_item_then_unrated_items(ml100k):
    table = data.load(str(ml100k))
    parts = data.leave_last_out(table)
    candidates = ranking_candidates(parts.test, table, negatives=5, seed=0)
    assert candidates.movie_id.shape == (len(parts.test), 6)
    np.testing.assert_array_equal(candidates.movie_id[:, 0], parts.test.movie_id)
    rated = set(zip(table.user_id, table.movie_id))
    for user, row in zip(candidates.user_id, candidates.movie_id):
        assert not {(user, item) for item in row[1:]} & rated
    other = ranking_candidates(parts.test, table, negatives=5, seed=0)
    np.testing.assert_array_equal(other.movie_id, candidates.movie_id)


def test_rank_metrics_by_hand_with_ties():
    scores = tf.constant(
        [
            [5.0, 1, 2, 3],  # rank 0: hit, ndcg 1
            [1.0, 5, 4, 0],  # rank 2
            [2.0, 2, 2, 0],  # tied with 2 others: rank 0, 1 or 2, each 1/3
        ]
    )
    hit, ndcg = rank_metrics(scores, k=2)
    np.testing.assert_allclose(hit.numpy(), [1.0, 0.0, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(ndcg.numpy(), [1.0, 0.0, (1 + 1 / np.log2(3)) / 3], rtol=1e-6)


def test_ranking_metrics_of_the_most_popular_baseline(ml100k):
    train = data.load(str(ml100k))
    counts = dict(zip(*np.unique(train.movie_id, return_counts=True)))
    candidates = Candidates(np.array(["1", "2"]), np.array([["10", "40"], ["40", "10"]]))
    scorer = most_popular(train)
    scores = scorer({"user_id": tf.constant(["1"]), "movie_id": tf.constant(["10", "40", "nope"])}).numpy()
    np.testing.assert_array_equal(scores, [counts["10"], counts["40"], 0])
    result = ranking_metrics(scorer, candidates, k=1)
    assert result == {"hit_rate@1": 0.5, "ndcg@1": 0.5}  # user 1's item wins, user 2's loses


@pytest.mark.parametrize("held", ["densely", "as CSR rows"])
def test_rating_rows_and_vectors_match_a_dense_matrix(ml100k, held, monkeypatch):
    """Both ways vector_dataset can hold the ratings (a dense matrix for small tables, CSR otherwise)."""
    if held == "as CSR rows":
        monkeypatch.setattr("tfrec.data.vectors.DENSE_ENTRIES", 0)
    table = data.load(str(ml100k))
    rows = rating_rows(table, "item")
    users = np.unique(table.user_id)
    items = np.unique(table.movie_id)
    dense = np.zeros((len(items), len(users)), np.float32)
    for u, i, r in zip(table.user_id, table.movie_id, table.rating):
        dense[np.searchsorted(items, i), np.searchsorted(users, u)] = r
    assert rows.shape == dense.shape
    batches = list(vector_dataset(table, "item", batch_size=3))
    ratings = np.concatenate([b["ratings"].numpy() for b in batches])
    mask = np.concatenate([b["mask"].numpy() for b in batches])
    np.testing.assert_array_equal(ratings, dense)
    np.testing.assert_array_equal(mask, dense > 0)
    by_user = np.concatenate([b["ratings"].numpy() for b in vector_dataset(table, "user", batch_size=2)])
    np.testing.assert_array_equal(by_user, dense.T)
    shuffled = np.concatenate([b["ratings"].numpy() for b in vector_dataset(table, "item", 3, shuffle=True)])
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, dense))
    # ragged=True: the same vectors by their observed entries (columns sorted), batch by batch.
    for batch, entries in zip(batches, vector_dataset(table, "item", batch_size=3, ragged=True)):
        rows = entries["columns"].value_rowids().numpy()
        columns, values = entries["columns"].flat_values.numpy(), entries["ratings"].flat_values.numpy()
        np.testing.assert_array_equal(np.stack([rows, columns], 1), np.argwhere(batch["mask"].numpy()))
        np.testing.assert_array_equal(values, batch["ratings"].numpy()[rows, columns])


def test_a_pair_rated_twice_cannot_become_a_vector():
    table = data.Ratings.from_arrays(["a", "b", "a"], ["x", "x", "x"], [1, 2, 3])
    with pytest.raises(DataError, match="user a rated movie x more than once"):
        rating_rows(table, "user")
    with pytest.raises(DataError, match="by must be 'item' or 'user'"):
        rating_rows(table, "movie")
