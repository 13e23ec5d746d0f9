"""NCF (MLP, GMF, NeuMF) as PyTorch code writes it: per-branch ``nn.Embedding`` tables, an
``nn.Sequential`` MLP tower of Linear and ReLU, and a Linear output."""

from __future__ import annotations

import re

import numpy as np
from tfrec._keras import tf

from tfrec.convert.layouts import NUMPY_ACTIVATIONS, Layout, as_float64, assign_linear, assign_table, rename, tensor

#: Names of an ``nn.Sequential`` (or ``nn.ModuleList``) MLP tower: its Linear layers become ``tower.{2k}``.
TOWERS = ("tower", "MLP_layers", "mlp_layers", "mlp", "fc_layers", "layers")
#: A one-branch MLP model (the MLP-NCF tutorials) names its tables plainly.
MLP_TABLES = {"user_mlp.weight": ("user_embedding.weight", "embed_user.weight"),
              "item_mlp.weight": ("item_embedding.weight", "embed_item.weight")}  # fmt: skip


class NCF(Layout):
    """``user_gmf``/``item_gmf``/``user_mlp``/``item_mlp`` tables, ``tower.{2k}`` Linear layers, ``output``."""

    names = {
        **{
            f"{who}_{branch.lower()}.weight": (
                f"embed_{who}_{branch}.weight",
                f"{who}_{branch.lower()}_embedding.weight",
                f"{who}_embedding_{branch.lower()}.weight",
                f"{branch.lower()}_{who}.weight",
            )
            for who in ("user", "item")
            for branch in ("GMF", "MLP")  # the two branches' tables (NeuMF has both)
        },  # fmt: skip
        **{
            f"output.{p}": (f"predict_layer.{p}", f"affine_output.{p}", f"output_layer.{p}", f"out.{p}")
            for p in ("weight", "bias")
        },
    }

    def canonical(self, state):
        """Aliases renamed, and the tower's Linear layers renumbered ``tower.0, tower.2, ...`` in their order."""
        state = rename(super().canonical(state), MLP_TABLES)
        for prefix in TOWERS:
            pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.(weight|bias)")
            matches = {k: m for k in state if (m := pattern.fullmatch(k))}
            linear = sorted({int(m[1]) for k, m in matches.items() if m[2] == "weight" and np.ndim(state[k]) == 2})
            if linear:
                position = {index: 2 * k for k, index in enumerate(linear)}
                return {
                    f"tower.{position[int(m[1])]}.{m[2]}" if (m := matches.get(k)) and int(m[1]) in position else k: v
                    for k, v in state.items()
                }
        return state

    def sizes(self, cls, state):
        sizes, k = {}, 0
        if "user_mlp.weight" in state:
            sizes["dim"] = tensor(state, "user_mlp.weight", (None, None)).shape[1]
        if "user_gmf.weight" in state:
            gmf = tensor(state, "user_gmf.weight", (None, None)).shape[1]
            sizes["gmf_dim" if "dim" in sizes else "dim"] = gmf
        layers = []
        while f"tower.{k}.weight" in state:
            layers.append(tensor(state, f"tower.{k}.weight", (None, None)).shape[0])
            k += 2
        return {**sizes, "layers": layers} if layers else sizes

    def assign(self, model, state):
        for name in ("user_gmf", "item_gmf", "user_mlp", "item_mlp"):
            if hasattr(model, name):
                assign_table(getattr(model, name), state, f"{name}.weight")
        if hasattr(model, "tower"):
            dense = [layer for layer in model.tower.layers if isinstance(layer, tf.keras.layers.Dense)]
            for k, layer in enumerate(dense):
                assign_linear(layer, state, f"tower.{2 * k}")
        assign_linear(model.output_layer, state, "output")

    def scores(self, model, state, users, items):
        """GMF product, MLP tower (``activation`` per layer), Linear output; a sigmoid for implicit feedback."""
        w = as_float64(state)
        has_gmf, has_mlp = model.branches(model.variant)
        branches = []
        if has_gmf:
            branches.append(w["user_gmf.weight"][users] * w["item_gmf.weight"][items])
        if has_mlp:
            x = np.concatenate([w["user_mlp.weight"][users], w["item_mlp.weight"][items]], axis=1)
            for k in range(len(model.layer_sizes)):
                x = NUMPY_ACTIVATIONS[model.activation](x @ w[f"tower.{2 * k}.weight"].T + w[f"tower.{2 * k}.bias"])
            branches.append(x)
        y = np.concatenate(branches, axis=1) @ w["output.weight"].T[:, 0] + w["output.bias"][0]
        return 1 / (1 + np.exp(-y)) if model.feedback == "implicit" else y
