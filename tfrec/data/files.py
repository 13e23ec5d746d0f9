"""A user's own ratings or interactions: CSV, TSV, Parquet and JSON Lines files, DataFrames and Arrow tables.

``load_file("purchases.csv.gz")`` reads the file with pyarrow (its CSV, JSON and Parquet readers,
gzip included), finds the user, item, rating and timestamp columns by name (or by ``columns``),
and builds a :class:`~tfrec.data.Ratings` whose ids are the file's own, as strings as written
("007" stays "007"; an integer column gives its decimal digits; spaces around an id are dropped).
Ids are dictionary-encoded in Arrow, so no per-row Python string is ever made: memory grows with
the rows' numbers and the distinct ids, not with a Python object per row.

A file without a rating column holds interactions (clicks, purchases): every row becomes a rating
of 1.0 and the table says ``feedback == "implicit"``; ``tfrec train`` then trains the implicit
models. Bad input is one :class:`~tfrec.errors.DataError` naming the file, the line (Parquet: the
row and its row group) and the column.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
from pathlib import Path


from tfrec.data.table import Ratings, _from_arrow
from tfrec.errors import DataError

ROLES = ("user", "item", "rating", "timestamp")
#: The words people give each role's column, found when ``columns`` leaves the role out. A column matches
#: a word when its name, in lower case with everything but letters and digits dropped, is the word or the
#: word plus ``id``: ``Customer ID``, ``customer_id``, ``customerId`` and ``customer`` all name users.
KNOWN_NAMES = {
    "user": ("user", "customer", "client", "buyer", "member", "reviewer", "account", "visitor", "listener",
             "reader", "viewer", "player", "uid"),
    "item": ("item", "movie", "product", "sku", "article", "track", "song", "book", "business", "asin", "isbn",
             "recipe", "game", "video", "iid"),
    "rating": ("rating", "userrating", "starrating", "stars", "star", "score", "value", "overall", "grade"),
    "timestamp": ("timestamp", "time", "ts", "date", "datetime", "unixreviewtime"),
}  # fmt: skip


def named_as(name: str, role: str) -> bool:
    """Whether column ``name`` is one of :data:`KNOWN_NAMES`' names for ``role``, the last part of a nested
    name (``data/user_id``) compared in lower case, letters and digits only, with or without ``id``."""
    word = re.sub(r"[^0-9a-z]", "", str(name).rsplit("/", 1)[-1].lower())
    return word in KNOWN_NAMES[role] or (word.endswith("id") and word[:-2] in KNOWN_NAMES[role])


DELIMITED = (".csv", ".tsv", ".txt", ".dat")
PARQUET = (".parquet", ".pq")
JSON_LINES = (".jsonl", ".ndjson", ".json")
SUFFIXES = DELIMITED + PARQUET + JSON_LINES


def looks_like_file(name: str) -> bool:
    """Whether ``name`` ends like a file :func:`load_file` reads (it may not exist)."""
    return _suffix(Path(name)) in SUFFIXES


def parse_columns(spec) -> dict[str, str]:
    """``"user=buyer,item=sku"`` (or a dict) -> ``{"user": "buyer", "item": "sku"}``; roles checked."""
    if spec is None or isinstance(spec, dict):
        chosen = dict(spec or {})
    else:
        chosen = {}
        for part in filter(None, str(spec).split(",")):
            role, sep, column = part.partition("=")
            if not sep or not column:
                raise DataError(f"columns: {part!r} is not ROLE=COLUMN (roles: {', '.join(ROLES)})")
            chosen[role.strip()] = column.strip()
    unknown = sorted(set(chosen) - set(ROLES))
    if unknown:
        raise DataError(f"columns: unknown role {unknown[0]!r}; roles: {', '.join(ROLES)}")
    return chosen


def load_file(
    path: str | os.PathLike, columns=None, *, delimiter: str | None = None, header: bool | None = None
) -> Ratings:
    """Reads a ratings or interactions file into a table.

    Args:
      path: A ``.csv``, ``.tsv``, ``.txt``, ``.dat``, ``.parquet``, ``.jsonl``/``.ndjson`` file; the
        text formats may end in ``.gz``.
      columns: ``{"user": COL, "item": COL, "rating": COL, "timestamp": COL}`` or the same as
        ``"user=COL,item=COL,..."``; roles left out are found by name (:data:`KNOWN_NAMES`). In a
        file without a header, COL is a column number counted from 1.
      delimiter: Of a delimited file; default sniffed from its first lines (tab for ``.tsv``).
      header: Whether a delimited file's first line names its columns; default: guessed (it holds a
        known column name, or text above numbers).

    Raises:
      DataError: the file cannot be read, a column is missing or ambiguous, or a value is bad.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        chosen = parse_columns(columns)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    suffix = _suffix(path)
    first_line = 1  # the line of the first data row (Parquet: none)
    if suffix in PARQUET:
        table, numbered, first_line = _read_parquet(path), False, None
    elif suffix in JSON_LINES:
        table, numbered = _read_json(path), False
    elif suffix in DELIMITED:
        table, numbered = _read_delimited(path, chosen, delimiter, header)
        first_line = 1 if numbered else 2
    else:
        raise DataError(
            f"{path}: unknown format {suffix!r}; use one of {', '.join(SUFFIXES)} (text formats may be .gz)"
        )
    roles = _roles(path, table.column_names, chosen, numbered)
    took = ", ".join(f"{role}={column}" for role, column in roles.items() if column is not None)
    source = f"{path} ({took}{'' if roles['rating'] else '; no rating column: interactions'})"
    return _from_arrow(
        table, **roles, name=path.name.split(".")[0], source=source, label=str(path),
        where=lambda row: _where(path, row, first_line),
    )  # fmt: skip


