"""From a trained PyTorch model's weights to a tfrec model that predicts the same, checked.

    model = tfrec.convert.from_torch("mf.safetensors", "biased-mf", users="users.txt", items="items.txt")
    tfrec.export.save(model, "models/mf/1")
    report = tfrec.convert.verify("models/mf/1", model, state=..., pairs=...)   # or `tfrec import-torch`

The weights are read without running code (:func:`read_weights`). Each model family has a
PyTorch layout (:mod:`tfrec.convert.layouts`, one module per family): the tensor names of tfrec's
own references (``parity/reference``) and the names the common tutorials give them (``names``;
``nn.Sequential`` towers are renumbered), the sizes read off the shapes, and how each tensor
becomes a tfrec weight (``assign``): an ``nn.Embedding`` table ``[V, k]`` becomes rows 1..V of tfrec's table,
whose row 0 stays the unseen-id row; an ``nn.Linear`` weight ``[out, in]`` is transposed into a
Keras kernel ``[in, out]``; a scalar global bias is added to the model's ``global_mean``. Any other
name is mapped with ``mapping`` (``--map THEIR_NAME=TFREC_NAME``). A tensor that is missing, left
over or of the wrong shape is one error naming it.

The PyTorch model knows rows, not ids: the id maps (one raw id per line in row order, a two-column
``id,row`` CSV, or a Python sequence) become the model's vocabularies, so the model and its
SavedModel answer raw ids, and an id outside them is answered as tfrec answers unseen ids.
The converted model does not clip (PyTorch models do not); pass ``rating_range=(low, high)`` to clip.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from tfrec import families
from tfrec.convert import layouts
from tfrec.convert.weights import read_weights
from tfrec.errors import DataError

__all__ = ["from_torch", "load_state", "read_ids", "read_weights", "parse_mapping"]


def read_ids(source, label: str = "ids") -> list[str]:
    """An id map: the raw id of row 0, 1, 2... of a PyTorch table.

    Args:
      source: A file with one id per line in row order, a CSV file of ``id,row`` pairs (a header
        line is allowed; rows 0..n-1 each once, in any order), or a sequence of ids.
      label: What the ids are, for messages (``users``, ``items``).

    Raises:
      DataError: an empty map, a repeated id or row, a gap in the rows; the message names the file and line.
    """
    if not isinstance(source, (str, os.PathLike)):
        ids = [str(i) for i in source]
        where = f"the {label} id map"
    else:
        where = os.fspath(source)
        if not os.path.isfile(where):
            raise DataError(f"{where}: no such file (the {label} id map)")
        with open(where, encoding="utf-8") as f:
            lines = [line.rstrip("\r\n") for line in f]
        while lines and not lines[-1].strip():
            lines.pop()
        ids = _rows_in_order(where, lines) if lines and "," in lines[-1] else [line.strip() for line in lines]
        for number, value in enumerate(ids, 1):
            if not value:
                raise DataError(f"{where}, line {number}: an empty id")
    if not ids:
        raise DataError(f"{where}: no ids")
    seen = {}
    for row, value in enumerate(ids):
        if value in seen:
            raise DataError(f"{where}: id {value!r} is both row {seen[value]} and row {row}")
        seen[value] = row
    return ids


def _rows_in_order(where: str, lines: list[str]) -> list[str]:
    """The ids of an ``id,row`` CSV in row order."""
    by_row = {}
    for number, line in enumerate(lines, 1):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2:
            raise DataError(f"{where}, line {number}: expected 'id,row', got {line!r}")
        if number == 1 and not parts[1].lstrip("-").isdigit():
            continue  # a header
        if not parts[1].isdigit():
            raise DataError(f"{where}, line {number}: row {parts[1]!r} is not a non-negative integer")
        row = int(parts[1])
        if row in by_row:
            raise DataError(f"{where}, line {number}: row {row} appears twice")
        by_row[row] = parts[0]
    missing = sorted(set(range(len(by_row))) - set(by_row))
    if missing:
        raise DataError(f"{where}: rows run to {max(by_row)} but row {missing[0]} has no id")
    return [by_row[r] for r in range(len(by_row))]


def parse_mapping(items) -> dict[str, str]:
    """``["THEIR=TFREC", ...]`` (``--map``) or a dict, as ``{their name: tfrec name}``."""
    if isinstance(items, Mapping):
        return dict(items)
    mapping = {}
    for item in items or ():
        their, sep, ours = item.partition("=")
        if not sep or not their or not ours:
            raise DataError(f"--map {item!r}: expected THEIR_NAME=TFREC_NAME")
        mapping[their] = ours
    return mapping


class _Recorded(dict):
    """A state dict that remembers which tensors were read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def __getitem__(self, name):
        self.read.add(name)
        return super().__getitem__(name)


