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
        ``learning_rate``, ``l2``, ``batch_size``, ``patience``, ``refit``, and optionally
        ``optimizer``, else ``adam``), chosen on a validation cut.
      scaled: Settings whose default follows the data, setting -> coefficient ``c``: a run that is
        not given the setting uses ``c / d``, where ``d`` is :func:`ratings_per_id` of the part it
        fits on (``TrainConfig.for_table``); ``defaults`` holds the value at ML-100K's ``d`` (58),
        which is what is shown before data is loaded.
      variant_defaults: Per variant name, defaults that differ from ``defaults``.
      variant_models: Per variant name, a class other than ``model`` (a subclass in the same file).
      arguments: Constructor argument -> the ``TrainConfig`` field or the option (below) it is taken from.
      options: The family's own settings, option name -> spec (literal values): ``type`` (``int``,
        ``float``, ``str``, ``bool``, ``ints``: comma-separated positive integers, ``names``:
        comma-separated names), ``default``, ``help``, and optionally ``choices``, ``min`` (inclusive),
        ``below`` (exclusive upper bound), ``search`` (what a search may try: ``{"low": ..., "high":
        ..., "log": bool}`` or ``{"choices": [...]}``), ``feedback`` (the one feedback it matters for:
        a search of the other leaves it alone), ``variants`` (the variant names it matters for, when not
        all: a search of another leaves it alone, and a value other than its default given to another
        is refused) and ``pipeline`` (True: an argument of the
        model's ``training_dataset``, not of its constructor). Each becomes ``tfrec train --NAME``
        (grouped under the family's title in ``--help``), a key of ``TrainConfig.options`` checked
        against the spec, an entry of the run's recorded config, and a constructor argument when
        ``arguments`` maps one to it. Families may share an option name only with the same type.
      search: What ``tfrec tune`` tries for the settings every family has, setting -> ``{"low": ...,
        "high": ...[, "log": True]}`` or ``{"choices": [...]}``: any of ``learning_rate``, ``dim``,
        ``l2``, ``batch_size`` (its options carry their own ``search``).
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
    options: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    search: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    scaled: Mapping[str, float] = dataclasses.field(default_factory=dict)
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
        for name, spec in self.options.items():
            _check_option(self.model, name, spec)
            stray = set(spec.get("variants", ())) - set(self.variants)
            if stray or ("variants" in spec and not spec["variants"]):
                raise TfrecError(f"family {self.model}: option {name!r} names unknown variants "
                                 f"{', '.join(sorted(stray)) or '(none)'}")  # fmt: skip
            if "search" in spec:
                _check_search(f"family {self.model}: option {name!r}", spec["search"])
        for name, spec in self.search.items():
            if name not in SEARCHED_FIELDS:
                raise TfrecError(f"family {self.model}: search names {name!r}, not one of {', '.join(SEARCHED_FIELDS)}")
            _check_search(f"family {self.model}: search of {name!r}", spec)
        for name, coefficient in self.scaled.items():
            if name not in SCALED_FIELDS or not isinstance(coefficient, (int, float)) or not coefficient > 0:
                raise TfrecError(
                    f"family {self.model}: scaled maps one of {', '.join(SCALED_FIELDS)} to a positive number, "
                    f"got {name!r}: {coefficient!r}"
                )
        # Read-only views: a family is shared by every run in the process.
        for key in ("variants", "defaults", "variant_defaults", "variant_models", "arguments", "search", "scaled"):
            object.__setattr__(self, key, MappingProxyType(dict(getattr(self, key))))
        options = {
            name: MappingProxyType({**spec, **({"variants": tuple(spec["variants"])} if "variants" in spec else {})})
            for name, spec in self.options.items()
        }
        object.__setattr__(self, "options", MappingProxyType(options))
        object.__setattr__(self, "mixed_precision", tuple(self.mixed_precision))

    def defaults_for(self, name: str) -> dict:
        """The ``TrainConfig`` defaults of variant ``name``."""
        return {**self.defaults, **self.variant_defaults.get(name, {})}

    def class_name(self, name: str) -> str:
        return self.variant_models.get(name, self.model)


OPTION_TYPES = ("int", "float", "str", "bool", "ints", "names")
#: The settings every family has that its ``search`` may name.
SEARCHED_FIELDS = ("learning_rate", "dim", "l2", "batch_size")


#: The settings a family's ``scaled`` may name.
SCALED_FIELDS = ("learning_rate", "l2")


def ratings_per_id(ratings: int, users: int, items: int) -> float:
    """The geometric mean of ratings per user and ratings per item, ``ratings / sqrt(users * items)``:
    how many ratings a learned row sees. An L2 weight applied per rating (as MF's is) pulls a row
    toward zero once per rating it is in, so a row's whole pull grows with its ratings, as its evidence
    does; the prior that weight stands for pulls the same however much evidence there is. A default
    that divides by this keeps the typical row's whole pull the same from one data set to another.
    """
    return ratings / (users * items) ** 0.5


def _check_search(where: str, spec: Mapping) -> None:
    """A search range: ``{"low", "high"[, "log"]}`` with low < high (both > 0 with log), or ``{"choices"}``."""
    if set(spec) == {"choices"}:
        if not spec["choices"]:
            raise TfrecError(f"{where}: choices must not be empty")
        return
    if not {"low", "high"} <= set(spec) <= {"low", "high", "log"}:
        raise TfrecError(f"{where}: give low and high (and log), or choices, got {sorted(spec)}")
    low, high = spec["low"], spec["high"]
    if not low < high or (spec.get("log") and low <= 0):
        raise TfrecError(f"{where}: needs low < high (and low > 0 on a log scale), got {low}, {high}")


_SPEC_KEYS = {"type", "default", "help", "choices", "min", "below", "search", "pipeline", "feedback", "variants"}


def _check_option(model: str, name: str, spec: Mapping) -> None:
    where = f"family {model}: option {name!r}"
    if not name.isidentifier():
        raise TfrecError(f"{where}: an option name must be an identifier (its flag is --{name.replace('_', '-')})")
    stray = sorted(set(spec) - _SPEC_KEYS)
    if stray:
        raise TfrecError(f"{where}: unknown spec key {stray[0]!r} (known: {', '.join(sorted(_SPEC_KEYS))})")
    if spec.get("type") not in OPTION_TYPES:
        raise TfrecError(f"{where}: type must be one of {', '.join(OPTION_TYPES)}, got {spec.get('type')!r}")
    if "default" not in spec:
        raise TfrecError(f"{where}: give it a default")
    if spec.get("feedback", "explicit") not in ("explicit", "implicit"):
        raise TfrecError(f"{where}: feedback must be 'explicit' or 'implicit', got {spec['feedback']!r}")
    parse_option(name, spec, spec["default"], where)


def parse_option(name: str, spec: Mapping, value, where: str | None = None):
    """``value`` (as given: a string from the command line, or a Python value) as the option's type, checked.

    Raises:
      TfrecError: the value is not of the type, not among ``choices`` or out of its bounds.
    """
    where, given, kind = where or name, value, spec["type"]
    try:
        if kind == "ints":
            parts = value.replace(" ", "").split(",") if isinstance(value, str) else list(value)
            value = tuple(int(x) for x in parts if x != "")
            if any(x < 1 for x in value):
                raise ValueError
        elif kind == "names":
            parts = value.replace(" ", "").split(",") if isinstance(value, str) else list(value)
            value = tuple(str(x) for x in parts if x)
            if not value:
                raise ValueError
        elif kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                value = value.lower() in ("1", "true", "yes", "on")
            value = bool(value)
        else:
            value = {"int": int, "float": float, "str": str}[kind](value)
            if kind == "float" and value != value:
                raise ValueError
    except (TypeError, ValueError):
        shown = {"ints": "comma-separated positive integers like 256,64", "names": "comma-separated names"}
        raise TfrecError(f"{where} must be {shown.get(kind, 'a ' + kind)}, got {given!r}") from None
    if "choices" in spec and value not in tuple(spec["choices"]):
        raise TfrecError(f"unknown {where} {value!r}: use one of {', '.join(map(str, spec['choices']))}")
    if "min" in spec and value < spec["min"]:
        raise TfrecError(f"{where} must be at least {spec['min']:g}, got {value:g}")
    if "below" in spec and not value < spec["below"]:
        raise TfrecError(f"{where} must be in [{spec.get('min', float('-inf')):g}, {spec['below']:g}), got {value:g}")
    return value


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


def own_options(name: str) -> dict[str, Mapping]:
    """The options of model ``name``'s family that matter for it: option -> spec (those whose ``variants``
    leave ``name`` out are not)."""
    return {k: spec for k, spec in family(name).options.items() if name in spec.get("variants", (name,))}


def model_class(name: str) -> type:
    """The Keras class of model ``name`` (imports its module, and so TensorFlow)."""
    spec = family(name)
    if name in _classes:
        return _classes[name]
    if not spec.module:
        raise TfrecError(f"model {name!r}: its family was registered without a class")
    return getattr(importlib.import_module(spec.module), spec.class_name(name))


def options() -> dict[str, tuple[Mapping, list[Family]]]:
    """Every option of every family: name -> (its spec, the families that declare it).

    Raises:
      TfrecError: two families declare one name with different types.
    """
    found: dict[str, tuple[Mapping, list[Family]]] = {}
    for each in families():
        for name, spec in each.options.items():
            if name in found and found[name][0]["type"] != spec["type"]:
                first = found[name][1][0].model
                raise TfrecError(f"option {name!r}: {first} and {each.model} declare it with different types")
            found.setdefault(name, (spec, []))[1].append(each)
    return found


def model_arguments(name: str, config) -> dict:
    """Constructor arguments of model ``name`` from a checked ``TrainConfig``: the fixed ones, then the mapped
    fields and options.

    Tuples (``layers``, ``features``) are passed as lists, as the classes store them in their configs.
    """
    spec = family(name)
    taken = {arg: config.value(field) for arg, field in spec.arguments.items()}
    taken = {k: list(v) if isinstance(v, tuple) else v for k, v in taken.items()}
    return {**spec.variants[name], **taken}
