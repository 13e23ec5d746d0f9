"""One plain PyTorch training loop for every reference model: parity's fixtures and the benchmark's torch side.

Mini-batches of a ``torch.randperm`` per epoch from a seeded generator, MSE,
``torch.optim`` SGD, Adagrad or Adam with PyTorch's defaults, optional weight
decay on chosen parameters. For parity it records what the trajectory tier
replays: the initial weights, every batch's row numbers, every step's data loss.
The benchmark (``benchmarks/bench.py``) runs the same loop without recording, with
sparse embedding gradients where its optimizer takes them, and times each epoch.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from parity.cases import Case, case_config
from parity.reference import REFERENCE_CLASSES
from parity.reference.models import FM, MF, NCF, AutoRec, BiasedMF


def _mf(case, d, arguments, cls):
    return MF(d.num_users, d.num_items, case.dim, case.l2, case.init_std)


def _biased_mf(case, d, arguments, cls):
    return BiasedMF(d.num_users, d.num_items, case.dim, d.mean, case.l2, case.init_std)


def _ncf(case, d, arguments, cls):
    gmf, mlp = cls.branches(arguments["variant"])
    return NCF(d.num_users, d.num_items, gmf, mlp, case.dim, case.layers, case.l2, case.init_std, d.mean)


def _autorec(case, d, arguments, cls):
    return AutoRec(d.vectors.shape[1], case.hidden, d.mean)


def _fm(case, d, arguments, cls):
    f = d.fields
    slot_field = f.slot_field if cls.field_aware else None
    return FM(f.user_slots, f.item_slots, f.features, case.dim, d.mean, case.l2, case.init_std, slot_field,
              len(case.features))  # fmt: skip


#: tfrec class name -> the builder of its PyTorch reference, ``(case, case data, tfrec arguments, tfrec class)``.
REFERENCES = {
    "MatrixFactorization": _mf,
    "BiasedMatrixFactorization": _biased_mf,
    "NeuralCollaborativeFiltering": _ncf,
    "AutoRec": _autorec,
    "FactorizationMachine": _fm,
    "FieldAwareFactorizationMachine": _fm,
}
assert set(REFERENCES) == REFERENCE_CLASSES, "parity.reference.REFERENCE_CLASSES must list REFERENCES' keys"


def build(case: Case, d) -> torch.nn.Module:
    """The case's reference model; ``d`` is the case's ``parity.data.CaseData``."""
    from tfrec import families

    cls = families.model_class(case.model)
    if cls.__name__ not in REFERENCES:
        raise ValueError(f"{case.model}: {cls.__name__} has no PyTorch reference in parity/reference")
    return REFERENCES[cls.__name__](case, d, families.model_arguments(case.model, case_config(case)), cls)


def decays_weights(model: torch.nn.Module) -> bool:
    """Whether the case's ``l2`` is weight decay on weight matrices (AutoRec) instead of a loss ``penalty``."""
    return not hasattr(model, "penalty")


def optimizers(case: Case, model: torch.nn.Module, sparse: bool = False) -> list[torch.optim.Optimizer]:
    """PyTorch's optimizer of ``case.optimizer`` with its defaults; weight decay 2 * l2 on AutoRec's weights.

    ``lazy-adam``: ``torch.optim.SparseAdam`` on the embedding tables (made sparse) and Adam on the
    rest. ``sparse``: embedding tables give sparse gradients, which Adagrad and SGD take as they are.
    """
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    for table in tables:
        table.sparse = sparse or case.optimizer == "lazy-adam"
    groups = [{"params": list(model.parameters())}]
    if decays_weights(model) and case.l2:
        weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
        others = [p for n, p in model.named_parameters() if not n.endswith("weight")]
        groups = [{"params": weights, "weight_decay": 2 * case.l2}, {"params": others}]
    if case.optimizer == "lazy-adam":
        embedded = {id(t.weight) for t in tables}
        dense = [q for q in model.parameters() if id(q) not in embedded]
        chosen = [torch.optim.SparseAdam([t.weight for t in tables], lr=case.learning_rate)]
        return chosen + ([torch.optim.Adam(dense, lr=case.learning_rate)] if dense else [])
    kinds = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}
    if case.optimizer not in kinds:
        raise ValueError(f"the PyTorch loop runs sgd, adagrad, adam or lazy-adam, not {case.optimizer}")
    return [kinds[case.optimizer](groups, lr=case.learning_rate)]


def train(
    case: Case,
    model: torch.nn.Module,
    inputs,
    labels,
    mask=None,
    seed: int | None = None,
    *,
    opts: list | None = None,
    record: bool = True,
    input_dropout: float = 0.0,
    autocast=None,
    epochs: int | None = None,
    on_epoch_end=None,
):
    """Trains in place; returns ``(step_losses, batches)`` (both empty unless ``record``).

    ``inputs`` is ``(users, items)`` for pair models or None for AutoRec, whose ``labels`` are the
    ``[rows, width]`` rating matrix (then ``mask`` marks observed entries and the loss is the mean
    squared error over them; ``input_dropout`` drops observed inputs as tfrec's AutoRec does).
    ``opts``: the optimizers (default :func:`optimizers`). ``autocast``: a context for the forward
    pass (the benchmark's bfloat16). ``on_epoch_end(epoch)``: called after each epoch; a true return
    stops training. ``epochs``: default ``case.epochs``.
    """
    opts = opts or optimizers(case, model)
    generator = torch.Generator().manual_seed(case.seed if seed is None else seed)
    n = len(labels)
    losses, batches = [], []
    for epoch in range(case.epochs if epochs is None else epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, case.batch_size):
            rows = order[start : start + case.batch_size]
            for opt in opts:
                opt.zero_grad()
            with autocast or contextlib.nullcontext():
                if mask is None:
                    users, items = inputs[0][rows], inputs[1][rows]
                    outputs = model(users, items)
                else:
                    m = mask[rows]
                    vectors = labels[rows] * m
                    if input_dropout:
                        vectors = torch.nn.functional.dropout(vectors, input_dropout)
                    outputs = model(vectors)
            if mask is None:
                loss = torch.mean((outputs.float() - labels[rows]) ** 2)
                total = loss + model.penalty(users, items) if case.l2 else loss
            else:
                loss = (((outputs.float() - labels[rows]) * m) ** 2).sum() / m.sum()
                total = loss
            total.backward()
            for opt in opts:
                opt.step()
            if record:
                losses.append(float(loss.detach()))
                batches.append(rows.numpy().astype(np.int64))
        if on_epoch_end is not None and on_epoch_end(epoch):
            break
    return losses, batches
