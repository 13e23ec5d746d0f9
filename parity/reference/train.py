"""One plain PyTorch training loop for every reference model.

Mini-batches of a ``torch.randperm`` per epoch from a seeded generator, MSE,
``torch.optim`` SGD, Adagrad or Adam with PyTorch's defaults, optional weight
decay on chosen parameters. It records what the trajectory tier replays: the
initial weights, every batch's row numbers, every step's data loss.
"""

from __future__ import annotations

import numpy as np
import torch

from parity.cases import Case
from parity.reference.models import FM, MF, NCF, AutoRec, BiasedMF


def build(case: Case, users: int, items: int, mean: float, width: int = 0, fields=None) -> torch.nn.Module:
    """The case's reference model; ``fields`` is ``parity.data.CaseData.fields`` for FM and FFM."""
    if case.model in ("fm", "ffm"):
        slot_field = fields.slot_field if case.model == "ffm" else None
        return FM(fields.user_slots, fields.item_slots, fields.features, case.dim, mean, case.l2, case.init_std,
                  slot_field, len(case.features))  # fmt: skip
    if case.model == "mf":
        return MF(users, items, case.dim, case.l2, case.init_std)
    if case.model == "biased-mf":
        return BiasedMF(users, items, case.dim, mean, case.l2, case.init_std)
    if case.model in ("ncf", "gmf", "neumf"):
        variant = {"ncf": "mlp", "gmf": "gmf", "neumf": "neumf"}[case.model]
        return NCF(users, items, variant, case.dim, case.layers, case.l2, case.init_std, mean)
    return AutoRec(width, case.hidden, mean)


def optimizer(case: Case, model: torch.nn.Module) -> torch.optim.Optimizer:
    """PyTorch's optimizer with its defaults; AutoRec's ``l2`` becomes weight decay 2 * l2 on weights."""
    groups = [{"params": list(model.parameters())}]
    if case.model.startswith("autorec") and case.l2:
        weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
        others = [p for n, p in model.named_parameters() if not n.endswith("weight")]
        groups = [{"params": weights, "weight_decay": 2 * case.l2}, {"params": others}]
    kind = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}[case.optimizer]
    return kind(groups, lr=case.learning_rate)


def train(case: Case, model: torch.nn.Module, inputs, labels, mask=None, seed: int | None = None):
    """Trains in place; returns ``(step_losses, batches)``.

    ``inputs`` is ``(users, items)`` for pair models or the ``[rows, width]``
    rating matrix for AutoRec (then ``mask`` marks observed entries and the loss
    is the mean squared error over them).
    """
    opt = optimizer(case, model)
    generator = torch.Generator().manual_seed(case.seed if seed is None else seed)
    n = len(labels)
    losses, batches = [], []
    for _ in range(case.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, case.batch_size):
            rows = order[start : start + case.batch_size]
            opt.zero_grad()
            if mask is None:
                users, items = inputs[0][rows], inputs[1][rows]
                loss = torch.mean((model(users, items) - labels[rows]) ** 2)
                total = loss + model.penalty(users, items) if case.l2 else loss
            else:
                m = mask[rows]
                loss = (((model(labels[rows] * m) - labels[rows]) * m) ** 2).sum() / m.sum()
                total = loss
            total.backward()
            opt.step()
            losses.append(float(loss.detach()))
            batches.append(rows.numpy().astype(np.int64))
    return losses, batches
