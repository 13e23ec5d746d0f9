"""The one data container of tfrec: a table of ratings with its id vocabularies.

Every source (MovieLens files, the recbole copy, TFDS, the synthetic generator, a user's file)
produces a :class:`Ratings` (shards too large for one are streamed: ``tfrec.data.stream``); splits
cut it into parts that share its vocabularies; pipelines turn a part into a ``tf.data.Dataset`` of
examples named as in TensorFlow Datasets' MovieLens (``user_id``, ``movie_id``, ``user_rating``,
``timestamp`` and side features).

Ids are held once, as sorted unique strings (``user_ids``, ``item_ids``), and each rating points at
them with an int32 position: a 20M-rating table then costs 8 bytes of ids per rating, not two strings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Mapping, NamedTuple

import numpy as np

from tfrec.errors import DataError

# TFDS MovieLens class labels, in TFDS order (tensorflow_datasets/structured/movielens.py).
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "Unknown", "War", "Western", "(no genres listed)",
)  # fmt: skip
OCCUPATIONS = (
    "academic/educator", "artist", "clerical/admin", "customer service",
    "doctor/health care", "entertainment", "executive/managerial", "farmer", "homemaker",
    "lawyer", "librarian", "other/not specified", "programmer", "retired",
    "sales/marketing", "scientist", "self-employed", "student", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip

RATING_FEATURES = ("user_id", "movie_id", "user_rating", "timestamp")
#: What a model trained on a table calls its items where it answers (SavedModel signatures, ``tfrec
#: predict``/``recommend``): MovieLens' ``movie_id``, or ``item_id`` for data whose items are not movies.
ITEM_KEYS = ("movie_id", "item_id")


def item_key_of(column: str) -> str:
    """The item key of data whose item column is ``column``: ``movie_id`` for a movie column
    (``movie_id``, ``movieId``, ``data/movie_id``), ``item_id`` for any other (``product``, ``sku``...)."""
    word = re.sub(r"[^0-9a-z]", "", str(column).rsplit("/", 1)[-1].lower())
    return "movie_id" if word in ("movie", "movieid") else "item_id"


class RaggedColumn(NamedTuple):
    """A per-id list feature (``movie_genres``): row ``i`` is ``values[row_splits[i]:row_splits[i+1]]``."""

    values: np.ndarray
    row_splits: np.ndarray

    @classmethod
    def from_lists(cls, lists) -> "RaggedColumn":
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        values = np.fromiter((v for x in lists for v in x), dtype=np.int64, count=int(splits[-1]))
        return cls(values, splits)

    def __len__(self) -> int:
        return len(self.row_splits) - 1

    def row(self, i: int) -> np.ndarray:
        return self.values[self.row_splits[i] : self.row_splits[i + 1]]


@dataclasses.dataclass(frozen=True, eq=False)
class Ratings:
    """Ratings with their user and item vocabularies and optional side features.

    Attributes:
      user_ids: Sorted unique user id strings, shape ``[num_users]``.
      item_ids: Sorted unique movie id strings, shape ``[num_items]``.
      user: int32 position in ``user_ids`` of each rating, shape ``[n]``.
      item: int32 position in ``item_ids`` of each rating, shape ``[n]``.
      rating: float32 ratings, shape ``[n]``; always finite.
      timestamp: int64 seconds since the epoch, shape ``[n]`` (0 where a source has none).
      user_features: Per-user side features aligned with ``user_ids`` (TFDS names).
      item_features: Per-item side features aligned with ``item_ids`` (TFDS names);
        ``movie_genres`` is a :class:`RaggedColumn` of indices into :data:`GENRES`.
      name: Short dataset name, e.g. ``"ml-100k"``.
      source: Where the data came from (a path, a package, a generator and its seed).
      feedback: ``explicit`` (ratings) or ``implicit`` (interactions without a rating: each
        ``rating`` is 1.0, and ``tfrec train`` trains the implicit-feedback models on it).
      item_key: What models trained on the table call items where they answer (:data:`ITEM_KEYS`):
        ``movie_id`` for MovieLens and planted data, ``item_id`` for a user's data whose item column is
        not a movie column (:func:`item_key_of`). Pipelines keep TFDS's ``movie_id`` either way.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    user_features: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    item_features: Mapping[str, object] = dataclasses.field(default_factory=dict)
    name: str = "ratings"
    source: str = ""
    feedback: str = "explicit"
    item_key: str = "movie_id"

    def rated_ids(self) -> tuple[int, int]:  # users and items with a rating (the vocabularies may hold more)
        return tuple(int(np.count_nonzero(np.bincount(rows))) for rows in (self.user, self.item))

    @classmethod
    def from_arrays(
        cls,
        user_id,
        movie_id,
        user_rating,
        timestamp=None,
        *,
        name: str = "ratings",
        source: str = "",
    ) -> "Ratings":
        """Builds a table from per-rating arrays of raw ids (strings or integers).

        Raises:
          DataError: on arrays of different lengths, an empty table, or a rating
            that is NaN or infinite (the message gives the row).
        """
        label = source or name
        user_id = np.asarray(user_id)
        movie_id = np.asarray(movie_id)
        rating = np.asarray(user_rating, dtype=np.float32)
        n = len(rating)
        ts = np.zeros(n, np.int64) if timestamp is None else np.asarray(timestamp, np.int64)
        lengths = {"user_id": len(user_id), "movie_id": len(movie_id), "timestamp": len(ts)}
        for key, length in lengths.items():
            if length != n:
                raise DataError(f"{label}: column {key!r} has {length} rows, user_rating has {n}")
        check_finite(rating, label)
        users, user = np.unique(user_id.astype(str), return_inverse=True)
        items, item = np.unique(movie_id.astype(str), return_inverse=True)
        return cls(
            users, items, user.astype(np.int32), item.astype(np.int32), rating, ts,
            name=name, source=source,
        )  # fmt: skip

    @classmethod
    def from_pandas(cls, df, user=None, item=None, rating=None, timestamp=None, *, name="dataframe") -> "Ratings":
        """A table from a DataFrame's columns; ids of any type (integers, strings, UUIDs) become strings.

        Without ``rating`` the rows are interactions: each is a rating of 1.0 and ``feedback`` is
        ``implicit``. Errors name the column and the row.
        """
        return _from_pandas(df, user, item, rating, timestamp, name=name)

    @classmethod
    def from_arrow(cls, table, user=None, item=None, rating=None, timestamp=None, *, name="table") -> "Ratings":
        """A table from a ``pyarrow.Table``'s columns (see :meth:`from_pandas`); ids dictionary-encoded in Arrow."""
        return _from_arrow(
            table, user, item, rating, timestamp, name=name, source=name, label=name, where=lambda row: f"row {row}"
        )

    def __post_init__(self):
        if self.feedback not in ("explicit", "implicit"):
            raise DataError(f"{self.source or self.name}: feedback must be explicit or implicit, got {self.feedback!r}")
        if self.item_key not in ITEM_KEYS:
            raise DataError(f"{self.source or self.name}: item_key must be movie_id or item_id, got {self.item_key!r}")
        if len(self.rating) == 0:
            raise DataError(f"{self.source or self.name}: no ratings")

    def __len__(self) -> int:
        return len(self.rating)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def user_id(self) -> np.ndarray:
        """The raw user id of each rating."""
        return self.user_ids[self.user]

    @property
    def movie_id(self) -> np.ndarray:
        """The raw movie id of each rating."""
        return self.item_ids[self.item]

    @property
    def features(self) -> tuple[str, ...]:
        """The example feature names this table can produce."""
        return RATING_FEATURES + tuple(self.user_features) + tuple(self.item_features)

    def take(self, rows: np.ndarray, name: str | None = None) -> "Ratings":
        """The ratings at ``rows``, in that order, sharing this table's vocabularies."""
        rows = np.asarray(rows)
        if len(rows) == 0:
            raise DataError(f"{name or self.name}: the selection is empty")
        return dataclasses.replace(
            self,
            user=self.user[rows],
            item=self.item[rows],
            rating=self.rating[rows],
            timestamp=self.timestamp[rows],
            name=name or self.name,
        )

    def digest(self) -> str:
        """A sha256 of the ratings' content (ids, ratings, timestamps, row order)."""
        h = hashlib.sha256()
        for ids in (self.user_ids, self.item_ids):
            h.update("\x1f".join(ids.tolist()).encode())
            h.update(b"\x1e")
        for array in (self.user, self.item, self.rating, self.timestamp):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def summary(self) -> dict:
        """Counts for ``tfrec data info``: users, items, ratings, density, rating histogram."""
        used_users = len(np.unique(self.user))
        used_items = len(np.unique(self.item))
        values, counts = np.unique(self.rating, return_counts=True)
        return {
            "name": self.name,
            "source": self.source,
            "users": used_users,
            "items": used_items,
            "ratings": len(self),
            "density": len(self) / (used_users * used_items),
            "rating_mean": float(self.rating.astype(np.float64).mean()),
            "rating_histogram": {_fmt(v): int(c) for v, c in zip(values, counts)},
            "features": [self.item_key if f == "movie_id" else f for f in self.features],
        }


