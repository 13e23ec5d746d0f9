"""AutoRec as the tutorials write it: ``encoder`` and ``decoder`` ``nn.Linear`` layers over each
item's (I-AutoRec) or user's (U-AutoRec) rating vector."""

from __future__ import annotations

import numpy as np

from tfrec.convert.layouts import NUMPY_ACTIVATIONS, Layout, as_float64, assign_linear, tensor
from tfrec.errors import DataError


class AutoRec(Layout):
    def sizes(self, cls, state):
        return {"hidden": tensor(state, "encoder.weight", (None, None)).shape[0]}

    def assign(self, model, state):
        assign_linear(model.encoder, state, "encoder")
        assign_linear(model.decoder, state, "decoder")

    def build(self, cls, state, user_vocabulary, item_vocabulary, ratings=None, **kwargs):
        """AutoRec predicts from the known ratings of each item (or user): ``ratings`` is that table."""
        if ratings is None:
            raise DataError("AutoRec predicts from each row's known ratings: give them (ratings=TABLE, --ratings FILE)")
        model = super().build(cls, state, user_vocabulary, item_vocabulary, **kwargs)
        model.set_ratings(ratings)
        return model

    def scores(self, model, state, users, items):
        """``g(W f(V r + mu) + b)`` in numpy over the stored rating vectors (zeros where unobserved)."""
        rows, columns = (items, users) if model.kind == "item" else (users, items)
        splits = model.row_splits.numpy()
        vectors = np.zeros((len(splits) - 1, model.width))
        vectors[np.repeat(np.arange(len(splits) - 1), np.diff(splits)), model.columns.numpy()] = model.values.numpy()
        w = as_float64(state)
        encode, decode = (NUMPY_ACTIVATIONS[a] for a in (model.encoder_activation, model.decoder_activation))
        hidden = encode(vectors[rows] @ w["encoder.weight"].T + w["encoder.bias"])
        return decode(np.einsum("nh,nh->n", hidden, w["decoder.weight"][columns]) + w["decoder.bias"][columns])
