"""MovieLens loaders: GroupLens directories and the ML-100K copy shipped in recbole.

Every loader returns a :class:`~tfrec.data.table.Ratings` whose side features
follow TensorFlow Datasets' MovieLens parsing (tensorflow_datasets/structured/
movielens_parsing.py): ``bucketized_user_age`` uses the ML-1M buckets,
occupations map to TFDS's ``user_occupation_label`` classes, ``movie_genres``
are indices into :data:`~tfrec.data.table.GENRES`.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import io
import os
from pathlib import Path

import numpy as np

from tfrec.data import _parse, files
from tfrec.data.table import GENRES, OCCUPATIONS, RaggedColumn, Ratings
from tfrec.errors import DataError, DataNotFoundError

_GENRE_INDEX = {g.lower(): i for i, g in enumerate(GENRES)} | {"children's": GENRES.index("Children")}
_GENRES_100K = (
    "Unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_OCCUPATION_100K = {
    "administrator": "clerical/admin", "artist": "artist", "doctor": "doctor/health care",
    "educator": "academic/educator", "engineer": "technician/engineer",
    "entertainment": "entertainment", "executive": "executive/managerial",
    "healthcare": "doctor/health care", "homemaker": "homemaker", "lawyer": "lawyer",
    "librarian": "librarian", "marketing": "sales/marketing", "none": "other/not specified",
    "other": "other/not specified", "programmer": "programmer", "retired": "retired",
    "salesman": "sales/marketing", "scientist": "scientist", "student": "student",
    "technician": "technician/engineer", "writer": "writer",
}  # fmt: skip
_OCCUPATION_1M = (
    "other/not specified", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care",
    "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
_AGE_BUCKETS = np.array([1, 18, 25, 35, 45, 50, 56], np.float32)
RECBOLE_DIR = "recbole/dataset_example/ml-100k"


def load_directory(path: str | os.PathLike, name: str | None = None) -> Ratings:
    """Loads a MovieLens directory in any GroupLens layout, found by its files.

    ML-100K (``u.data`` + ``u.item``, ``u.user``), ML-1M / ML-10M (``ratings.dat``
    + ``movies.dat``, ``users.dat`` when present), ML-20M / 25M / latest
    (``ratings.csv`` + ``movies.csv``), or recbole atomic files (``*.inter``).

    Raises:
      DataNotFoundError: the directory does not exist.
      DataError: no known layout, or a malformed file (named with its line).
    """
    root = Path(path)
    if not root.is_dir():
        raise DataNotFoundError(f"{root}: no such directory")
    name = name or root.name
    if (root / "u.data").is_file():
        return _load_100k(root, name)
    if (root / "ratings.dat").is_file():
        return _load_dat(root, name)
    if (root / "ratings.csv").is_file():
        return _load_csv(root, name)
    inter = sorted(root.glob("*.inter"))
    if inter:
        return _load_recbole(inter[0], name)
    raise DataError(
        f"{root}: unknown MovieLens layout: expected u.data (ML-100K), ratings.dat "
        "(ML-1M/10M), ratings.csv (ML-20M/25M/latest) or a recbole *.inter file"
    )


def recbole_directory() -> Path | None:
    """Where the installed ``recbole`` distribution keeps its ML-100K files, or None.

    Found through package metadata, without importing recbole (which imports torch).
    """
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError:
        return None
    directory = Path(dist.locate_file(RECBOLE_DIR))
    return directory if (directory / "ml-100k.inter").is_file() else None


def load_recbole() -> Ratings:
    """Loads the ML-100K copy inside the installed ``recbole==1.2.1`` package.

    Raises:
      DataNotFoundError: recbole is not installed (``pip install --no-deps recbole==1.2.1``).
    """
    directory = recbole_directory()
    if directory is None:
        raise DataNotFoundError("recbole is not installed: pip install --no-deps recbole==1.2.1")
    return _load_recbole(directory / "ml-100k.inter", "ml-100k")


def _table(ratings_file: Path, raw, name: str) -> Ratings:
    user, item, rating, ts = raw
    return latest_per_pair(Ratings.from_arrays(user, item, rating, ts, name=name, source=str(ratings_file)))


def latest_per_pair(table: Ratings) -> Ratings:
    """The duplicate policy: one rating per (user, movie), the latest (largest timestamp; on a tie,
    the later line); the others are dropped, keeping file order. MovieLens files hold no duplicates.
    """
    key = table.user.astype(np.int64) * table.num_items + table.item
    ordered = np.sort(key)  # one sort (0.4 s at 20M) shows there is nothing to drop, as in MovieLens files
    if not (ordered[1:] == ordered[:-1]).any():
        return table
    order = np.lexsort((np.arange(len(key)), table.timestamp, key))
    ordered = key[order]
    last = np.append(ordered[1:] != ordered[:-1], True)
    if last.all():
        return table
    return table.take(np.sort(order[last]))


def _attach(table: Ratings, users: dict | None, items: dict | None, ratings_file) -> Ratings:
    """Aligns per-id side records with the table's vocabularies."""
    return dataclasses.replace(
        table,
        user_features=_align(table.user_ids, table.user, users, ratings_file, "user", "users"),
        item_features=_align(table.item_ids, table.item, items, ratings_file, "movie", "movies"),
    )


