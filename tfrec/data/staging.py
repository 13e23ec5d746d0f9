"""Staging a stream of shards (``tfrec.data.stream``): two passes over the shards, piece by piece.

1. :func:`distinct_ids`: the distinct user and item ids, sorted (memory grows with the ids only).
2. :func:`write_parts`: each row's ids as positions among them, its part from a stable hash of its
   (user, item) ids and the seed, and its record in the part's files, rows shuffled within each piece.

:func:`stage` runs both into a scratch directory and renames it when whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from tfrec.data.records import BLOCK, FILE_ROWS, FORMAT, PARTS, VOCABULARIES
from tfrec.errors import DataError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Files each part writes side by side: up to this many workers read a share of whole files each.
SPREAD = 16


def stage(stream, settings: dict, directory: Path) -> None:
    """Writes ``stream`` staged with ``settings`` (seed, test and validation fractions, min_count) to
    ``directory``: nothing there until the whole is written; a failure leaves nothing behind."""
    start = time.perf_counter()
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = directory.parent / f".{directory.name}.{os.getpid()}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        ids, rows = distinct_ids(stream)
        for role, values in ids.items():
            (scratch / f"{role}s.txt").write_text("\n".join(values.to_pylist()) + "\n")
        written = write_parts(stream, ids, settings, scratch)
        if written["rows"] != rows:
            raise DataError(
                f"{stream.name}: the shards changed while they were read ({rows}, then {written['rows']} rows)"
            )
        meta = _meta(stream, settings, ids, written, scratch)
        meta["seconds"] = round(time.perf_counter() - start, 3)
        (scratch / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(scratch, directory)
        except OSError:  # another run staged the same shards first: theirs is as good
            shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def distinct_ids(stream) -> tuple[dict, int]:
    """``({"user": ids, "item": ids}, rows)``: each role's distinct ids as a sorted Arrow string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found, rows = {"user": [], "item": []}, 0
    for users, items, _ in stream.pieces():
        rows += len(users)
        for role, values in (("user", users), ("item", items)):
            found[role].append(pc.unique(values))
            if len(found[role]) >= 16:  # merged now and then: memory stays near the distinct ids
                found[role] = [pc.unique(pa.concat_arrays(found[role]))]
    ids = {}
    for role, arrays in found.items():
        distinct = pc.unique(pa.concat_arrays(arrays))
        if pc.any(pc.match_substring(distinct, "\n")).as_py():
            raise DataError(f"{stream.name}: a {role} id holds a line break")
        ids[role] = distinct.take(pc.sort_indices(distinct))
    return ids, rows


def write_parts(stream, ids: dict, settings: dict, directory: Path) -> dict:
    """Pass 2: every row's record in its part's files. Returns ``{"rows", "counts", "moments", "ranges",
    "files", "tested"}``: ratings per id per part, (rows, sum, sum of squares) and the rating range of
    each part, the files each part wrote, and the test part's hashes (summed, xored) for the fingerprint."""
    import pyarrow.compute as pc

    hashes = {role: id_hashes(values) for role, values in ids.items()}
    counts = {role: np.zeros((len(PARTS), len(values)), np.int64) for role, values in ids.items()}
    moments, ranges = np.zeros((len(PARTS), 3)), np.array([[np.inf, -np.inf]] * len(PARTS))
    writers = [_Writer(directory, part) for part in PARTS]
    tested, rows, histogram = np.zeros(2, np.uint64), 0, {}
    for k, (users, items, ratings) in enumerate(stream.pieces()):
        u = pc.index_in(users, value_set=ids["user"]).to_numpy().astype(np.int32)
        i = pc.index_in(items, value_set=ids["item"]).to_numpy().astype(np.int32)
        h, part = assign(hashes["user"][u], hashes["item"][i], settings)
        if (part == 2).any():  # order-free: the same whatever shards and pieces the rows come in
            with np.errstate(over="ignore"):
                tested[0] += h[part == 2].sum(dtype=np.uint64)
            tested[1] ^= np.bitwise_xor.reduce(h[part == 2])
        order = np.random.default_rng([settings["seed"], k]).permutation(len(u))  # records mix a piece's rows
        for p, writer in enumerate(writers):
            chosen = order[part[order] == p]
            if not len(chosen):
                continue
            r = ratings[chosen]
            for role, positions in (("user", u), ("item", i)):
                counts[role][p] += np.bincount(positions[chosen], minlength=counts[role].shape[1])
            moments[p] += (len(r), r.sum(dtype=np.float64), np.square(r, dtype=np.float64).sum())
            ranges[p] = (min(ranges[p][0], r.min()), max(ranges[p][1], r.max()))
            writer.write(u[chosen], i[chosen], r)
        rows += len(u)
        if histogram is not None:  # rating values and their counts, while there are few (star ratings)
            for value, count in zip(*np.unique(ratings, return_counts=True)):
                histogram[f"{value:g}"] = histogram.get(f"{value:g}", 0) + int(count)
            histogram = histogram if len(histogram) <= 100 else None
    files = {part: writer.close() for part, writer in zip(PARTS, writers)}
    return {"rows": rows, "counts": counts, "moments": moments, "ranges": ranges, "files": files, "tested": tested,
            "histogram": histogram}  # fmt: skip


