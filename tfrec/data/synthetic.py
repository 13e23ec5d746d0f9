"""Synthetic ratings with planted structure: a test oracle for rating models.

``rating = mu + b_u + b_i + p_u . q_i + eps``, ``eps ~ N(0, sigma^2)``. With
``round=False`` the noise sigma is the RMSE of the true model, the floor no
model can beat on held-out ratings, so "test RMSE within 0.05 of sigma" proves
a model learned the planted factors and biases, not just that fit ran.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfrec.data.table import Ratings
from tfrec.errors import DataError

ML20M_SHAPE = (138_493, 26_744, 20_000_263)


@dataclasses.dataclass(frozen=True, eq=False)
class Synthetic:
    """A generated table with the truth it was drawn from.

    Attributes:
      ratings: The table (ids ``"1"``..``"N"``, timestamps = row order).
      expected: The noise-free rating of each row (before rounding and clipping).
      sigma: Standard deviation of the added noise.
      user_factors, item_factors: The planted ``[n, rank]`` factors.
      user_bias, item_bias: The planted biases.
      global_mean: ``mu``.
    """

    ratings: Ratings
    expected: np.ndarray
    sigma: float
    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    global_mean: float


def _sorted_ids(n: int):
    """String ids "1".."n" sorted as strings, and each integer's position among them."""
    ids = np.arange(1, n + 1).astype(str)
    order = np.argsort(ids)
    position = np.empty(n, np.int32)
    position[order] = np.arange(n, dtype=np.int32)
    return ids[order], position


def _pairs(rng, users: int, items: int, n: int) -> np.ndarray:
    """``n`` distinct (user, item) cells as linear indices, in random order."""
    cells = users * items
    if n > cells:
        raise DataError(f"synthetic: ratings={n} exceeds users x items = {cells}")
    if n > cells // 2:
        return rng.permutation(cells)[:n]
    chosen = np.unique(rng.integers(0, cells, size=int(n * 1.05) + 16, dtype=np.int64))
    while len(chosen) < n:
        extra = rng.integers(0, cells, size=n - len(chosen) + 16, dtype=np.int64)
        chosen = np.unique(np.concatenate([chosen, extra]))
    return rng.permutation(chosen)[:n]


