"""Fields for factorization machines: each id or side feature as tokens, a vocabulary, and feature slots.

A factorization machine sees a rating as a sparse vector over *features*: one
per user id, movie id, age bucket, occupation, ... value. Features come in
*fields* (``user_id``, ``bucketized_user_age``, ``movie_genres``, ...), named as
in TensorFlow Datasets' MovieLens. This module is the numpy side of that
encoding, shared by the models (``tfrec.models.fm``), the parity references and
the tests:

- Every field value becomes string *tokens* (:func:`tokens`): ids and
  categorical labels as themselves, the float age bucket as its integer
  (``"25"``), the gender as ``"0"``/``"1"``, the zip code as its first
  :data:`ZIP_PREFIX` characters, and ``movie_genres`` as one token per genre
  index (a multi-hot field).
- A field's vocabulary is its sorted training tokens; token ``t`` is local row
  ``1 + position`` and anything else row 0, the out-of-vocabulary row, which
  always has value 0 (an unknown value contributes nothing), as
  ``tf.keras.layers.StringLookup`` numbers it.
- A rating is a fixed number of *slots* ``(global row, value)``: one per
  single-valued field (value 1) and :func:`field_width` per multi-hot field
  (value ``1 / number of genres``, libFM's normalisation, padded with row 0).

MovieLens' side features belong to a user or a movie, so a model holds each
known user's and movie's slots (:func:`side_slots`) and needs only the ids to
score a pair.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import numpy as np

from tfrec.data.table import RaggedColumn, Ratings
from tfrec.errors import DataError

ZIP_PREFIX = 2  # "55" of "55455": 100 regions of the US zip code map
MULTI_HOT = ("movie_genres",)
ID_FIELDS = ("user_id", "movie_id")
MAX_MULTI_HOT = 64  # wider lists are cut (MovieLens has at most 6 genres per movie)


def token(field: str, value) -> str:
    """One field value as the string token its vocabulary holds (see the module docstring)."""
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8", "replace")
    if field == "user_zip_code":
        return str(value).strip()[:ZIP_PREFIX]
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value))
    return str(value)


def side(table: Ratings, field: str) -> str:
    """``"user"`` or ``"item"``: whose feature ``field`` is."""
    if field == "user_id" or field in table.user_features:
        return "user"
    if field == "movie_id" or field in table.item_features:
        return "item"
    features = ", ".join((*ID_FIELDS, *table.user_features, *table.item_features))
    raise DataError(f"{table.name}: no field {field!r}; it has {features}")


def check_fields(table: Ratings, fields: Sequence[str]) -> tuple[str, ...]:
    """The field names, checked: known to the table, no repeats, at least one."""
    fields = tuple(fields)
    if not fields:
        raise DataError("fields: give at least one field")
    repeated = sorted({f for f in fields if fields.count(f) > 1})
    if repeated:
        raise DataError(f"fields: {', '.join(repeated)} given twice")
    for field in fields:
        side(table, field)
    return fields


def id_tokens(table: Ratings, field: str, positions: np.ndarray) -> list[list[str]]:
    """Each table user (or item) position's tokens of ``field``: a list of one token, or several (genres)."""
    if field == "user_id":
        return [[str(v)] for v in table.user_ids[positions]]
    if field == "movie_id":
        return [[str(v)] for v in table.item_ids[positions]]
    column = table.user_features.get(field, table.item_features.get(field))
    if isinstance(column, RaggedColumn):
        return [[token(field, v) for v in column.row(p)[:MAX_MULTI_HOT]] for p in positions]
    return [[token(field, column[p])] for p in positions]


def side_tokens(train: Ratings, fields: Sequence[str]) -> dict:
    """The constructor arguments a field model takes from a training table.

    Returns ``{"user_vocabulary", "item_vocabulary", "user_side", "item_side"}``:
    the id vocabularies (ids with training ratings, sorted) and, per field of each
    side, every vocabulary id's tokens (``{field: [[token, ...], ...]}``).
    """
    fields = check_fields(train, fields)
    users, items = np.unique(train.user), np.unique(train.item)
    out = {
        "user_vocabulary": train.user_ids[users].tolist(),
        "item_vocabulary": train.item_ids[items].tolist(),
        "user_side": {},
        "item_side": {},
    }
    for field in fields:
        who = side(train, field)
        out[f"{who}_side"][field] = id_tokens(train, field, users if who == "user" else items)
    return out


