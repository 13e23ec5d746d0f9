"""Model families: the one door through which a model enters tfrec (no TensorFlow needed to read it).

A family is one file in ``tfrec/models/`` that holds its Keras class and declares, with literal
values only::

    FAMILY = Family(
        model="MatrixFactorization", title="Matrix factorization", variants={"mf": {}},
        defaults={"dim": 32, "learning_rate": 0.003, ...}, arguments={"dim": "dim", "l2": "l2"},
    )

The registry reads those declarations from the files' source (``ast``) without importing them, so
the command line lists, checks and documents every model before TensorFlow loads; the class is
imported only when a model is built. Everything tfrec does per model reads the family: the
``--model`` choices and their defaults, ``TrainConfig`` validation, constructor arguments, the
thread policy, and (through the class itself) the training data it eats, export and the PyTorch
weight names. A family defined anywhere else (a user's package, a test) joins with
:func:`register`, and gets the same command line, training, export and contract tests.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tfrec.errors import TfrecError

MODELS_DIR = Path(__file__).parent / "models"


@dataclasses.dataclass(frozen=True)
class Family:
    """What tfrec knows about one model family.

    Attributes:
      model: The Keras class's name (a ``tfrec.models._base.RatingModel`` subclass).
      title: How ``--help`` and the docs name the family.
      variants: ``tfrec train --model`` name -> constructor arguments fixed for that name
        (``{"gmf": {"variant": "gmf"}}``); most families have one variant and nothing fixed.
      defaults: ``TrainConfig`` values the family trains with when the user gives none (``dim``,
        ``learning_rate``, ``l2``, ``batch_size``, ``patience``, ``refit``), measured on ML-100K.
      variant_defaults: Per variant name, defaults that differ from ``defaults``.
      variant_models: Per variant name, a class other than ``model`` (a subclass in the same file).
      arguments: Constructor argument -> the ``TrainConfig`` field it is taken from.
      options: ``TrainConfig`` fields only this family reads: grouped under its title in ``--help``.
      implicit: It trains on implicit feedback too (``--feedback implicit``).
      side_features: It reads side features (``--features``) besides the two ids.
      mixed_precision: Variant names whose Dense layers can compute in float16/bfloat16.
      threads_per_op: ``one`` (steps are chains of small ops: one thread each) or ``all`` (dense
        products: TensorFlow's default, one per core); ``tfrec.train.configure_threads``.
      rank: Where the family stands in listings (lower first).
      default: A variant name if this family holds the model ``tfrec train`` trains without ``--model``
        (one family in the registry says so).
      module: The module that defines the class (filled in for the built-in families).
    """

    model: str
    title: str
    variants: Mapping[str, Mapping[str, Any]]
    defaults: Mapping[str, Any]
    variant_defaults: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    variant_models: Mapping[str, str] = dataclasses.field(default_factory=dict)
    arguments: Mapping[str, str] = dataclasses.field(default_factory=dict)
    options: tuple[str, ...] = ()
    implicit: bool = False
    side_features: bool = False
    mixed_precision: tuple[str, ...] = ()
    threads_per_op: str = "one"
    rank: int = 100
    default: str = ""
    module: str = ""

    def __post_init__(self):
        if not self.variants:
            raise TfrecError(f"family {self.model}: variants must name at least one model")
        if self.threads_per_op not in ("one", "all"):
            raise TfrecError(f"family {self.model}: threads_per_op must be 'one' or 'all', got {self.threads_per_op!r}")
        for key in ("variant_defaults", "variant_models"):
            stray = set(getattr(self, key)) - set(self.variants)
            if stray:
                raise TfrecError(f"family {self.model}: {key} names unknown variants {', '.join(sorted(stray))}")
        stray = set(self.mixed_precision) - set(self.variants)
        if stray:
            raise TfrecError(f"family {self.model}: mixed_precision names unknown variants {', '.join(sorted(stray))}")
        # Read-only views: a family is shared by every run in the process.
        for key in ("variants", "defaults", "variant_defaults", "variant_models", "arguments"):
            object.__setattr__(self, key, MappingProxyType(dict(getattr(self, key))))
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "mixed_precision", tuple(self.mixed_precision))

    def defaults_for(self, name: str) -> dict:
        """The ``TrainConfig`` defaults of variant ``name``."""
        return {**self.defaults, **self.variant_defaults.get(name, {})}

    def class_name(self, name: str) -> str:
        return self.variant_models.get(name, self.model)


_registry: dict[str, Family] = {}  # model name -> family
_classes: dict[str, type] = {}  # model name -> class, for families registered with their class


def _literal_family(path: Path) -> Family | None:
    """The ``FAMILY = Family(...)`` declared in a model file, read from its source without importing it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["FAMILY"]
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "Family"
        ):
            if node.value.args:
                raise TfrecError(f"{path}:{node.lineno}: FAMILY = Family(...) takes keyword arguments only")
            try:
                values = {k.arg: ast.literal_eval(k.value) for k in node.value.keywords}
            except ValueError:
                raise TfrecError(f"{path}:{node.lineno}: FAMILY's arguments must be literal values") from None
            return Family(**values, module=f"tfrec.models.{path.stem}")
    return None


