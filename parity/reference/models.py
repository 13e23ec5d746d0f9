"""The PyTorch models tfrec ports, written as the PyTorch tutorials write them.

Each takes integer row numbers (users and items numbered by their rank among
the training ids, tfrec's lookup index minus one) and returns raw predictions;
none clips. Initialisation is PyTorch's own (``nn.Embedding``: N(0, 1),
``nn.Linear``: Kaiming-uniform) except the embedding std, which a case sets,
and the output bias of NCF and AutoRec, which starts at the training mean as in
tfrec (a rating model whose output starts at 0 spends its first epochs climbing
to 3.5). The trajectory tier copies these initial weights into the TensorFlow
model; the metric tier lets each framework draw its own.
"""

from __future__ import annotations

import torch
from torch import nn


class MF(nn.Module):
    """``p_u . q_i`` (the classic PyTorch MF blog posts)."""

    def __init__(self, users: int, items: int, dim: int, l2: float = 0.0, std: float = 1.0):
        super().__init__()
        self.user_factors = nn.Embedding(users, dim)
        self.item_factors = nn.Embedding(items, dim)
        nn.init.normal_(self.user_factors.weight, 0.0, std)
        nn.init.normal_(self.item_factors.weight, 0.0, std)
        self.l2 = l2

    def forward(self, users, items):
        return (self.user_factors(users) * self.item_factors(items)).sum(dim=1)

    def penalty(self, users, items):
        """``l2 * sum of squares of the looked-up rows / batch``: tfrec's per-batch L2."""
        rows = [self.user_factors(users), self.item_factors(items)]
        return self.l2 * sum((r**2).sum() for r in rows) / len(users)


class BiasedMF(MF):
    """``mu + b_u + b_i + p_u . q_i`` with zero-initialised one-dimensional bias embeddings."""

    def __init__(self, users: int, items: int, dim: int, mean: float, l2: float = 0.0, std: float = 1.0):
        super().__init__(users, items, dim, l2, std)
        self.user_bias = nn.Embedding(users, 1)
        self.item_bias = nn.Embedding(items, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.mean = mean

    def forward(self, users, items):
        biases = (self.user_bias(users) + self.item_bias(items)).squeeze(1)
        return self.mean + biases + super().forward(users, items)

    def penalty(self, users, items):
        rows = [self.user_bias(users), self.item_bias(items)]
        return super().penalty(users, items) + self.l2 * sum((r**2).sum() for r in rows) / len(users)


class NCF(nn.Module):
    """NCF (He et al. 2017): the GMF branch, the MLP branch or both (NeuMF), fused by one Linear output."""

    def __init__(
        self, users: int, items: int, gmf: bool, mlp: bool, dim: int, layers, l2: float = 0.0, std: float = 0.01,
        mean=0.0,
    ):  # fmt: skip
        super().__init__()
        self.gmf, self.mlp, self.l2 = gmf, mlp, l2
        width = 0
        if gmf:
            self.user_gmf, self.item_gmf = nn.Embedding(users, dim), nn.Embedding(items, dim)
            width += dim
        if mlp:
            self.user_mlp, self.item_mlp = nn.Embedding(users, dim), nn.Embedding(items, dim)
            tower, size = [], 2 * dim
            for out in layers:
                tower += [nn.Linear(size, out), nn.ReLU()]
                size = out
            self.tower = nn.Sequential(*tower)
            width += size
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, std)
        self.output = nn.Linear(width, 1)
        nn.init.constant_(self.output.bias, mean)  # explicit ratings start at the mean, as tfrec's NCF

    def forward(self, users, items):
        branches = []
        if self.gmf:
            branches.append(self.user_gmf(users) * self.item_gmf(items))
        if self.mlp:
            branches.append(self.tower(torch.cat([self.user_mlp(users), self.item_mlp(items)], dim=1)))
        return self.output(torch.cat(branches, dim=1)).squeeze(1)

    def penalty(self, users, items):
        total = 0.0
        for name, table in self.named_children():
            if isinstance(table, nn.Embedding):
                total = total + (table(users if name.startswith("user") else items) ** 2).sum()
        return self.l2 * total / len(users)