def _fmt(value: float) -> str:
    return f"{value:g}"


def check_finite(rating: np.ndarray, label: str) -> None:
    """Raises DataError naming the first NaN or infinite rating by its row."""
    bad = np.flatnonzero(~np.isfinite(rating))
    if len(bad):
        raise DataError(f"{label}: row {bad[0]}: rating is {rating[bad[0]]}, not a finite number")


def id_strings(values, role: str, label: str, column: str, where):
    """Ids as Arrow strings as written (integers: their digits; no spaces around); one DataError otherwise."""
    import pyarrow as pa
    import pyarrow.compute as pc

    _no_nulls(values, label, column, where)
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        if pa.types.is_floating(values.type):
            raise DataError(f"{label}: column {column!r} ({role} ids) holds floating-point numbers, not ids")
        values = pc.cast(values, pa.string())
    values = pc.utf8_trim_whitespace(values)  # " 7" after a ", " delimiter is the id "7"
    empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
    if empty.any():
        raise DataError(f"{label}: {where(int(np.flatnonzero(empty)[0]))}: column {column!r} is empty")
    return values


def rating_values(column, label: str, rating: str, where) -> np.ndarray:
    """Ratings as float32; one DataError naming ``where(row)`` for a missing or non-finite one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    _no_nulls(column, label, rating, where)
    try:
        values = pc.cast(column, pa.float64()).to_numpy().astype(np.float32)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(f"{label}: {_not_a_number(column, rating, where)}") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(f"{label}: {where(bad[0])}: column {rating!r} is {values[bad[0]]}, not a finite number")
    return values


def _from_arrow(table, user, item, rating, timestamp, *, name, source, label, where) -> "Ratings":
    """A table from a ``pyarrow.Table``'s columns (see :meth:`Ratings.from_arrow`).

    ``label`` starts every error message (a path, a dataset name); ``where(row)`` says where a
    0-based row is in the source ("line 5", "row 4 (row group 2)").
    """

    for role, column in (("user", user), ("item", item)):
        if column is None:
            raise DataError(f"{label}: no {role} column given")
    for role, column in (("user", user), ("item", item), ("rating", rating), ("timestamp", timestamp)):
        if column is not None and column not in table.column_names:
            raise DataError(f"{label}: no column {column!r} for {role}; columns: {', '.join(table.column_names)}")
    n = table.num_rows
    if n == 0:
        raise DataError(f"{label}: no rows")
    ids = {}
    for role, column in (("user", user), ("item", item)):
        ids[role] = _encode(id_strings(table.column(column), role, label, column, where), label, column)
    values = np.ones(n, np.float32) if rating is None else rating_values(table.column(rating), label, rating, where)
    if timestamp is None:
        ts = np.zeros(n, np.int64)
    else:
        column = table.column(timestamp)
        _no_nulls(column, label, timestamp, where)
        ts = _seconds(column, label, timestamp)
    item_key = item_key_of(item)
    (user_ids, user), (item_ids, item) = ids["user"], ids["item"]
    return Ratings(
        user_ids, item_ids, user, item, values, ts, name=name, source=source,
        feedback="explicit" if rating is not None else "implicit", item_key=item_key,
    )  # fmt: skip


def _from_pandas(df, user, item, rating, timestamp, *, name) -> "Ratings":
    """A table from a DataFrame's columns (see :meth:`Ratings.from_pandas`); object columns (UUIDs...) by ``str``."""
    import pyarrow as pa

    picked = [c for c in (user, item, rating, timestamp) if c is not None]
    missing = [c for c in picked if c not in df.columns]
    if missing:
        raise DataError(f"{name}: no column {missing[0]!r}; columns: {', '.join(map(str, df.columns))}")
    frame = df[picked].copy()
    for column in (user, item):
        if column is not None and frame[column].dtype == object:
            nulls = frame[column].isna().to_numpy()
            if nulls.any():
                raise DataError(f"{name}: row {int(np.flatnonzero(nulls)[0])}: column {column!r} is empty")
            frame[column] = frame[column].map(str)
    return _from_arrow(
        pa.Table.from_pandas(frame, preserve_index=False), user, item, rating, timestamp, name=name, source=name,
        label=name, where=lambda row: f"row {row}",
    )  # fmt: skip