def _discover() -> None:
    if _registry:
        return
    for path in sorted(MODELS_DIR.glob("*.py")):
        if not path.name.startswith("_"):
            family = _literal_family(path)
            if family is not None:
                _add(family)


def _add(family: Family) -> None:
    taken = set(family.variants) & set(_registry)
    if taken:
        raise TfrecError(f"family {family.model}: model name(s) {', '.join(sorted(taken))} are taken")
    for name in family.variants:
        _registry[name] = family


def register(family: Family, model_class: type | None = None) -> Family:
    """Adds a family defined outside ``tfrec/models`` (its class given here); returns it.

    Its variant names become ``tfrec train --model`` choices and ``TrainConfig.model`` values.

    Raises:
      TfrecError: A variant name is already registered.
    """
    _discover()
    _add(family)
    if model_class is not None:
        for name in family.variants:
            _classes[name] = model_class
    return family


def unregister(family: Family) -> None:
    """Removes a family added with :func:`register` (tests register throwaway families)."""
    for name in family.variants:
        if _registry.get(name) is family:
            del _registry[name]
            _classes.pop(name, None)


def names() -> tuple[str, ...]:
    """Every model name, family by family (in ``rank`` order), variants in declared order."""
    _discover()
    return tuple(sorted(_registry, key=lambda n: (_registry[n].rank, list(_registry).index(n))))


def families() -> list[Family]:
    """Every registered family once, in listing order."""
    seen: dict[int, Family] = {}
    for name in names():
        seen.setdefault(id(_registry[name]), _registry[name])
    return list(seen.values())


def default_model() -> str:
    """The model ``tfrec train`` trains when none is named (the family that declares ``default``)."""
    chosen = [f.default for f in families() if f.default]
    if len(chosen) != 1:
        raise TfrecError(f"exactly one family must declare the default model, found {len(chosen)}")
    return chosen[0]


def family(name: str) -> Family:
    """The family of model ``name``.

    Raises:
      TfrecError: No family has that name.
    """
    _discover()
    if name not in _registry:
        raise TfrecError(f"unknown model {name!r}: use one of {', '.join(names())}")
    return _registry[name]


def model_class(name: str) -> type:
    """The Keras class of model ``name`` (imports its module, and so TensorFlow)."""
    spec = family(name)
    if name in _classes:
        return _classes[name]
    if not spec.module:
        raise TfrecError(f"model {name!r}: its family was registered without a class")
    return getattr(importlib.import_module(spec.module), spec.class_name(name))


def model_arguments(name: str, config) -> dict:
    """Constructor arguments of model ``name`` from a checked ``TrainConfig``: the fixed ones, then the mapped fields.

    Tuples (``layers``, ``features``) are passed as lists, as the classes store them in their configs.
    """
    spec = family(name)
    taken = {arg: getattr(config, field) for arg, field in spec.arguments.items()}
    taken = {k: list(v) if isinstance(v, tuple) else v for k, v in taken.items()}
    return {**spec.variants[name], **taken}