class AutoRec(nn.Module):
    """``r_hat = g(W f(V r + mu) + b)`` over rating vectors (Sedhain et al. 2015)."""

    def __init__(self, width: int, hidden: int, mean: float = 0.0):
        super().__init__()
        self.encoder = nn.Linear(width, hidden)
        self.decoder = nn.Linear(hidden, width)
        nn.init.constant_(self.decoder.bias, mean)  # starts at the mean rating, as tfrec's AutoRec

    def forward(self, ratings):
        return self.decoder(torch.sigmoid(self.encoder(ratings)))


class FM(nn.Module):
    """A factorization machine over one-hot (and normalised multi-hot) features (Rendle 2010).

    ``w0 + sum_j w_j x_j + 1/2 sum_k ((sum_j v_jk x_j)^2 - sum_j v_jk^2 x_j^2)``, the
    square-of-sum form of the PyTorch FM tutorials. A rating's active features
    are fixed slots ``(feature row, value)``: the user's slots (its id and side
    features) then the movie's, held per user and movie number (row 0 of each: an
    unknown id, every slot empty). ``field_aware`` (FFM, Juan et al. 2016): each
    feature has one vector per field, and the pair sum runs over slot pairs
    literally, ``sum_{s<t} x_s x_t <v_{s, f(t)}, v_{t, f(s)}>``.
    """

    def __init__(
        self, user_slots, item_slots, features: int, dim: int, mean: float, l2: float = 0.0, std: float = 0.1,
        slot_field=None, fields: int = 1,
    ):  # fmt: skip
        super().__init__()
        for name, array in zip(("user_rows", "user_values", "item_rows", "item_values"), (*user_slots, *item_slots)):
            self.register_buffer(name, torch.as_tensor(array))
        self.field_aware = slot_field is not None
        self.dim, self.fields, self.l2 = dim, fields, l2
        self.slot_field = None if slot_field is None else [int(f) for f in slot_field]
        self.factors = nn.Embedding(features, dim * fields if self.field_aware else dim)
        self.linear = nn.Embedding(features, 1)
        nn.init.normal_(self.factors.weight, 0.0, std)
        nn.init.zeros_(self.linear.weight)
        self.bias = nn.Parameter(torch.tensor(float(mean)))

    def slots(self, users, items):
        """Rows and values ``[batch, slots]`` for user and item numbers (0-based, as ``parity.data``)."""
        rows = torch.cat([self.user_rows[users + 1], self.item_rows[items + 1]], dim=1)
        values = torch.cat([self.user_values[users + 1], self.item_values[items + 1]], dim=1)
        return rows, values

    def forward(self, users, items):
        rows, values = self.slots(users, items)
        v, x = self.factors(rows), values
        linear = (self.linear(rows).squeeze(-1) * x).sum(dim=1)
        if not self.field_aware:
            xv = v * x.unsqueeze(-1)
            pairs = 0.5 * (xv.sum(dim=1) ** 2 - (xv**2).sum(dim=1)).sum(dim=1)
        else:
            v = v.view(v.shape[0], v.shape[1], self.fields, self.dim)
            pairs = torch.zeros_like(linear)
            f = self.slot_field
            for s in range(len(f)):
                for t in range(s + 1, len(f)):
                    pairs = pairs + x[:, s] * x[:, t] * (v[:, s, f[t]] * v[:, t, f[s]]).sum(dim=1)
        return self.bias + linear + pairs

    def penalty(self, users, items):
        """``l2 * (sum of squares of the active features' factors and weights) / batch``, tfrec's per-batch L2."""
        rows, values = self.slots(users, items)
        active = (values != 0).float()
        squares = (self.factors(rows) ** 2).sum(dim=-1) + self.linear(rows).squeeze(-1) ** 2
        return self.l2 * (squares * active).sum() / len(users)
