"""Ratings streamed from shards: a directory or glob of Parquet, CSV/TSV or JSON Lines files (text ones
gzipped too), trained on without building a ratings table.

``tfrec train --data DIR`` (a directory of data files that is not a MovieLens directory) or
``--data 'exports/part-*.parquet'`` opens a :class:`Stream`. Staging it reads every shard twice, a
piece of about a million rows at a time, never the whole:

1. the distinct user and item ids (memory grows with the ids, not with the ratings);
2. each row's ids as positions among those sorted ids, and its part (test, validation or fit) from a
   stable hash of its (user, item) ids and the seed, so a split needs no table and is the same on
   every run over the same files. Each piece's rows are shuffled and written as fixed-size binary
   records (user, item: int32; rating: float32), 256 rows to a record, in files of at most 4M rows.

Training reads the records with TensorFlow's ``FixedLengthRecordDataset``: files interleaved, records
shuffled in a buffer and rows again within groups of records, then cut into batches. No Python runs
per batch, so the same pipeline runs inside a parameter-server worker's ``dataset_fn``, each worker
opening its own share of the files, and no graph holds the data (only file names). The ids become a
model's row numbers through a table read from the staging directory: row 0, the unseen-id answer, for
an id the part fit on never rated, or rated fewer than ``min_count`` times.

Staged data are kept under ``$TFREC_DATA/streams`` (``~/.cache/tfrec/streams``) in a directory named by
the shards (paths, sizes, modification times) and the split's settings, and a later run with the same
ones reuses it. It is written under a temporary name and renamed when whole, so a killed staging
leaves nothing a later run would read.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfrec.data import files
from tfrec.data.table import id_strings, item_key_of, rating_values
from tfrec.errors import DataError

from tfrec.data.records import FORMAT, PIECE_ROWS

if TYPE_CHECKING:
    from tfrec.data.streamed import Staged

_MOVIELENS_FILES = ("u.data", "ratings.dat", "ratings.csv", "movies.csv", "movies.dat")


def is_stream(name) -> bool:
    """Whether ``--data name`` names shards: a glob pattern, or a directory of data files that is not a
    MovieLens directory (which has ``u.data``, ``ratings.dat``, ``ratings.csv`` or a movies file)."""
    name = str(name)
    if any(c in name for c in "*?["):
        return True
    path = Path(name)
    if not path.is_dir() or any((path / f).is_file() for f in _MOVIELENS_FILES):
        return False
    return any(files.looks_like_file(p.name) for p in path.iterdir() if p.is_file())


def shard_paths(name) -> list[Path]:
    """The data files ``name`` (a directory or a glob pattern) names, sorted; one format for all."""
    name = str(name)
    if Path(name).is_dir():
        found = sorted(p for p in Path(name).iterdir() if p.is_file() and files.looks_like_file(p.name))
    else:
        found = sorted(Path(p) for p in glob.glob(name) if Path(p).is_file())
    if not found:
        raise DataError(f"{name}: no data files (.csv, .tsv, .parquet, .jsonl; text ones may end in .gz)")
    kinds = {_kind(p) for p in found}
    if len(kinds) > 1:
        raise DataError(f"{name}: shards of one stream share one format; found {', '.join(sorted(kinds))}")
    return found


def test_fraction(split: str | None) -> float:
    """The test fraction of a split spec a stream takes: ``ratio[:F]`` (default 0.2), decided per row by a hash."""
    from tfrec.data import splits

    kind, fraction = splits.parse(split or "ratio")
    if kind != "ratio":
        raise DataError(f"split {split!r}: streamed shards are split by a hash of each (user, item): use ratio[:F]")
    return fraction


def _header(path: Path) -> list[str]:
    """A shard's column names; one DataError for a delimited shard without a header line."""
    names = files.column_names(path)
    if not names:
        raise DataError(f"{path}: no header line; streamed delimited shards need one naming their columns")
    return names


def _kind(path: Path) -> str:
    suffix = files._suffix(path)
    return "parquet" if suffix in files.PARQUET else "json" if suffix in files.JSON_LINES else "delimited"


