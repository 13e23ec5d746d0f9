"""Factorization machines as the FM tutorials write them: one-hot users then items in one feature
space, ``factors`` (``[features, k]``), ``linear`` (``[features, 1]``) and a scalar ``bias``."""

from __future__ import annotations

import numpy as np

from tfrec.convert.layouts import Layout, as_float64, tensor
from tfrec.data import fields as fieldlib
from tfrec.errors import DataError

#: The buffers of tfrec's PyTorch FM (``parity/reference``): each user's and movie's feature rows and values.
SLOTS = ("user_rows", "user_values", "item_rows", "item_values")


class FM(Layout):
    """``factors.weight`` and ``linear.weight`` over the one global feature-row space, and ``bias``."""

    names = {
        "factors.weight": ("embedding.weight", "embeddings.weight", "v.weight", "V.weight", "v", "V"),
        "linear.weight": ("fc.weight", "w.weight", "w", "first_order.weight", "lin.weight"),
        "bias": ("global_bias", "w0", "bias.weight", "fc.bias"),
    }

    def sizes(self, cls, state):
        width = tensor(state, "factors.weight", (None, None)).shape[1]
        return {"dim": width // len(fieldlib.ID_FIELDS) if cls.field_aware else width}

    def build(self, cls, state, user_vocabulary, item_vocabulary, **kwargs):
        """An FM over the id fields only (the one-hot users and items of the FM tutorials)."""
        sides = {
            "user_side": {"user_id": [[u] for u in user_vocabulary]},
            "item_side": {"movie_id": [[i] for i in item_vocabulary]},
        }
        return super().build(cls, state, user_vocabulary, item_vocabulary, fields=fieldlib.ID_FIELDS, **sides, **kwargs)

    def assign(self, model, state):
        """A table of ``users + items`` rows (the FM tutorials' one-hot users then items, without tfrec's
        out-of-vocabulary rows) is placed into tfrec's feature rows: its row of user ``u`` (the id
        map's order) becomes the user field's row of ``u``'s id; the out-of-vocabulary rows stay zero."""
        for layer, name in ((model.factors, "factors.weight"), (model.linear, "linear.weight")):
            width = layer.embeddings.shape[1]
            places = _tutorial_rows(model, np.shape(state[name])[0])
            value = tensor(state, name, (model.num_features if places is None else len(places), width))
            if places is not None:
                value, placed = np.zeros((model.num_features, width), np.float32), value
                value[places] = placed
            layer.embeddings.assign(value)
        bias = np.asarray(state["bias"], np.float32)
        if bias.size != 1:
            raise DataError(f"tensor 'bias' has shape {list(bias.shape)}, not one number")
        model.bias.assign(bias.reshape(()))
        _check_slots(model, state)

    def scores(self, model, state, users, items):
        """Two one-hot fields in numpy: ``w0 + w_u + w_i + <v_u, v_i>`` (FFM: ``<v_{u,item}, v_{i,user}>``)."""
        w = as_float64({n: state[n] for n in ("factors.weight", "linear.weight")})
        v, linear = w["factors.weight"], w["linear.weight"]
        if _tutorial_rows(model, len(v)) is None:  # tfrec's rows: ids by each field's (sorted) vocabulary
            rows = {
                f: {t: model.offsets[f] + 1 + k for k, t in enumerate(model.vocabularies[f])}
                for f in fieldlib.ID_FIELDS
            }
            u = np.array([rows["user_id"][str(model.user_vocabulary[r])] for r in users])
            i = np.array([rows["movie_id"][str(model.item_vocabulary[r])] for r in items])
        else:
            u, i = users, len(model.user_vocabulary) + items
        if model.field_aware:
            shaped = v.reshape(len(v), len(fieldlib.ID_FIELDS), -1)
            pair = np.einsum("nk,nk->n", shaped[u, 1], shaped[i, 0])
        else:
            pair = np.einsum("nk,nk->n", v[u], v[i])
        return float(np.reshape(state["bias"], ())) + linear[u, 0] + linear[i, 0] + pair


def _tutorial_rows(model, rows: int):
    """Where each row of a ``users + items`` table goes in tfrec's rows; None for a table of tfrec's own rows."""
    if rows == model.num_features or rows != len(model.user_vocabulary) + len(model.item_vocabulary):
        return None
    places = []
    for field, ids in (("user_id", model.user_vocabulary), ("movie_id", model.item_vocabulary)):
        position = {token: k for k, token in enumerate(model.vocabularies[field])}
        places += [model.offsets[field] + 1 + position[str(i)] for i in ids]
    return np.array(places, np.int64)


def _check_slots(model, state) -> None:
    """A state dict that carries its feature layout (the reference's buffers) must carry this model's.

    They are data, not weights: an FM whose users and movies have other features (or other
    ids, or another order) would put each weight on another feature, so a difference is an error.
    """
    mine = dict(zip(SLOTS, (a.numpy() for a in model.feature_slots())))
    for name in SLOTS:
        if name not in state:
            continue
        theirs = np.asarray(state[name])
        if theirs.shape != mine[name].shape or not np.array_equal(theirs.astype(mine[name].dtype), mine[name]):
            raise DataError(
                f"tensor {name!r} (the feature layout, shape {list(theirs.shape)}) is not this model's "
                f"(shape {list(mine[name].shape)}): the PyTorch FM was built over other features, ids or id order"
            )
