"""Every source: MovieLens layouts written by the test, the recbole copy, TFDS, synthetic."""

import numpy as np
import pytest
from conftest import RATINGS, ml1m_dir, ml20m_dir, ml100k_dir, recbole_dir

from tfrec import data
from tfrec.data.table import GENRES, OCCUPATIONS
from tfrec.errors import DataNotFoundError

EXPECTED_USERS = ["1", "2", "3"]
EXPECTED_ITEMS = ["10", "20", "30", "40"]


def _genres(table, movie):
    return sorted(GENRES[g] for g in table.item_features["movie_genres"].row(list(table.item_ids).index(movie)))


def _as_rows(table) -> list[tuple]:
    """The table's ratings as (user, item, rating, timestamp) tuples of raw values."""
    return list(zip(table.user_id.tolist(), table.movie_id.tolist(), table.rating.tolist(), table.timestamp.tolist()))


@pytest.mark.parametrize(
    "make, offset",
    [(ml100k_dir, 0.0), (ml1m_dir, 0.0), (ml20m_dir, 0.5), (recbole_dir, 0.0)],
    ids=["ml-100k", "ml-1m", "ml-20m", "recbole"],
)
def test_each_layout_loads_ratings(tmp_path, make, offset):
    table = data.load_directory(make(tmp_path / "d"))
    assert _as_rows(table) == [(str(u), str(i), r + offset, t) for u, i, r, t in RATINGS]
    assert list(table.user_ids) == EXPECTED_USERS and list(table.item_ids) == EXPECTED_ITEMS
    assert table.rating.dtype == np.float32 and table.timestamp.dtype == np.int64


def test_ml100k_side_features_follow_tfds(ml100k):
    table = data.load_directory(ml100k)
    assert _genres(table, "10") == ["Animation", "Children", "Comedy"]
    assert _genres(table, "40") == ["Unknown"]
    assert table.item_features["movie_title"][2] == "Cafe Olé (1996)"  # Latin-1 decoded
    users = table.user_features
    assert users["bucketized_user_age"].tolist() == [18.0, 50.0, 1.0]  # 24, 53, 17 in ML-1M buckets
    assert users["raw_user_age"].tolist() == [24.0, 53.0, 17.0]
    assert users["user_gender"].tolist() == [True, False, True]
    assert [OCCUPATIONS[i] for i in users["user_occupation_label"]] == [
        "technician/engineer", "other/not specified", "other/not specified",
    ]  # fmt: skip
    assert users["user_occupation_text"].tolist() == ["technician", "other", "none"]


def test_ml1m_side_features_follow_tfds(tmp_path):
    table = data.load_directory(ml1m_dir(tmp_path / "ml-1m"))
    assert _genres(table, "10") == ["Animation", "Children", "Comedy"]  # Children's -> Children
    users = table.user_features
    assert users["bucketized_user_age"].tolist() == [1.0, 56.0, 25.0]
    assert [OCCUPATIONS[i] for i in users["user_occupation_label"]] == [
        "student", "self-employed", "student",
    ]  # fmt: skip
    assert users["user_occupation_text"].tolist() == ["K-12 student", "self-employed", "college/grad student"]


def test_ml10m_layout_has_movies_but_no_users(tmp_path):
    root = ml1m_dir(tmp_path / "ml-10M100K")
    (root / "users.dat").unlink()
    table = data.load_directory(root)
    assert "movie_genres" in table.features and "user_gender" not in table.features
    assert table.name == "ml-10M100K"


def test_ml20m_csv_quoted_titles_and_no_genres(tmp_path):
    table = data.load_directory(ml20m_dir(tmp_path / "ml-20m"))
    assert table.item_features["movie_title"][0] == "American President, The (1995)"
    assert _genres(table, "40") == ["(no genres listed)"]
    assert _genres(table, "30") == ["IMAX"]


def test_recbole_files_restore_year_in_title(tmp_path):
    table = data.load_directory(recbole_dir(tmp_path / "rb"))
    assert table.item_features["movie_title"].tolist()[:2] == ["Toy Story (1995)", "GoldenEye (1995)"]
    assert table.item_features["movie_title"][3] == "Sabrina"  # no year given
    assert _genres(table, "40") == ["Unknown"]