def assign(user_hashes: np.ndarray, item_hashes: np.ndarray, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(hash, part)`` of each row from its ids' hashes and the seed: part 2 (test) with probability
    ``test_fraction``, else 1 (validation) with probability ``validation_fraction``, else 0 (fit)."""
    seed = np.uint64(settings["seed"] & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        h = mix(user_hashes ^ mix(item_hashes ^ mix(seed)))
        second = mix(h ^ _GOLDEN)
    test, validation = unit(h) < settings["test_fraction"], unit(second) < settings["validation_fraction"]
    return h, np.where(test, 2, np.where(validation, 1, 0))


def _meta(stream, settings: dict, ids: dict, written: dict, directory: Path) -> dict:
    """The staging's description (``meta.json``), after its tables from ids to rows are written."""
    moments, ranges, counts = written["moments"], written["ranges"], written["counts"]
    for part in ("fit", "test"):
        if not moments[PARTS.index(part)][0]:
            raise DataError(f"{stream.name}: the {part} part is empty ({written['rows']} ratings in the shards)")
    for vocabulary, parts in VOCABULARIES.items():
        for role in ids:
            rated = counts[role][[PARTS.index(p) for p in parts]].sum(axis=0)
            kept = rated >= settings["min_count"]
            np.where(kept, np.cumsum(kept), 0).astype(np.int32).tofile(directory / f"rows-{vocabulary}-{role}.i32")
    for role in ids:
        np.save(directory / f"counts-{role}.npy", counts[role])
    fingerprint = hashlib.sha256(json.dumps([settings, moments[:, 0].tolist(), written["tested"].tolist()]).encode())
    parts = {
        part: {
            "rows": int(moments[p][0]), "sum": float(moments[p][1]), "sum_of_squares": float(moments[p][2]),
            "range": [float(ranges[p][0]), float(ranges[p][1])] if moments[p][0] else None,
            "files": written["files"][part],
        } for p, part in enumerate(PARTS)
    }  # fmt: skip
    return {
        "format": FORMAT, "source": stream.source, "settings": settings, "rows": written["rows"], "parts": parts,
        "users": len(ids["user"]), "items": len(ids["item"]), "item_key": stream.item_key,
        "fingerprint": fingerprint.hexdigest()[:16], "rating_histogram": written["histogram"],
    }  # fmt: skip


def id_hashes(ids) -> np.ndarray:
    """A stable 64-bit hash of each id string (TensorFlow's FarmHash fingerprint), the same on every machine."""
    from tfrec._keras import tf

    strings = tf.constant(np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object))
    return tf.strings.to_hash_bucket_fast(strings, np.iinfo(np.int64).max).numpy().astype(np.uint64)


def mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a uint64 array's bits well spread (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def unit(h: np.ndarray) -> np.ndarray:
    """uint64 hashes -> uniform floats in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class _Writer:
    """A part's records, spread over :data:`SPREAD` files written side by side (every piece's rows split
    among them, so each file is a sample of the whole part and workers can take files as their shares);
    a file that reaches :data:`FILE_ROWS` rows is closed and the next one opened in its place. Names:
    ``{part}-00000.bin``..., each file whole records (its last one padded)."""

    def __init__(self, directory: Path, part: str):
        self.directory, self.part = directory, part
        self.names, self.files, self.rows = [], [None] * SPREAD, [0] * SPREAD

    def write(self, users, items, ratings) -> None:
        block = np.empty((len(users), 3), np.int32)
        block[:, 0], block[:, 1], block[:, 2] = users, items, ratings.astype(np.float32).view(np.int32)
        for slot, chunk in enumerate(np.array_split(block, SPREAD)):
            while len(chunk):
                if self.files[slot] is None or self.rows[slot] >= FILE_ROWS:
                    self._next(slot)
                take = min(len(chunk), FILE_ROWS - self.rows[slot])
                chunk[:take].tofile(self.files[slot])
                self.rows[slot] += take
                chunk = chunk[take:]

    def _next(self, slot: int) -> None:
        self._finish(slot)
        name = f"{self.part}-{len(self.names):05d}.bin"
        self.names.append(name)
        self.files[slot], self.rows[slot] = open(self.directory / name, "wb"), 0

    def _finish(self, slot: int) -> None:
        if self.files[slot] is not None:
            np.full((-self.rows[slot] % BLOCK, 3), -1, np.int32).tofile(self.files[slot])
            self.files[slot].close()
            self.files[slot] = None

    def close(self) -> list[str]:
        for slot in range(SPREAD):
            self._finish(slot)
        return self.names