def column_names(path: str | os.PathLike) -> list[str]:
    """The column names of a file :func:`load_file` reads, from its header (Parquet: its schema; JSON Lines:
    its first record); ``[]`` for a delimited file without a header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = _suffix(path)
    if suffix in PARQUET:
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    if suffix in JSON_LINES:
        import json

        first = _sample(path).lstrip().splitlines()[0]
        try:
            return list(json.loads(first))
        except (ValueError, TypeError):
            raise DataError(f"{path}, line 1: not a JSON object") from None
    sample = _sample(path)
    rows = [r for r in csv.reader(io.StringIO(sample), delimiter=_sniff(path, sample, None)) if r][:50]
    header = _has_header(rows) if len(rows) > 1 else not _is_number(rows[0][-1])
    return [f.strip() for f in rows[0]] if header else []


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _opener(path: Path):
    return gzip.open if path.suffix.lower() == ".gz" else open


def _sample(path: Path, size: int = 65536) -> str:
    try:
        with _opener(path)(path, "rb") as f:
            raw = f.read(size)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    text = raw.decode("utf-8-sig", "replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # old Mac line ends too (pyarrow reads them)
    if len(raw) == size:  # a partial last line would mislead the sniffer
        text = text[: text.rfind("\n") + 1] or text
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    return text


def _sniff(path: Path, sample: str, delimiter: str | None) -> str:
    if delimiter is not None:
        return "\t" if delimiter in ("\\t", "tab") else delimiter
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;| ").delimiter
    except csv.Error:
        return "\t" if _suffix(path) == ".tsv" else ","


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _has_header(rows: list[list[str]]) -> bool:
    """A known column name in the first line, or a column with text above numbers."""
    first, rest = rows[0], rows[1:]
    if any(named_as(field.strip(), role) for field in first for role in ROLES):
        return True
    for k, field in enumerate(first):
        below = [row[k] for row in rest if len(row) > k]
        if below and not _is_number(field) and all(_is_number(v) for v in below):
            return True
    return False


def _read_delimited(path: Path, chosen: dict, delimiter: str | None, header: bool | None):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    options, header = delimited_options(path, chosen, delimiter, header)
    try:
        table = pcsv.read_csv(path, **options)
    except (pa.ArrowInvalid, pa.ArrowKeyError, OSError, EOFError) as e:
        raise DataError(f"{path}: {bad_delimited(path, options, e)}") from None
    if header:
        table = table.rename_columns([c.strip() for c in table.column_names])
    return table, not header


def delimited_options(path: Path, chosen: dict, delimiter: str | None, header: bool | None) -> tuple[dict, bool]:
    """``(options, header)``: pyarrow's CSV reader's ``read_options``, ``parse_options`` and
    ``convert_options`` for a delimited file (the delimiter sniffed, the header guessed, ids read as text,
    only the columns of ``chosen``'s roles and the ones found by name), and whether it has a header."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    sample = _sample(path)
    delimiter = _sniff(path, sample, delimiter)
    rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if r][:50]
    if header is None:
        header = _has_header(rows) if len(rows) > 1 else not _is_number(rows[0][-1])
    if header and len(rows) == 1 and sample.count("\n") <= 1:
        raise DataError(f"{path}: only a header line, no rows")
    names = [f.strip() for f in rows[0]] if header else [str(k + 1) for k in range(len(rows[0]))]
    raw = dict(zip(names, rows[0] if header else names))  # the reader sees "user, item" with its spaces
    roles = _roles(path, names, chosen, numbered=not header)
    text_columns = {raw[roles[r]]: pa.string() for r in ("user", "item") if roles.get(r) is not None}
    read = pcsv.ReadOptions(column_names=None if header else names, block_size=1 << 24)
    # Only an empty field is missing: "nan" in a rating column is a NaN (and refused as one), "NA" an id.
    convert = pcsv.ConvertOptions(
        column_types=text_columns, null_values=[""], strings_can_be_null=False,
        include_columns=[raw[c] for c in roles.values() if c],
    )  # fmt: skip
    parse = pcsv.ParseOptions(delimiter=delimiter)
    return {"read_options": read, "parse_options": parse, "convert_options": convert}, header