@dataclasses.dataclass(frozen=True)
class Stream:
    """Shards of ratings, checked but not read: :meth:`stage` reads them.

    Attributes:
      name: What ``--data`` said. paths: The shards, sorted. roles: ``{"user", "item", "rating",
      "timestamp"}`` -> column (None where absent), found in the first shard as ``tfrec.data.files``
      finds them. delimiter: Of delimited shards (None: sniffed per shard).
    """

    name: str
    paths: tuple
    roles: dict
    delimiter: str | None = None

    @classmethod
    def open(cls, name, columns=None, delimiter: str | None = None) -> "Stream":
        paths = shard_paths(name)
        chosen = files.parse_columns(columns)
        first = paths[0]
        names = _header(first)
        roles = files._roles(first, names, chosen, numbered=False)
        if roles["rating"] is None:
            raise DataError(
                f"{first}: no rating column (name it with --columns rating=COL); streamed shards train on explicit "
                "ratings (interactions without ratings: load one file as a table)"
            )
        roles["timestamp"] = None  # a streamed split is a hash of the ids: timestamps are not read
        return cls(str(name), tuple(paths), roles, delimiter)

    feedback = "explicit"

    @property
    def item_key(self) -> str:
        return item_key_of(self.roles["item"])

    @property
    def source(self) -> str:
        took = ", ".join(f"{role}={column}" for role, column in self.roles.items() if column is not None)
        return f"{self.name} ({len(self.paths)} shards; {took})"  # as a file's: `tfrec train` shows it as read

    def stage(self, seed: int = 42, test_fraction: float = 0.2, validation_fraction: float = 0.1,
              min_count: int = 1, root=None) -> "Staged":  # fmt: skip
        """The shards read into parts (see the module's notes), or the staging a run with the same
        shards and settings left. ``root``: where staged data live (default ``$TFREC_DATA/streams``)."""
        if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1:
            raise DataError(f"{self.name}: fractions must be in (0, 1): test {test_fraction}, "
                            f"validation {validation_fraction}")  # fmt: skip
        if not isinstance(min_count, (int, np.integer)) or min_count < 1:
            raise DataError(f"min_count must be a positive integer, got {min_count!r}")
        settings = {"seed": int(seed), "test_fraction": float(test_fraction),
                    "validation_fraction": float(validation_fraction), "min_count": int(min_count)}  # fmt: skip
        key = self._key(settings)
        if root is None:
            from tfrec.data.cache import cache_dir

            root = cache_dir() / "streams"
        directory = Path(root) / key
        if not (directory / "meta.json").is_file():
            from tfrec.data.staging import stage

            stage(self, settings, directory)
        from tfrec.data.streamed import Staged

        return Staged(directory, json.loads((directory / "meta.json").read_text()), self)

    def summary(self) -> dict:
        """``tfrec data info``'s counts, from the staging with the default split (made now if there is none)."""
        meta = self.stage().meta
        total = sum(part["sum"] for part in meta["parts"].values())
        histogram = meta.get("rating_histogram")
        return {
            "name": self.name, "source": self.source, "users": meta["users"], "items": meta["items"],
            "ratings": meta["rows"], "density": meta["rows"] / (meta["users"] * meta["items"]),
            "rating_mean": total / meta["rows"],
            "rating_histogram": dict(sorted(histogram.items(), key=lambda kv: float(kv[0]))) if histogram else {},
            "features": ["user_id", "movie_id" if self.item_key == "movie_id" else "item_id", "user_rating"],
        }  # fmt: skip

    def _key(self, settings: dict) -> str:
        h = hashlib.sha256(json.dumps([FORMAT, self.roles, self.delimiter, settings]).encode())
        for p in self.paths:
            stat = p.stat()
            h.update(f"{p.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return h.hexdigest()[:20]

    def pieces(self):
        """``(users, items, ratings)`` for each piece of each shard: ids as Arrow strings (as
        ``tfrec.data.files`` reads them), ratings as float32; one DataError naming a bad row's line."""
        for path in self.paths:
            kind, start = _kind(path), 0
            first_line = 2 if kind == "delimited" else None  # a delimited shard's line 1 is its header
            for batch in _batches(path, kind, self.roles, self.delimiter):
                n = batch.num_rows

                def where(row, start=start, path=path, first_line=first_line):
                    return files._where(path, start + int(row), first_line)

                label = str(path)
                missing = [c for c in (self.roles["user"], self.roles["item"], self.roles["rating"])
                           if c not in batch.schema.names]  # fmt: skip
                if missing:
                    have = ", ".join(files.column_names(path))
                    raise DataError(f"{path}: no column {missing[0]!r} (the first shard's); this shard has {have}")
                users = id_strings(batch.column(self.roles["user"]), "user", label, self.roles["user"], where)
                items = id_strings(batch.column(self.roles["item"]), "item", label, self.roles["item"], where)
                ratings = rating_values(batch.column(self.roles["rating"]), label, self.roles["rating"], where)
                yield users, items, ratings
                start += n


def _batches(path: Path, kind: str, roles: dict, delimiter):
    """Arrow record batches of a shard, about :data:`PIECE_ROWS` rows each (a JSON Lines shard is read whole
    and then cut: keep JSON shards small)."""
    import pyarrow as pa

    wanted = [c for c in roles.values() if c is not None]
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(path).iter_batches(batch_size=PIECE_ROWS, columns=wanted)
        elif kind == "json":
            yield from files._read_json(path).to_batches(max_chunksize=PIECE_ROWS)
        else:
            import pyarrow.csv as pcsv

            _header(path)
            options, _ = files.delimited_options(path, {r: c for r, c in roles.items() if c}, delimiter, None)
            reader = pcsv.open_csv(path, **options)
            for batch in reader:
                yield batch.rename_columns([c.strip() for c in batch.schema.names])
    except DataError:
        raise
    except (pa.ArrowInvalid, pa.ArrowKeyError, OSError, EOFError) as e:
        if kind == "delimited":
            raise DataError(f"{path}: {files.bad_delimited(path, options, e)}") from None
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
