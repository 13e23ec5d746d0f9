"""Resolving a dataset name to a ratings table, and the TFDS source.

``load("ml-100k")`` looks in the cache, then in the recbole copy, then
downloads; it never falls back to synthetic data. ``load("synthetic:...")``,
``load("tfds:movielens/100k-ratings")`` and ``load("/a/directory")`` name the
other sources explicitly.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from tfrec.data import cache as _cache
from tfrec.data import files, movielens, stream, synthetic
from tfrec.data.table import RaggedColumn, Ratings, _from_arrow
from tfrec.errors import DataError, DataNotFoundError


def names_help() -> str:
    """What ``--data`` takes, for ``--help``: the registered sources, then files and directories."""
    from tfrec import registry

    named = [e.name for e in registry.sources.entries() if not e.help]
    described = [e.help for e in registry.sources.entries() if e.help]
    return (
        f"{', '.join(named)}, a directory of MovieLens files, a CSV/TSV/Parquet/JSON Lines file of your own "
        "(.gz too; columns found by name or --columns user=COL,item=COL[,rating=COL][,timestamp=COL]), "
        + ", or ".join(described)
    )


_SYNTHETIC_KEYS = {
    "users": int, "items": int, "ratings": int, "rank": int, "sigma": float,
    "factor_std": float, "bias_std": float, "global_mean": float, "seed": int,
    "round": lambda v: bool(int(v)),
}  # fmt: skip
_SYNTHETIC_FM_KEYS = {
    "users": int, "items": int, "rank": int, "sigma": float, "occupations": int, "genres": int,
    "factor_std": float, "weight_std": float, "global_bias": float, "seed": int,
}  # fmt: skip


def load(
    name: str, *, download: bool | None = None, columns=None, delimiter: str | None = None, one_per_pair: bool = True
) -> Ratings:
    """Loads a dataset by name, path or spec (see :func:`names_help`).

    A glob pattern, or a directory of data files that is not a MovieLens directory, names shards: they
    are not read into a table but opened as a :class:`tfrec.data.stream.Stream` (checked, not read),
    which ``tfrec train`` stages and streams.

    Args:
      name: A file of the user's own, a directory of MovieLens files, or a name in
        ``tfrec.registry.sources``: ``ml-100k`` and the other MovieLens names, ``tfds:<name>``,
        ``synthetic[:key=value,...]``, or a source registered by the user.
      download: Whether a MovieLens name may be downloaded when it is neither
        in the cache nor (ML-100K) in the recbole copy. Default: yes unless
        ``TFREC_OFFLINE=1``.
      columns, delimiter: For a file of the user's own (``tfrec.data.files.load_file``).
      one_per_pair: A file of the user's own keeps one rating per (user, item), the latest
        (:func:`one_rating_per_pair`); False keeps every row as written (what a model trained on the
        file's rows as they are saw, as ``tfrec import-torch --global-mean-from`` needs).

    Raises:
      DataNotFoundError: a MovieLens name found nowhere; the message lists
        every way to get it.
      DataError: an unknown name or malformed data.
    """
    if download is None:
        download = os.environ.get("TFREC_OFFLINE", "") not in ("1", "true", "yes")
    entry = check_name(name, columns, delimiter)
    if entry is not None:
        return entry.load()(name, download=download, columns=columns, delimiter=delimiter)
    if Path(name).is_file():
        table = files.load_file(name, columns, delimiter=delimiter)
        return one_rating_per_pair(table) if one_per_pair else table
    if stream.is_stream(name):
        return stream.Stream.open(name, columns, delimiter)
    return movielens.load_directory(name)


def one_rating_per_pair(table: Ratings) -> Ratings:
    """A file's table with one row per (user, item), as MovieLens directories are read: the latest by
    timestamp, on a tie (or with no timestamps) the later line. A pair rated twice would otherwise
    count twice, and could land in the training and the test part at once. The table's ``source``
    (the ``read`` line of ``tfrec train``) says how many rows were left out."""
    kept = movielens.latest_per_pair(table)
    if len(kept) == len(table):
        return table
    dropped = len(table) - len(kept)
    note = f"; {dropped:,} repeated (user, item) row{'s' if dropped > 1 else ''} left out, the latest of each pair kept"
    source = f"{table.source[:-1]}{note})" if table.source.endswith(")") else table.source + note
    return dataclasses.replace(kept, source=source)


def check_name(name: str, columns=None, delimiter: str | None = None):
    """What can be known of a dataset name without reading it (or importing TensorFlow).

    Returns:
      The ``tfrec.registry.sources`` entry that loads ``name``, or None for a file or a directory.

    Raises:
      DataError: a file or directory that is not there, an unknown name, a bad spec (the source's
        own ``check``), or ``columns``/``delimiter`` given for a source that does not take them.
    """
    from tfrec import registry

    path = Path(name)
    if path.is_file():
        return None
    if stream.is_stream(name):
        stream.shard_paths(name)  # raises for a pattern that matches no data file
        return None
    if files.looks_like_file(name):
        raise DataError(f"{name}: no such file")
    entry = registry.sources.find(name)
    takes_columns = entry is not None and entry.capabilities["columns"]
    if delimiter or (columns and not takes_columns):
        able = ", ".join(e.name for e in registry.sources.entries() if e.capabilities["columns"])
        raise DataError(f"{name}: --columns and --delimiter are for a file of your own (and --columns for {able})")
    if entry is not None:
        if entry.capabilities["check"] is not None:
            registry.load_target(entry.capabilities["check"])(name)
        return entry
    if path.is_dir():
        return None
    if os.sep in name or name.startswith("."):
        raise DataError(f"no such file or directory {name!r}")
    listed = ", ".join(f"{e.name}..." if e.prefix else e.name for e in registry.sources.entries())
    raise DataError(f"unknown dataset {name!r}: use a file, a directory, {listed} (tfrec data --help)")


def anchored(name: str) -> str:
    """``name`` with a relative file, directory or glob of the user's made absolute (a source name as it is),
    so a config that records it (``tfrec tune``'s ``best.json``) reads the same data from any directory."""
    from tfrec import registry

    path = Path(name)
    local = path.is_file() or stream.is_stream(name) or (path.is_dir() and registry.sources.find(name) is None)
    return str(path.absolute()) if local and not path.is_absolute() else name


def load_movielens(name: str, *, download: bool, **_) -> Ratings:
    """A MovieLens name: the cache, the recbole copy (ML-100K), else a download."""
    return _load_movielens(name, download)


def load_tfds_name(name: str, *, columns=None, **_) -> Ratings:
    """``tfds:NAME``: :func:`load_tfds` of NAME."""
    return load_tfds(name.partition(":")[2], columns=columns)


def check_tfds(name: str) -> None:
    if not name.partition(":")[2]:
        raise DataError(f"{name!r}: name a TensorFlow Datasets set, e.g. tfds:movielens/100k-ratings")


def load_synthetic(name: str, **_) -> Ratings:
    """``synthetic[:key=value,...]``: planted biased-MF ratings (``tfrec.data.synthetic.generate``)."""
    return synthetic.generate(**_synthetic_args(name)).ratings


def load_synthetic_fm(name: str, **_) -> Ratings:
    """``synthetic-fm[:key=value,...]``: every pair rated by a planted FM (``tfrec.data.synthetic.generate_fm``)."""
    return synthetic.generate_fm(**_synthetic_args(name, _SYNTHETIC_FM_KEYS, "synthetic-fm")).ratings


def check_synthetic(name: str) -> None:
    if name.startswith("synthetic-fm"):
        _synthetic_args(name, _SYNTHETIC_FM_KEYS, "synthetic-fm")
    else:
        _synthetic_args(name)


def _synthetic_args(spec: str, keys=_SYNTHETIC_KEYS, label="synthetic") -> dict:
    _, _, rest = spec.partition(":")
    args = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in keys:
            raise DataError(f"{label}: unknown parameter {key!r}; known: {', '.join(keys)}")
        try:
            args[key] = keys[key](value)
        except ValueError:
            raise DataError(f"{label}: {key}={value!r} is not a valid value") from None
    return args


def _load_movielens(name: str, download: bool) -> Ratings:
    cached = _cache.cache_dir() / name
    if cached.is_dir():
        return movielens.load_directory(cached, name)
    if name == "ml-100k" and movielens.recbole_directory() is not None:
        return movielens.load_recbole()
    tried = f"not in the cache ({cached})"
    if name == "ml-100k":
        tried += ", recbole is not installed"
    if download and name in _cache.known_archives():
        try:
            return movielens.load_directory(_cache.download(name), name)
        except DataNotFoundError as e:
            tried += f", {e}"
    elif not download:
        tried += ", downloads are off (TFREC_OFFLINE=1)"
    ways = [f"download it once with network access (tfrec data download {name})"]
    if name == "ml-100k":
        ways.insert(0, "pip install --no-deps recbole==1.2.1 (ships ML-100K)")
    ways.append(f"unzip the GroupLens archive into {cached}")
    ways.append("or pass its directory as --data /path/to/dir")
    raise DataNotFoundError(f"{name}: {tried}. To get it: " + "; ".join(ways))


def load_tfds(name: str = "movielens/100k-ratings", split: str = "train", data_dir=None, columns=None) -> Ratings:
    """Loads a TensorFlow Datasets ratings set into a table.

    A ``movielens/*-ratings`` config keeps its side features: TFDS repeats them on every rating,
    and the table keeps each id's first occurrence. Any other set (or ``columns``) is read like a
    file of the user's own (``tfrec.data.files``): ``columns`` maps ``user``, ``item``, ``rating``
    and ``timestamp`` to feature names, nested ones joined by ``/`` (``data/customer_id``); roles
    left out are found by name, and without a rating the examples are interactions.
    """
    import tensorflow_datasets as tfds

    try:
        ds = tfds.load(name, split=split, data_dir=data_dir)
    except Exception as e:  # TFDS raises many types; name the dataset in one message
        raise DataNotFoundError(f"tfds:{name}: {type(e).__name__}: {e}") from None
    chosen = files.parse_columns(columns)
    columns: dict[str, list] = {}
    for batch in tfds.as_numpy(ds.ragged_batch(65536)):
        for key, value in _flat(batch).items():
            columns.setdefault(key, []).append(value)
    if not columns:
        raise DataError(f"tfds:{name}: split {split!r} has no ratings")
    if chosen or not {"user_id", "movie_id", "user_rating"} <= set(columns):
        return _tfds_by_roles(name, split, columns, chosen)
    flat = {k: np.concatenate(vs) for k, vs in columns.items() if k != "movie_genres"}
    table = Ratings.from_arrays(
        _decode(flat["user_id"]),
        _decode(flat["movie_id"]),
        flat["user_rating"],
        flat.get("timestamp"),
        name=name,
        source=f"tfds:{name}[{split}]",
    )
    first_user = _first_rows(table.user, table.num_users)
    first_item = _first_rows(table.item, table.num_items)
    user_features, item_features = {}, {}
    for key, value in flat.items():
        if key.startswith("user_") and key not in ("user_id", "user_rating"):
            user_features[key] = _decode(value[first_user])
        elif key in ("bucketized_user_age", "raw_user_age"):
            user_features[key] = value[first_user]
        elif key == "movie_title":
            item_features[key] = _decode(value[first_item])
    if "movie_genres" in columns:
        genres = [row for batch in columns["movie_genres"] for row in _rows(batch)]
        item_features["movie_genres"] = RaggedColumn.from_lists([genres[r] for r in first_item])
    return dataclasses.replace(table, user_features=user_features, item_features=item_features)


def _flat(features: dict, prefix: str = "") -> dict:
    """Nested feature dicts flattened to ``outer/inner`` names."""
    flat = {}
    for key, value in features.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _tfds_by_roles(name: str, split: str, columns: dict, chosen: dict) -> Ratings:
    """A TFDS set read by roles, as a user's file is (only scalar features can be roles)."""
    import pyarrow as pa

    scalar = {k: np.concatenate(v) for k, v in columns.items() if all(getattr(b, "ndim", 0) == 1 for b in v)}
    label = f"tfds:{name}"
    roles = files.roles_by_name(label, list(scalar), chosen)
    table = pa.table({c: _decode(scalar[c]) for c in roles.values() if c is not None})
    took = ", ".join(f"{role}={column}" for role, column in roles.items() if column is not None)
    return _from_arrow(
        table, **roles, name=name.split("/")[0], source=f"{label}[{split}] ({took})", label=label,
        where=lambda row: f"example {row}",
    )  # fmt: skip


def _rows(batch) -> list:
    return batch.to_list() if hasattr(batch, "to_list") else batch.tolist()


def _decode(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values])
    return values


def _first_rows(positions: np.ndarray, n: int) -> np.ndarray:
    first = np.full(n, len(positions), np.int64)
    np.minimum.at(first, positions, np.arange(len(positions)))
    return first
