"""Reading delimited rating and side files with errors that name the file and line.

Ratings files are read with ``numpy.loadtxt`` (C speed: ML-20M's 20M lines in
seconds). When that fails, or yields ids that are not exact integers, the file
is read again line by line, which either succeeds (string ids) or raises a
:class:`~tfrec.errors.DataError` naming the file, the line and the column.
"""

from __future__ import annotations

import io
import os
from typing import Callable, Iterator, Sequence

import numpy as np

from tfrec.errors import DataError

_EXACT_INT = 2**53  # float64 holds integers exactly up to here


def read_text(path: str | os.PathLike) -> str:
    """The file's text: UTF-8 (a BOM is dropped), else Latin-1 as MovieLens uses."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "\x00" in text:
        raise DataError(f"{path}: contains NUL bytes; not a text file")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def lines(path, text: str, skip: int = 0) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for each non-blank line after the first ``skip``."""
    for number, line in enumerate(text.split("\n"), start=1):
        if number > skip and line.strip():
            yield number, line


def read_ratings(
    path: str | os.PathLike,
    delimiter: str,
    columns: Sequence[int] = (0, 1, 2, 3),
    header_lines: int = 0,
    num_fields: int | None = 4,
):
    """Reads a ratings file into raw (user, item, rating, timestamp) arrays.

    Args:
      path: The file.
      delimiter: The field separator (``"\\t"``, ``"::"``, ``","``).
      columns: Positions of user id, item id, rating and timestamp.
      header_lines: Lines to skip at the top.
      num_fields: Fields every line must have (None: at least ``max(columns) + 1``).

    Returns:
      ``(user_id, movie_id, rating float32, timestamp int64)``; ids are int64
      when every id is an integer, else strings.

    Raises:
      DataError: an unreadable or empty file, or a malformed line (file, line, column).
    """
    text = read_text(path)
    fast = _read_fast(text, delimiter, columns, header_lines, num_fields)
    if fast is None or not np.isfinite(fast[2]).all():
        # The line-by-line reader knows line numbers (loadtxt skips blank lines).
        return _read_slow(path, text, delimiter, columns, header_lines, num_fields)
    return fast


def _read_fast(text, delimiter, columns, header_lines, num_fields):
    if not text.strip():
        return None
    body = text
    if len(delimiter) > 1:
        if "\x1f" in text:
            return None
        body = text.replace(delimiter, "\x1f")
        delimiter = "\x1f"
    try:
        table = np.loadtxt(
            io.StringIO(body),
            delimiter=delimiter,
            skiprows=header_lines,
            dtype=np.float64,
            ndmin=2,
            comments=None,
        )
    except (ValueError, TypeError):
        return None
    if table.shape[0] == 0 or (num_fields is not None and table.shape[1] != num_fields):
        return None
    user, item, rating, ts = (table[:, c] for c in columns)
    for ids in (user, item, ts):
        if not (np.all(ids == np.round(ids)) and np.all(np.abs(ids) < _EXACT_INT)):
            return None
    return user.astype(np.int64), item.astype(np.int64), rating.astype(np.float32), ts.astype(np.int64)


_NAMES = ("user id", "item id", "rating", "timestamp")


def _read_slow(path, text, delimiter, columns, header_lines, num_fields):
    need = num_fields if num_fields is not None else max(columns) + 1
    users, items, ratings, stamps = [], [], [], []
    for number, line in lines(path, text, header_lines):
        fields = line.split(delimiter)
        if len(fields) != need and (num_fields is not None or len(fields) < need):
            raise DataError(
                f"{path}: line {number}: expected {need} fields separated by "
                f"{delimiter!r}, found {len(fields)}: {line[:80]!r}"
            )
        values = [fields[c].strip() for c in columns]
        for position, (value, what) in enumerate(zip(values, _NAMES)):
            if not value:
                raise DataError(f"{path}: line {number}: column {columns[position] + 1} ({what}) is empty")
        rating = _number(path, number, columns[2], "rating", values[2], float)
        if not np.isfinite(rating):
            raise DataError(f"{path}: line {number}: rating is {values[2]!r}, not a finite number")
        stamp = _number(path, number, columns[3], "timestamp", values[3], int)
        users.append(values[0])
        items.append(values[1])
        ratings.append(rating)
        stamps.append(stamp)
    if not ratings:
        raise DataError(f"{path}: no ratings (the file is empty)")
    return (
        np.asarray(users),
        np.asarray(items),
        np.asarray(ratings, np.float32),
        np.asarray(stamps, np.int64),
    )


def _number(path, number: int, column: int, what: str, value: str, kind: Callable):
    try:
        result = kind(float(value)) if kind is int and "." in value else kind(value)
    except ValueError:
        raise DataError(f"{path}: line {number}: column {column + 1} ({what}) is {value!r}, not a number") from None
    if kind is int and not -(2**63) <= result < 2**63:
        raise DataError(f"{path}: line {number}: column {column + 1} ({what}) {value!r} is out of range")
    return result


def split_fields(path, number: int, line: str, delimiter: str, at_least: int) -> list[str]:
    """Splits a side-file line, raising DataError if it has fewer than ``at_least`` fields."""
    fields = line.split(delimiter)
    if len(fields) < at_least:
        raise DataError(
            f"{path}: line {number}: expected at least {at_least} fields separated by "
            f"{delimiter!r}, found {len(fields)}: {line[:80]!r}"
        )
    return fields