def bad_delimited(path: Path, options: dict, error) -> str:
    """What to say of a delimited file pyarrow refused: its first line with a wrong number of fields, else
    pyarrow's own message."""
    return _first_bad_line(path, options["parse_options"].delimiter) or str(error)


def _first_bad_line(path: Path, delimiter: str) -> str | None:
    """The first line with another number of fields than the first (what the CSV reader refused), or None."""
    width = None
    try:
        with _opener(path)(path, "rt", encoding="utf-8-sig", newline="") as f:
            for number, row in enumerate(csv.reader(f, delimiter=delimiter), 1):
                width = width or len(row)
                if row and len(row) != width:
                    return f"line {number}: expected {width} fields, got {len(row)}"
    except (OSError, EOFError, csv.Error, UnicodeDecodeError) as e:
        return f"cannot read: {e}"
    return None


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file; one message names it
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None


def _read_json(path: Path):
    import pyarrow as pa
    import pyarrow.json as pjson

    try:
        return pjson.read_json(path)
    except (pa.ArrowInvalid, OSError, EOFError) as e:
        raise DataError(f"{path}: not JSON Lines ({e})") from None


def roles_by_name(label, names: list[str], chosen: dict) -> dict:
    """The columns (or features) for each role: ``chosen`` first, then :data:`KNOWN_NAMES`, also as the
    last part of a nested name (``data/user_id``); one error for a missing or ambiguous one."""
    return _roles(label, names, chosen, numbered=False)


def _roles(path: Path, names: list[str], chosen: dict, numbered: bool) -> dict:
    """``{"user": column, "item": column, "rating": column or None, "timestamp": column or None}``."""
    listed = ", ".join(names)
    roles = {}
    for role in ROLES:
        if role in chosen:
            column = chosen[role]
            if column not in names:
                what = f"column number (1..{len(names)})" if numbered else "column"
                raise DataError(f"{path}: no {what} {column!r} for {role}; columns: {listed}")
            roles[role] = column
            continue
        if numbered:  # positions: user, item, then rating and timestamp if there are columns for them
            position = ROLES.index(role)
            roles[role] = names[position] if position < len(names) and not chosen else None
            continue
        found = [n for n in names if named_as(n, role)]
        if len(found) > 1:
            raise DataError(
                f"{path}: columns {', '.join(found)} could each be the {role}; choose with --columns {role}=COL"
            )
        roles[role] = found[0] if found else None
    for role in ("user", "item"):
        if roles[role] is None:
            raise DataError(
                f"{path}: no {role} column (looked for {', '.join(KNOWN_NAMES[role])}, each also with _id); "
                f"columns: {listed}; "
                f"name it with --columns {role}=COL"
            )
    taken = [c for c in roles.values() if c is not None]
    if len(set(taken)) != len(taken):
        raise DataError(f"{path}: one column serves two roles: {roles}")
    return roles


def _where(path: Path | None, row: int, first_line: int | None) -> str:
    """Where data row ``row`` (0-based) is: its line in a text file, its row group in Parquet, else its row."""
    if first_line is not None:
        return f"line {row + first_line}"
    if path is not None and _suffix(path) in PARQUET:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        start = 0
        for group in range(meta.num_row_groups):
            size = meta.row_group(group).num_rows
            if row < start + size:
                return f"row {row} (row group {group})"
            start += size
    return f"row {row}"