def vocabulary(per_id_tokens: Iterable[Sequence[str]]) -> list[str]:
    """A field's vocabulary: its distinct tokens, sorted."""
    return sorted({t for row in per_id_tokens for t in row})


def field_width(field: str, per_id_tokens: Sequence[Sequence[str]]) -> int:
    """Slots a field takes: 1, or the most tokens any id has for a multi-hot field (at least 1)."""
    if field not in MULTI_HOT:
        return 1
    return max(1, max((len(row) for row in per_id_tokens), default=1))


def side_slots(per_id: Sequence[Sequence[Sequence[str]]], vocabularies, widths, offsets):
    """``(rows, values)``, each ``[ids + 1, sum(widths)]``, of one side's fields for every vocabulary id.

    ``per_id[f][r]`` is id ``r``'s tokens of field ``f``. Row 0 is an unknown
    id: all slots at row 0 with value 0. A token outside the field's vocabulary
    also takes row 0 with value 0.
    """
    n = len(per_id[0]) if per_id else 0
    rows = np.zeros((n + 1, int(sum(widths))), np.int64)
    values = np.zeros((n + 1, int(sum(widths))), np.float32)
    start = 0
    for tokens_of, vocab, width, offset in zip(per_id, vocabularies, widths, offsets):
        position = {t: k + 1 for k, t in enumerate(vocab)}
        for r, row_tokens in enumerate(tokens_of, start=1):
            local = [position.get(t, 0) for t in row_tokens[:width]]
            known = [k for k in local if k]
            for j, k in enumerate(known):
                rows[r, start + j] = offset + k
                values[r, start + j] = 1.0 / len(known) if width > 1 or len(known) > 1 else 1.0
        start += width
    return rows, values


def layout(fields: Sequence[str], user_side: dict, item_side: dict):
    """Vocabularies, slot widths, global row offsets and each slot's field index, in ``fields`` order.

    Field ``f`` owns global rows ``offsets[f] .. offsets[f] + len(vocabularies[f])`` (its row 0
    first); ``total`` rows in all.
    """
    vocabularies, widths, offsets = [], [], []
    total = 0
    for field in fields:
        per_id = user_side[field] if field in user_side else item_side[field]
        vocabularies.append(vocabulary(per_id))
        widths.append(field_width(field, per_id))
        offsets.append(total)
        total += len(vocabularies[-1]) + 1
    return vocabularies, widths, offsets, total


class Slots(NamedTuple):
    """Everything a field model derives from its fields and held side features (numpy)."""

    vocabularies: dict  # field -> sorted tokens
    widths: dict  # field -> slots
    offsets: dict  # field -> the global row of its out-of-vocabulary row
    features: int  # global rows in all
    user_fields: tuple  # the fields held per user, in ``fields`` order (their slots come first)
    item_fields: tuple
    user_slots: tuple  # (rows, values), each [users + 1, user slots]
    item_slots: tuple
    slot_field: np.ndarray  # each slot's index in ``fields``


def slots(fields: Sequence[str], user_side: dict, item_side: dict) -> Slots:
    """The slot layout of ``fields`` and every known user's and item's slots."""
    vocabularies, widths, offsets, total = layout(fields, user_side, item_side)
    vocabularies, widths, offsets = (dict(zip(fields, x)) for x in (vocabularies, widths, offsets))
    user_fields = tuple(f for f in fields if f in user_side)
    item_fields = tuple(f for f in fields if f in item_side)
    held = []
    for names, per_side in ((user_fields, user_side), (item_fields, item_side)):
        held.append(side_slots([per_side[f] for f in names], [vocabularies[f] for f in names],
                               [widths[f] for f in names], [offsets[f] for f in names]))  # fmt: skip
    slot_field = np.array([fields.index(f) for f in (*user_fields, *item_fields) for _ in range(widths[f])], np.int64)
    return Slots(vocabularies, widths, offsets, total, user_fields, item_fields, held[0], held[1], slot_field)