def canonical_state(weights, model, mapping=None) -> tuple[dict, str]:
    """``(state, source)``: the tensors under tfrec's names for a family, and where they came from.

    ``model``: a registered model name or a tfrec model class.
    """
    if isinstance(weights, Mapping):
        source = "the state dict"
        state = {str(k): _array(v) for k, v in weights.items()}
    else:
        source = os.fspath(weights)
        state = read_weights(weights)
    for their, ours in parse_mapping(mapping).items():
        if their not in state:
            raise DataError(f"{source}: --map {their}={ours}: no tensor {their!r} (it has {', '.join(sorted(state))})")
        state[ours] = state.pop(their)
    cls = families.model_class(model) if isinstance(model, str) else model
    return layouts.layout(cls).canonical(state), source


def from_torch(weights, model: str, users, items, *, mapping=None, **kwargs):
    """A tfrec model with a trained PyTorch model's weights (see the module docstring).

    Args:
      weights: A weights file (:func:`read_weights`) or a mapping of names to arrays or tensors.
      model: A registered model name (``tfrec.families.names()``): ``mf``, ``biased-mf``, ``ncf``...
      users, items: The id maps (:func:`read_ids`).
      mapping: ``{their name: tfrec name}`` (or ``["THEIR=TFREC", ...]``) for names tfrec does not know.
      **kwargs: Model constructor arguments the weights do not give: ``global_mean`` (biased MF:
        required unless the weights hold a ``global_bias`` tensor, to which it is added),
        ``feedback="implicit"`` (NCF trained on 0/1 labels: a sigmoid output), ``rating_range``,
        ``activation``, ``item_key`` (what the export calls items: ``item_id``, the default, or
        MovieLens' ``movie_id``).

    Returns:
      The built model (not compiled), its weights those of ``weights``.

    Raises:
      DataError: a missing, unexpected or mis-shaped tensor, or an id map that does not fit a table.
    """
    cls = families.model_class(model)
    user_ids, item_ids = read_ids(users, "users"), read_ids(items, "items")
    arguments = {"item_key": "item_id", **families.family(model).variants.get(model, {}), **kwargs}

    def build(state):
        return layouts.layout(cls).build(cls, state, user_ids, item_ids, **arguments)

    return _converted(weights, cls, model, mapping, build, id_maps=(len(user_ids), len(item_ids)))


def load_state(model, weights, *, mapping=None) -> None:
    """Copies a PyTorch state dict into a built tfrec model whose sizes already match it.

    The same conversion as :func:`from_torch` (names, transposes, tfrec's row 0 for unseen ids in
    front of each table) for a model made elsewhere, e.g. ``parity``'s trajectory tier, which starts
    a tfrec model from its PyTorch reference's initial weights.

    Raises:
      DataError: a missing, unexpected or mis-shaped tensor.
    """
    cls = type(model)
    _converted(weights, cls, cls.__name__, mapping, lambda state: layouts.layout(cls).assign(model, state))


def _converted(weights, cls, name: str, mapping, load, id_maps=None):
    """``load(state)`` on the canonical state of ``weights``; every tensor must be read, once each error."""
    state, source = canonical_state(weights, cls, mapping)
    recorded = _Recorded(state)
    try:
        result = load(recorded)
    except KeyError as e:
        missing = e.args[0]
        others = layouts.layout(cls).names.get(missing, ())
        known = f" (or {', '.join(others)})" if others else ""
        raise DataError(
            f"{source}: no tensor {missing!r}{known} for {name}; it has {', '.join(sorted(state))}: "
            f"map one with --map THEIR_NAME={missing}"
        ) from None
    except DataError as e:
        message = _with_id_maps(str(e), *id_maps) if id_maps else str(e)
        raise DataError(f"{source}: {message}") from None
    left = sorted(set(state) - recorded.read)
    if left:
        unused = ", ".join(left)
        raise DataError(f"{source}: {name} does not use tensor(s) {unused}: map them with --map or remove them")
    return result


def _with_id_maps(message: str, users: int, items: int) -> str:
    return f"{message} (the id maps have {users} users and {items} items)" if "shape" in message else message


def _array(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, np.float32)
