"""A staged stream's parts (``tfrec.data.stream``): where a training table would be, read from record files.

:class:`StreamedPart` is what a model is built from (its vocabularies, mean and range) and what
``tfrec.data.dataset`` reads (it hands a streamed part to :meth:`StreamedPart.dataset`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tfrec.data.records import BLOCK, FEATURES, PARTS, ROLES, ROW_BYTES, VOCABULARIES
from tfrec.errors import DataError


@dataclasses.dataclass(frozen=True)
class StreamSplit:
    """A staged stream's training part and test part (``tfrec.data.Split``'s ``train``, ``test`` and
    ``fingerprint``, without row positions: there is no table)."""

    train: "StreamedPart"
    test: "StreamedPart"
    name: str
    fingerprint: str


class Staged:
    """A stream read into parts (:meth:`Stream.stage`): the fit, validation and test records, the ids, and
    the tables from ids to a model's rows."""

    def __init__(self, directory: Path, meta: dict, stream):
        self.directory, self.meta, self.stream = Path(directory), meta, stream
        self._ids = {}

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    def ids(self, role: str) -> np.ndarray:
        """Every distinct ``user`` or ``item`` id in the shards, sorted."""
        if role not in self._ids:
            text = (self.directory / f"{role}s.txt").read_text()
            self._ids[role] = np.array(text.split("\n")[:-1], dtype=object)
        return self._ids[role]

    def part(self, parts: tuple[str, ...], vocabulary: str) -> "StreamedPart":
        """The records of ``parts`` read as rows of the model built with ``vocabulary`` (``fit``, ``train``)."""
        return StreamedPart(self, tuple(parts), vocabulary)

    def split(self) -> StreamSplit:
        """The training part (fit + validation) and the test part, the model's vocabulary the training part's."""
        s = self.meta["settings"]
        name = f"hash:{s['test_fraction']},seed={s['seed']}"
        return StreamSplit(self.part(("fit", "validation"), "train"), self.part(("test",), "train"), name,
                           self.fingerprint)  # fmt: skip

    def cut(self) -> tuple[StreamSplit, "StreamedPart", "StreamedPart | None"]:
        """``(split, fit part, validation part or None)``, as ``tfrec.train.phases.cut`` gives for a table."""
        split = self.split()
        if not self.meta["parts"]["validation"]["rows"]:
            return split, split.train, None
        return split, self.part(("fit",), "fit"), self.part(("validation",), "fit")


class StreamedPart:
    """Part of a staged stream where a training table would be: what a model is built from
    (:meth:`table_args`) and what pipelines read (:meth:`dataset`). ``len()`` is its number of ratings."""

    streamed = True
    features = FEATURES
    feedback = "explicit"
    user_features: dict = {}
    item_features: dict = {}

    def __init__(self, staged: Staged, parts: tuple[str, ...], vocabulary: str):
        if vocabulary not in VOCABULARIES:
            raise DataError(f"unknown vocabulary {vocabulary!r}: use {', '.join(VOCABULARIES)}")
        self.staged, self.parts, self.vocabulary = staged, parts, vocabulary
        self.name = Path(staged.stream.name.rstrip("/*")).name or "stream"
        self.source = staged.meta["source"]
        self.item_key = staged.meta["item_key"]
        self._kept = {}

    def __len__(self) -> int:
        return sum(self.staged.meta["parts"][p]["rows"] for p in self.parts)

    def __repr__(self) -> str:
        return f"StreamedPart({'+'.join(self.parts)} of {self.staged.directory}, {len(self)} ratings)"

    def rows_file(self, role: str) -> Path:
        return self.staged.directory / f"rows-{self.vocabulary}-{role}.i32"

    def kept(self, role: str) -> np.ndarray:
        """Positions (among the stream's ids) of the ids the model of this part's vocabulary has rows for."""
        if role not in self._kept:
            self._kept[role] = np.flatnonzero(np.fromfile(self.rows_file(role), np.int32))
        return self._kept[role]

    @property
    def user_ids(self) -> np.ndarray:
        return self.staged.ids("user")[self.kept("user")]

    @property
    def item_ids(self) -> np.ndarray:
        return self.staged.ids("item")[self.kept("item")]

    def moments(self) -> tuple[int, float, float]:
        """``(ratings, sum, sum of squares)`` of the part's ratings."""
        parts = [self.staged.meta["parts"][p] for p in self.parts]
        return sum(p["rows"] for p in parts), sum(p["sum"] for p in parts), sum(p["sum_of_squares"] for p in parts)

    def rated_ids(self) -> tuple[int, int]:
        """How many users and items have a rating in the part."""
        out = []
        for role in ("user", "item"):
            counts = np.load(self.staged.directory / f"counts-{role}.npy", allow_pickle=False)
            out.append(int(np.count_nonzero(counts[[PARTS.index(p) for p in self.parts]].sum(axis=0))))
        return out[0], out[1]

    def table_args(self) -> dict:
        """What a rating model takes from its training data: vocabularies, mean, range and item key."""
        n, total, _ = self.moments()
        ranges = [self.staged.meta["parts"][p]["range"] for p in self.parts if self.staged.meta["parts"][p]["range"]]
        return {
            "user_vocabulary": self.user_ids.tolist(),
            "item_vocabulary": self.item_ids.tolist(),
            "global_mean": total / n,
            "rating_range": (min(r[0] for r in ranges), max(r[1] for r in ranges)),
            "item_key": self.item_key,
        }

    def files(self, shard: tuple[int, int] | None = None) -> list[str]:
        """The part's record files; with ``shard=(n, k)`` the k-th of n workers' share (every n-th file;
        with more workers than files, :meth:`dataset` shares records instead)."""
        names = [str(self.staged.directory / f) for p in self.parts for f in self.staged.meta["parts"][p]["files"]]
        return names if shard is None else names[shard[1] :: shard[0]]

    def dataset(self, batch_size: int = 1024, *, shuffle: bool = False, seed: int = 42, features=None,
                drop_remainder: bool = False, first_epoch: int = 1, vocabularies=None, endless: bool = False,
                shard: tuple[int, int] | None = None, shuffle_records: int = 1024):  # fmt: skip
        """``tfrec.data.dataset`` of the part (the same arguments), read from its record files.

        ``vocabularies``: a model's; the ids then come as its row numbers (``user_row``, ``movie_row``).
        They must be the vocabularies of this part's model (its :meth:`table_args`) or of the
        training part's, whose rows the staging wrote. ``shard=(n, k)``: only the k-th of n workers'
        files. ``shuffle_records``: records (256 rows each) in the shuffle buffer.
        """
        from tfrec._keras import tf
        from tfrec.data import pipeline

        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
        names = FEATURES if features is None else tuple([features] if isinstance(features, str) else features)
        unknown = [f for f in names if f not in FEATURES]
        if unknown:
            raise DataError(f"{self.name}: a streamed part has no {', '.join(unknown)}; it has {', '.join(FEATURES)}")
        rows_of = None if vocabularies is None else self._rows_for(vocabularies)
        paths, records_shard = self.files(shard), None
        if shard is not None and shard[0] > len(self.files()):  # more workers than files: every n-th record each
            paths, records_shard = self.files(), shard
        n = len(self) if shard is None else None
        read = _reader(paths, int(batch_size), int(seed), shuffle, drop_remainder, names, rows_of,
                       self.staged.directory, shuffle_records, records_shard)  # fmt: skip
        batches = None if n is None else pipeline.batch_count(n, batch_size, drop_remainder and shuffle)
        if not shuffle:
            ds = read(0)
            return pipeline.epoch_pipeline(
                ds if n is None else ds.apply(tf.data.experimental.assert_cardinality(batches))
            )
        return pipeline.epoch_pipeline(pipeline.epochs(read, first_epoch, endless, batches))

    def _rows_for(self, vocabularies) -> dict:
        """The row files that number ids as ``vocabularies`` (a model's) do."""
        users, items = (len(v) for v in vocabularies)
        for vocabulary in (self.vocabulary, *VOCABULARIES):
            other = StreamedPart(self.staged, self.parts, vocabulary)
            if (len(other.kept("user")), len(other.kept("item"))) == (users, items):
                return {"user": str(other.rows_file("user")), "item": str(other.rows_file("item"))}
        raise DataError(
            f"{self.name}: the model's vocabularies ({users} users, {items} items) are not this stream's: "
            "build the model from a part of the same staged stream"
        )