def _align(vocab, positions, records, ratings_file, what, file_kind) -> dict:
    if not records:
        return {}
    missing = [i for i, key in enumerate(vocab.tolist()) if key not in records]
    if missing:
        row = int(np.flatnonzero(positions == missing[0])[0])
        raise DataError(
            f"{ratings_file}: rating {row + 1} names {what} {str(vocab[missing[0]])!r}, "
            f"which the {file_kind} file does not list"
        )
    rows = [records[key] for key in vocab.tolist()]
    out = {}
    for feature in rows[0]:
        column = [r[feature] for r in rows]
        out[feature] = RaggedColumn.from_lists(column) if feature == "movie_genres" else np.asarray(column)
    return out


def _genre_ids(path, number, names) -> list[int]:
    out = []
    for genre in names:
        index = _GENRE_INDEX.get(genre.strip().lower())
        if index is None:
            raise DataError(f"{path}: line {number}: unknown genre {genre!r}")
        out.append(index)
    return out


def _bucket(age: float) -> np.float32:
    return _AGE_BUCKETS[np.searchsorted(_AGE_BUCKETS, age, side="right") - 1]


def _user(path, number, age_text, gender, occupation_text, label, zip_code, raw_age=True) -> dict:
    age = _parse._number(path, number, 1, "age", age_text.strip(), int)
    record = {
        "user_gender": gender.strip().upper() == "M",
        "bucketized_user_age": _bucket(age) if raw_age else np.float32(age),
        "user_occupation_label": OCCUPATIONS.index(label),
        "user_occupation_text": occupation_text,
        "user_zip_code": zip_code.strip(),
    }
    if raw_age:
        record["raw_user_age"] = np.float32(age)
    return record


def _occupation_100k(path, number, text) -> str:
    label = _OCCUPATION_100K.get(text.strip())
    if label is None:
        raise DataError(f"{path}: line {number}: unknown occupation {text!r}")
    return label


def _records(root: Path, filename: str, delimiter: str, at_least: int, make) -> dict | None:
    """``{id: make(path, line_number, fields)}`` for a side file, or None if it is absent."""
    path = root / filename
    if not path.is_file():
        return None
    records = {}
    for number, line in _parse.lines(path, _parse.read_text(path)):
        fields = _parse.split_fields(path, number, line, delimiter, at_least)
        records[fields[0].strip()] = make(path, number, fields)
    return records


def _item_100k(path, number, fields) -> dict:
    flags = fields[5 : 5 + len(_GENRES_100K)]
    names = [g for g, flag in zip(_GENRES_100K, flags) if flag.strip() == "1"]
    return {"movie_title": fields[1], "movie_genres": _genre_ids(path, number, names)}


def _user_100k(path, number, fields) -> dict:
    _, age, gender, occupation, zip_code = fields[:5]
    return _user(path, number, age, gender, occupation, _occupation_100k(path, number, occupation), zip_code)


def _item_dat(path, number, fields) -> dict:
    genres = fields[-1].split("|") if fields[-1].strip() else []
    return {"movie_title": "::".join(fields[1:-1]), "movie_genres": _genre_ids(path, number, genres)}


def _user_dat(path, number, fields) -> dict:
    _, gender, age, occupation, zip_code = fields[:5]
    index = _parse._number(path, number, 3, "occupation", occupation.strip(), int)
    if not 0 <= index < len(_OCCUPATION_1M):
        raise DataError(f"{path}: line {number}: occupation {index} is not in 0..20")
    text = _OCCUPATION_1M[index]
    label = "student" if text in ("K-12 student", "college/grad student") else text
    return _user(path, number, age, gender, text, label, zip_code, raw_age=False)


