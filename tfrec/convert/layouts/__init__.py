"""How each model family's weights are named and shaped in PyTorch code: one :class:`Layout` per family.

A layout is data and a few conversions: ``names`` (the other names tutorials give each tensor),
``sizes`` (constructor arguments read off tensor shapes), ``assign`` (copying a state dict into a
built model), ``scores`` (the PyTorch model's forward pass in numpy, the check ``--verify`` runs).
Layouts are registered by model class name in ``tfrec.registry.torch_layouts``; a class without
its own entry uses its nearest base class's. A family defined outside tfrec registers one there::

    registry.torch_layouts.register("MyModel", MyLayout())
"""

from __future__ import annotations

import numpy as np

from tfrec import registry
from tfrec.errors import DataError, TfrecError

#: The activations the numpy forward passes (:meth:`Layout.scores`) evaluate.
NUMPY_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0), "linear": lambda x: x, None: lambda x: x, "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}  # fmt: skip


class Layout:
    """A family's PyTorch layout. Subclasses set :attr:`names` and override what their family needs."""

    #: Other names PyTorch code gives the tensors :meth:`assign` reads, ``{tfrec name: (alias, ...)}``.
    names: dict = {}

    def canonical(self, state: dict) -> dict:
        """``state`` with the tensors of :attr:`names`' other names under tfrec's names."""
        return rename(state, self.names)

    def sizes(self, cls, state: dict) -> dict:
        """Constructor arguments of ``cls`` read off the shapes of ``state``'s tensors (tfrec names)."""
        raise NotImplementedError

    def assign(self, model, state: dict) -> None:
        """Copies ``state`` (tfrec names) into a built ``model``; tables of ids keep tfrec's row 0 (unseen ids)."""
        raise NotImplementedError

    def build(self, cls, state: dict, user_vocabulary, item_vocabulary, **kwargs):
        """A ``cls`` with the sizes and weights of ``state`` (rows in vocabulary order).

        ``kwargs``: constructor arguments (a variant, ``global_mean``, ``rating_range``, ``feedback``...).
        """
        model = cls(list(user_vocabulary), list(item_vocabulary), **{**self.sizes(cls, state), **kwargs})
        model.create_variables()
        self.assign(model, state)
        return model

    def scores(self, model, state: dict, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """What the PyTorch model of ``state`` predicts for 0-based rows, in numpy float64 without torch:
        an oracle written apart from the TensorFlow graph."""
        raise NotImplementedError


def layout(cls) -> Layout:
    """The layout registered for ``cls`` or its nearest base class.

    Raises:
      TfrecError: no class in ``cls``'s bases has one.
    """
    for base in cls.__mro__:
        entry = registry.torch_layouts.find(base.__name__)
        if entry is not None:
            found = entry.load()
            return found() if isinstance(found, type) else found
    raise TfrecError(
        f"{cls.__name__} has no PyTorch layout (tfrec.registry.torch_layouts: {registry.torch_layouts.listed()})"
    )


def tensor(state, name: str, shape: tuple) -> np.ndarray:
    """``state[name]`` as float32 of ``shape`` (``None``: any size there); a wrong shape names both.

    Raises:
      DataError: the tensor's shape is not ``shape``. A missing name raises ``KeyError(name)``.
    """
    value = np.asarray(state[name], np.float32)
    if value.ndim != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        want = "[" + ", ".join("any" if w is None else str(w) for w in shape) + "]"
        raise DataError(f"tensor {name!r} has shape {list(value.shape)}, the model needs {want}")
    return value


def assign_table(layer, state, name: str) -> None:
    """Sets an ``IdEmbedding``'s rows 1..V to an ``nn.Embedding`` weight ``[V, dim]``; row 0 (unseen ids) stays."""
    table = layer.embedding.embeddings
    weight = tensor(state, name, (table.shape[0] - 1, table.shape[1]))
    table.assign(np.concatenate([table.numpy()[:1], weight], axis=0))


def assign_linear(layer, state, name: str) -> None:
    """Sets a Dense layer to ``nn.Linear`` ``name``'s weights: ``{name}.weight`` ``[out, in]`` is transposed."""
    units, inputs = layer.kernel.shape[1], layer.kernel.shape[0]
    layer.kernel.assign(tensor(state, f"{name}.weight", (units, inputs)).T)
    layer.bias.assign(tensor(state, f"{name}.bias", (units,)))


def rename(state: dict, names: dict) -> dict:
    """``state`` with each tensor known under another name (``names``: ``{tfrec name: (alias, ...)}``) renamed.

    Raises:
      DataError: two of a name's aliases are both present.
    """
    out = dict(state)
    for canonical, aliases in names.items():
        found = [a for a in aliases if a in out]
        if canonical in out or not found:
            continue
        if len(found) > 1:
            raise DataError(
                f"tensors {', '.join(found)} could each be {canonical!r}: map one with --map NAME={canonical}"
            )
        out[canonical] = out.pop(found[0])
    return out


def as_float64(state: dict) -> dict:
    return {k: np.asarray(v, np.float64) for k, v in state.items()}