def _reader(paths, batch_size, seed, shuffle, drop_remainder, names, rows_of, directory, shuffle_records,
            records_shard=None):  # fmt: skip
    """Epoch number (an int64 tensor) -> a dataset of that epoch's batches, read from ``paths``."""
    from tfrec._keras import tf

    record_bytes = BLOCK * ROW_BYTES
    group = max(1, -(-4 * batch_size // BLOCK))  # records shuffled together: at least four batches' rows

    @tf.autograph.experimental.do_not_convert
    def read(epoch):
        epoch_seed = tf.cast(epoch, tf.int64) + tf.constant(seed, tf.int64) * 1_000_003
        # Tables from ids to rows, read from files inside the function: a worker reads them itself.
        tables = {role: tf.io.decode_raw(tf.io.read_file(path), tf.int32) for role, path in (rows_of or {}).items()}
        if rows_of is None:  # the id strings, from the staging's id files
            tables = {role: tf.strings.split(tf.io.read_file(f"{directory}/{role}s.txt"), "\n") for role in ROLES}
        files_ = tf.data.Dataset.from_tensor_slices(tf.constant(paths))
        if shuffle:
            files_ = files_.shuffle(len(paths), seed=epoch_seed)
        records = files_.interleave(
            lambda f: tf.data.FixedLengthRecordDataset(f, record_bytes, buffer_size=1 << 20),
            cycle_length=min(len(paths), 8), block_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )  # fmt: skip
        if records_shard is not None:
            records = records.shard(*records_shard)
        if shuffle:
            records = records.shuffle(shuffle_records, seed=epoch_seed)
        groups = records.batch(group if shuffle else 64).enumerate()

        def decode(k, chunk):
            rows = tf.reshape(tf.io.decode_raw(chunk, tf.int32), [-1, 3])
            rows = tf.boolean_mask(rows, rows[:, 0] >= 0)
            if shuffle:
                rows = tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([epoch_seed, k]))
            return rows

        def examples(rows):
            out = {}
            for name in names:
                if name == "user_rating":
                    out[name] = tf.bitcast(rows[:, 2], tf.float32)
                    continue
                role, column = ("user", rows[:, 0]) if name == "user_id" else ("item", rows[:, 1])
                if rows_of is None:
                    out[name] = tf.gather(tables[role], column)
                else:
                    out["user_row" if role == "user" else "movie_row"] = tf.cast(
                        tf.gather(tables[role], column), tf.int64
                    )
            return out

        batches = groups.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        batches = batches.rebatch(batch_size, drop_remainder=drop_remainder and shuffle)
        return batches.map(examples, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return read