def _load_100k(root: Path, name: str) -> Ratings:
    ratings_file = root / "u.data"
    table = _table(ratings_file, _parse.read_ratings(ratings_file, "\t"), name)
    items = _records(root, "u.item", "|", 5 + len(_GENRES_100K), _item_100k)
    users = _records(root, "u.user", "|", 5, _user_100k)
    return _attach(table, users, items, ratings_file)


def _load_dat(root: Path, name: str) -> Ratings:
    """ML-1M (with users.dat) and ML-10M (without): ``::``-separated, Latin-1."""
    ratings_file = root / "ratings.dat"
    table = _table(ratings_file, _parse.read_ratings(ratings_file, "::"), name)
    items = _records(root, "movies.dat", "::", 3, _item_dat)
    users = _records(root, "users.dat", "::", 5, _user_dat)
    return _attach(table, users, items, ratings_file)


def _header(path: Path, text: str, delimiter: str, wanted: tuple[str, ...]) -> tuple[list[int], int]:
    """Positions of ``wanted`` in the first line (recbole's ``name:type`` reads as ``name``), and its width."""
    header = [h.split(":")[0] for h in text.split("\n", 1)[0].strip().split(delimiter)]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"{path}: line 1: header lacks column(s) {', '.join(missing)}; found {header}")
    return [header.index(c) for c in wanted], len(header)


def _load_csv(root: Path, name: str) -> Ratings:
    ratings_file = root / "ratings.csv"
    wanted = ("userId", "movieId", "rating", "timestamp")
    _header(ratings_file, files._sample(ratings_file), ",", wanted)
    # pyarrow's CSV reader (tfrec.data.files), as for a user's own file: ten times the line-by-line parser.
    read = files.load_file(ratings_file, dict(zip(("user", "item", "rating", "timestamp"), wanted)), delimiter=",")
    table = latest_per_pair(dataclasses.replace(read, name=name, source=str(ratings_file)))
    items = None
    if (root / "movies.csv").is_file():
        path = root / "movies.csv"
        reader = csv.reader(io.StringIO(_parse.read_text(path)))
        items = {}
        for number, fields in enumerate(reader, start=1):
            if number == 1 or not fields:
                continue
            if len(fields) != 3:
                raise DataError(f"{path}: line {number}: expected 3 fields (movieId,title,genres), found {len(fields)}")
            genres = [] if fields[2] == "(no genres listed)" else fields[2].split("|")
            items[fields[0].strip()] = {
                "movie_title": fields[1],
                "movie_genres": _genre_ids(path, number, genres or ["(no genres listed)"]),
            }
    return _attach(table, None, items, ratings_file)


def _load_recbole(inter: Path, name: str) -> Ratings:
    """recbole atomic files: tab-separated with a typed header (``user_id:token``...)."""
    text = _parse.read_text(inter)
    columns, width = _header(inter, text, "\t", ("user_id", "item_id", "rating", "timestamp"))
    raw = _parse.read_ratings(inter, "\t", columns, header_lines=1, num_fields=width)
    table = _table(inter, raw, name)
    return _attach(table, _recbole_users(inter.with_suffix(".user")), _recbole_items(inter.with_suffix(".item")), inter)


def _recbole_rows(path: Path, wanted: tuple[str, ...]) -> list | None:
    """``[(line number, [wanted fields])]`` of a recbole side file, or None if it is absent."""
    if not path.is_file():
        return None
    text = _parse.read_text(path)
    positions, width = _header(path, text, "\t", wanted)
    rows = []
    for number, line in _parse.lines(path, text, skip=1):
        fields = _parse.split_fields(path, number, line, "\t", width)
        rows.append((number, [fields[p] for p in positions]))
    return rows


def _recbole_items(path: Path) -> dict | None:
    rows = _recbole_rows(path, ("item_id", "movie_title", "release_year", "class"))
    if rows is None:
        return None
    items = {}
    for number, (iid, title, year, classes) in rows:
        # recbole strips the year from ML-100K titles; put it back as u.item writes it.
        full = f"{title} ({year.strip()})" if year.strip() else title
        items[iid.strip()] = {"movie_title": full, "movie_genres": _genre_ids(path, number, classes.split())}
    return items


def _recbole_users(path: Path) -> dict | None:
    rows = _recbole_rows(path, ("user_id", "age", "gender", "occupation", "zip_code"))
    if rows is None:
        return None
    users = {}
    for number, (uid, age, gender, occupation, zip_code) in rows:
        label = _occupation_100k(path, number, occupation)
        users[uid.strip()] = _user(path, number, age, gender, occupation, label, zip_code)
    return users