@pytest.mark.skipif(
    data.recbole_directory() is None, reason="recbole not installed (pip install --no-deps recbole==1.2.1)"
)
def test_installed_recbole_copy_is_ml100k():
    table = data.load_recbole()
    summary = table.summary()
    assert (summary["users"], summary["items"], summary["ratings"]) == (943, 1682, 100_000)
    assert summary["rating_histogram"] == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}
    # u.data's first line is "196 242 3 881250949": the copy keeps the GroupLens row order.
    assert (table.user_id[0], table.movie_id[0], table.rating[0], table.timestamp[0]) == ("196", "242", 3.0, 881250949)
    assert set(table.features) >= {"movie_title", "movie_genres", "bucketized_user_age", "user_occupation_label"}


@pytest.mark.skipif(data.recbole_directory() is None, reason="recbole not installed")
def test_ml100k_name_resolves_to_recbole_when_cache_is_empty(cache):
    table = data.load("ml-100k")
    assert len(table) == 100_000 and "recbole" in table.source


def test_ml100k_name_prefers_the_cache(cache):
    ml100k_dir(cache / "ml-100k")
    table = data.load("ml-100k")
    assert len(table) == len(RATINGS) and str(cache) in table.source


def test_missing_dataset_lists_every_way_to_get_it(cache):
    with pytest.raises(DataNotFoundError) as e:
        data.load("ml-1m")
    message = str(e.value)
    assert "ml-1m" in message and str(cache / "ml-1m") in message
    assert "tfrec data download ml-1m" in message and "--data /path/to/dir" in message
    assert "TFREC_OFFLINE" in message


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown dataset 'ml-7m'.*ml-100k"):
        data.load("ml-7m")


def test_synthetic_spec_and_determinism():
    a = data.load("synthetic:users=50,items=40,ratings=600,seed=3")
    b = data.generate(users=50, items=40, ratings=600, seed=3).ratings
    assert a.digest() == b.digest()
    assert data.generate(users=50, items=40, ratings=600, seed=4).ratings.digest() != a.digest()
    cells = set(zip(a.user.tolist(), a.item.tolist()))
    assert len(cells) == 600  # distinct (user, item) pairs
    with pytest.raises(ValueError, match="unknown parameter 'colour'"):
        data.load("synthetic:colour=1")


def test_synthetic_noise_is_the_oracle_floor():
    g = data.generate(users=300, items=200, ratings=20_000, sigma=0.5, seed=1)
    residual = g.ratings.rating - g.expected
    assert abs(residual.std() - 0.5) < 0.01
    rounded = data.generate(users=300, items=200, ratings=20_000, round=True, seed=1).ratings.rating
    assert set(np.unique(rounded)) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_synthetic_reaches_ml20m_shape_parameters():
    # The full 20M shape takes ~30 s and ~3 GB; the benchmark exercises it. Here: the id scheme.
    users, items, _ = data.synthetic.ML20M_SHAPE
    g = data.generate(users=users, items=items, ratings=50_000, seed=0)
    assert g.ratings.num_users == users and g.ratings.num_items == items
    assert set(g.ratings.user_id.astype(int).tolist()) <= set(range(1, users + 1))


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=64):
        table = data.load_tfds("movielens/100k-ratings")
        reference = tfds.load("movielens/100k-ratings", split="train")
        ref = next(iter(reference.ragged_batch(64)))
    assert len(table) == 64
    assert table.user_id.tolist() == [x.decode() for x in ref["user_id"].numpy()]
    np.testing.assert_allclose(table.rating, ref["user_rating"].numpy())
    assert table.timestamp.tolist() == ref["timestamp"].numpy().tolist()
    assert {"movie_title", "movie_genres", "user_gender", "bucketized_user_age"} <= set(table.features)


def test_tfds_and_tfrec_pipelines_are_interchangeable(ml100k):
    """tfrec's examples carry TFDS's names and dtypes, so either feeds the same model."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=8):
        spec = tfds.load("movielens/100k-ratings", split="train").element_spec
    ours = data.dataset(data.load_directory(ml100k), 4, features="all").element_spec
    for name, their in spec.items():
        if name in ours:
            assert ours[name].dtype == their.dtype, name
    assert set(data.table.RATING_FEATURES) <= set(ours)
    assert set(ours) <= set(spec)