def generate(
    users: int = 1000,
    items: int = 500,
    ratings: int = 100_000,
    rank: int = 8,
    sigma: float = 0.5,
    factor_std: float = 0.5,
    bias_std: float = 0.5,
    global_mean: float = 3.5,
    round: bool = False,
    seed: int = 0,
) -> Synthetic:
    """Draws a synthetic ratings table, deterministic by ``seed``.

    Any shape up to ML-20M's (:data:`ML20M_SHAPE`) fits in memory: the work is
    chunked so the peak is a few arrays of ``ratings`` float32 values.

    Args:
      users, items, ratings: Table shape; the (user, item) cells are distinct.
      rank: Rank of the planted factors.
      sigma: Noise standard deviation (the RMSE floor when ``round`` is False).
      factor_std: Std of each factor entry (the interaction's std is
        ``factor_std**2 * sqrt(rank)``).
      bias_std: Std of user and item biases.
      global_mean: ``mu``.
      round: Round to whole stars and clip to 1..5, like MovieLens.
      seed: Seed of ``numpy.random.default_rng``.

    Raises:
      DataError: a non-positive size or more ratings than cells.
    """
    _check_sizes("synthetic", users=users, items=items, ratings=ratings, rank=rank)
    if sigma < 0:
        raise DataError(f"synthetic: sigma must be >= 0, got {sigma}")
    rng = np.random.default_rng(seed)
    p = rng.normal(0, factor_std, (users, rank)).astype(np.float32)
    q = rng.normal(0, factor_std, (items, rank)).astype(np.float32)
    bu = rng.normal(0, bias_std, users).astype(np.float32)
    bi = rng.normal(0, bias_std, items).astype(np.float32)
    cells = _pairs(rng, users, items, ratings)
    u = (cells // items).astype(np.int32)
    i = (cells % items).astype(np.int32)
    del cells
    expected = _planted_mf(global_mean, bu, bi, p, q, u, i)
    rating = expected + rng.normal(0, sigma, ratings).astype(np.float32)
    if round:
        rating = np.clip(np.rint(rating), 1, 5).astype(np.float32)
    user_ids, user_pos = _sorted_ids(users)
    item_ids, item_pos = _sorted_ids(items)
    source = f"synthetic(users={users}, items={items}, ratings={ratings}, rank={rank}, sigma={sigma}, " \
             f"round={round}, seed={seed})"  # fmt: skip
    table = Ratings(user_ids=user_ids, item_ids=item_ids, user=user_pos[u], item=item_pos[i], rating=rating,
                    timestamp=np.arange(ratings, dtype=np.int64), name="synthetic", source=source)  # fmt: skip
    return Synthetic(table, expected, sigma, p, q, bu, bi, global_mean)


def _check_sizes(source: str, **sizes) -> None:
    for key, value in sizes.items():
        if value < 1:
            raise DataError(f"{source}: {key} must be at least 1, got {value}")


def _planted_mf(global_mean, bu, bi, p, q, u, i) -> np.ndarray:
    """``mu + b_u + b_i + p_u . q_i`` for every pair, in chunks (a few arrays of float32 at the peak)."""
    expected = np.empty(len(u), np.float32)
    for start in range(0, len(u), 1 << 21):
        s = slice(start, start + (1 << 21))
        expected[s] = global_mean + bu[u[s]] + bi[i[s]] + np.einsum("nk,nk->n", p[u[s]], q[i[s]])
    return expected


def _fm_features(u, i, genre_offset, users, items, occupation, movie_genres, n_features) -> np.ndarray:
    """The FM's ``x`` of every pair: the user, the movie and the user's occupation (``x = 1``), and
    each of the movie's genres (``x = 1 / genres``)."""
    x = np.zeros((len(u), n_features))
    rows = np.arange(len(u))
    x[rows, u] = 1.0
    x[rows, users + i] = 1.0
    x[rows, users + items + occupation[u]] = 1.0
    for item, g in enumerate(movie_genres):
        x[np.ix_(i == item, genre_offset + g)] = 1.0 / len(g)
    return x


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticFM:
    """A table drawn from a planted factorization machine, with its noise-free ratings.

    Attributes:
      ratings: Every (user, item) pair once, in random order, with side features
        ``user_occupation_label`` (one of ``occupations``) and ``movie_genres``
        (1 to 3 of ``genres``).
      expected: The planted FM's rating of each row, before noise.
      sigma: Noise standard deviation.
    """

    ratings: Ratings
    expected: np.ndarray
    sigma: float


def generate_fm(
    users: int = 100,
    items: int = 50,
    rank: int = 4,
    sigma: float = 0.1,
    occupations: int = 8,
    genres: int = 6,
    factor_std: float = 0.5,
    weight_std: float = 0.5,
    global_bias: float = 3.5,
    seed: int = 0,
) -> SyntheticFM:
    """Ratings from a planted FM over user id, movie id, occupation and genres (all pairs rated).

    ``rating = w0 + sum_j w_j x_j + sum_{j<l} <v_j, v_l> x_j x_l + eps``: one active
    feature per id and occupation (``x = 1``) and one per genre of the movie
    (``x = 1 / genres``, the encoding ``tfrec.data.fields`` uses), weights
    ``N(0, weight_std^2)``, rank-``rank`` factors ``N(0, factor_std^2)``,
    ``eps ~ N(0, sigma^2)``. A factorization machine with these fields can
    recover it up to the noise.
    """
    from tfrec.data.table import RaggedColumn

    _check_sizes("synthetic-fm", users=users, items=items, rank=rank, occupations=occupations, genres=genres)
    rng = np.random.default_rng(seed)
    n_features = users + items + occupations + genres
    w = rng.normal(0, weight_std, n_features)
    v = rng.normal(0, factor_std, (n_features, rank))
    occupation = rng.integers(0, occupations, users)
    movie_genres = [np.sort(rng.choice(genres, rng.integers(1, 4), replace=False)) for _ in range(items)]
    cells = rng.permutation(users * items)
    u, i = cells // items, cells % items
    x = _fm_features(u, i, users + items + occupations, users, items, occupation, movie_genres, n_features)
    xv = x @ v
    expected = global_bias + x @ w + 0.5 * np.sum(xv**2 - (x**2) @ (v**2), axis=1)
    rating = (expected + rng.normal(0, sigma, len(cells))).astype(np.float32)
    user_ids, user_pos = _sorted_ids(users)
    item_ids, item_pos = _sorted_ids(items)
    order_u, order_i = np.argsort(user_pos), np.argsort(item_pos)  # table position -> generator index
    table = Ratings(
        user_ids=user_ids,
        item_ids=item_ids,
        user=user_pos[u],
        item=item_pos[i],
        rating=rating,
        timestamp=np.arange(len(cells), dtype=np.int64),
        user_features={"user_occupation_label": occupation[order_u].astype(np.int64)},
        item_features={"movie_genres": RaggedColumn.from_lists([movie_genres[k] for k in order_i])},
        name="synthetic-fm",
        source=f"synthetic-fm(users={users}, items={items}, rank={rank}, sigma={sigma}, seed={seed})",
    )
    return SyntheticFM(table, expected.astype(np.float32), sigma)
