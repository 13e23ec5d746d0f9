"""Matrix factorization and biased MF as the tutorials write them: ``nn.Embedding`` user and item
factors (and one-wide bias tables), a dot product (plus the biases and a mean)."""

from __future__ import annotations

import numpy as np

from tfrec.convert.layouts import Layout, assign_table, tensor
from tfrec.errors import DataError


class MF(Layout):
    names = {
        f"{who}_factors.weight": tuple(
            f"{n}{suffix}"
            for n in (f"{who}_embedding", f"{who}_embeddings", f"{who}_emb", f"embed_{who}", f"{who}_factors", letter)
            for suffix in (".weight", "")
        )
        for who, letter in (("user", "P"), ("item", "Q"))
    }

    def sizes(self, cls, state):
        return {"dim": tensor(state, "user_factors.weight", (None, None)).shape[1]}

    def assign(self, model, state):
        for name in ("user_factors", "item_factors"):
            assign_table(getattr(model, name), state, f"{name}.weight")

    def scores(self, model, state, users, items):
        p, q = (np.asarray(state[f"{w}_factors.weight"], np.float64) for w in ("user", "item"))
        return np.einsum("nk,nk->n", p[users], q[items])


class BiasedMF(MF):
    names = {
        **MF.names,
        **{
            f"{who}_bias.weight": tuple(
                f"{n}{suffix}"
                for n in (f"{who}_biases", f"{who}_bias", f"bias_{who}", f"{who}_b", letter)
                for suffix in (".weight", "")
            )
            for who, letter in (("user", "bu"), ("item", "bi"))
        },
        "global_bias": ("global_bias.weight", "global_mean", "mu", "mean", "bias"),
    }

    def assign(self, model, state):
        super().assign(model, state)
        for name in ("user_bias", "item_bias"):
            assign_table(getattr(model, name), state, f"{name}.weight")

    def build(self, cls, state, user_vocabulary, item_vocabulary, global_mean=None, **kwargs):
        """A scalar ``global_bias`` tensor (an ``nn.Parameter`` mean), if there is one, is added to ``global_mean``.

        Without one, ``global_mean`` must be given: tutorial biased MFs add the training mean outside
        their weights (``self.mean = train.rating.mean()``), and a silent 0 would import a model that
        predicts ratings short by exactly that mean. ``global_mean=0`` says the model adds none.
        """
        if "global_bias" in state:
            value = np.asarray(state["global_bias"], np.float64)
            if value.size != 1:
                raise DataError(f"tensor 'global_bias' has shape {list(value.shape)}, not one number")
            global_mean = (global_mean or 0.0) + float(value.reshape(()))
        elif global_mean is None:
            raise DataError(
                "no global mean among the weights (a global_bias, mu or mean tensor), and a biased MF usually adds "
                "its training mean outside them: give it with --global-mean MEAN or --global-mean-from "
                "RATINGS_FILE (Python: global_mean=MEAN), or --global-mean 0 if the model adds none"
            )
        return super().build(cls, state, user_vocabulary, item_vocabulary, global_mean=global_mean, **kwargs)

    def scores(self, model, state, users, items):
        bu, bi = (np.asarray(state[f"{w}_bias.weight"], np.float64).reshape(-1) for w in ("user", "item"))
        return model.global_mean + bu[users] + bi[items] + super().scores(model, state, users, items)