def _encode(values, label: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ids (numpy strings) and each row's position among them (int32), via Arrow's dictionary.

    The vocabulary becomes a fixed-width numpy string array (4 bytes a character, every id as long as
    the longest): one that would not fit in the memory this machine has free is refused first.
    """
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values).combine_chunks()
    longest = pc.max(pc.utf8_length(encoded.dictionary)).as_py() or 0
    need = len(encoded.dictionary) * longest * 4
    free = free_memory()
    if free is not None and need > free:
        raise DataError(
            f"{label}: column {name!r}: {len(encoded.dictionary):,} distinct ids of up to {longest} characters need "
            f"{need / 2**30:.1f} GB as strings, more than the {free / 2**30:.1f} GB free here"
        )
    dictionary = np.asarray(encoded.dictionary.to_pylist(), dtype=str)
    order = np.argsort(dictionary, kind="stable")
    rank = np.empty(len(order), np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return dictionary[order], rank[encoded.indices.to_numpy(zero_copy_only=False)]


def free_memory() -> int | None:
    """Bytes of memory available to this process now (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _not_a_number(column, name: str, where) -> str:
    """Where the first value that is not a number is (a slow pass, made only to word the error)."""
    for row, value in enumerate(column.to_pylist()):
        try:
            float(value)
        except (TypeError, ValueError):
            shown = "empty" if str(value).strip() == "" else f"{value!r}, not a number"
            return f"{where(row)}: column {name!r} is {shown}"
    return f"column {name!r} is {column.type}, not numbers"


def _no_nulls(column, label: str, name: str, where) -> None:
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{label}: {where(row)}: column {name!r} is empty")


def _seconds(column, label: str, name: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_date(column.type):  # a "date" column of 2020-01-31: midnight UTC
        column = pc.cast(column, pa.timestamp("s"))
    if pa.types.is_timestamp(column.type):
        return pc.cast(pc.cast(column, pa.timestamp("s")), pa.int64()).to_numpy(zero_copy_only=False)
    try:
        return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(f"{label}: column {name!r} (timestamps) is {column.type}, not whole seconds") from None
