"""Registries: one door for each kind of extension besides model families (``tfrec.families``).

    from tfrec import registry

    registry.optimizers.register("my-sgd", MySGD, help="SGD with my schedule")   # --optimizer my-sgd
    registry.strategies.register("one-gpu", lambda shards: tf.distribute.OneDeviceStrategy("/gpu:0"))
    registry.sources.register("warehouse:", load_warehouse, help="warehouse:TABLE")  # --data warehouse:x

A registry maps a name (or, for a prefix entry, every name that starts with it) to an
:class:`Entry`: what to build, a line of help, and capabilities that the code asks instead of
switching on names (``registry.strategies.entry(name).capabilities["splits_tables"]``). Lists in
``--help`` and in error messages come from here, and nothing else in tfrec lists these names.

The module imports no TensorFlow, so the command line reads every registry before TensorFlow
loads: a built-in entry names its target as ``"module:attribute"``, imported on first use, and a
user's entry may give the object itself. The built-in entries are declared at the end of this file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from tfrec.errors import DataError, TfrecError


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered name.

    Attributes:
      name: The name users type (``adam``, ``mirrored``, ``synthetic``); for a prefix entry, the
        prefix (``tfds:``), which also matches the name without its colon.
      target: What the entry builds, or ``"module:attribute"`` naming it (imported by :meth:`load`).
      help: One line for ``--help`` and error messages.
      prefix: Whether the entry matches every name that starts with ``name``.
      capabilities: What the code needs to know about the entry (a registry documents its keys).
    """

    name: str
    target: Any
    help: str = ""
    prefix: bool = False
    capabilities: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "capabilities", MappingProxyType(dict(self.capabilities)))

    def load(self):
        """The target, imported if it was named as ``"module:attribute"``."""
        if isinstance(self.target, str):
            module, _, attribute = self.target.partition(":")
            return getattr(importlib.import_module(module), attribute)
        return self.target

    def matches(self, name: str) -> bool:
        if not self.prefix:
            return name == self.name
        return name.startswith(self.name) or name == self.name.rstrip(":")


class Registry:
    """Names of one kind of extension (``optimizer``, ``strategy``, ``data source``) and their entries."""

    def __init__(self, kind: str, capabilities: Mapping[str, Any] | None = None, error: type = TfrecError):
        self.kind, self.error = kind, error  # ``error``: what an unknown name raises
        #: Every capability an entry of this registry may declare, and its value when an entry does not.
        self.capabilities = dict(capabilities or {})
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target, *, help: str = "", prefix: bool = False, **capabilities) -> Entry:
        """Adds ``name``; returns its entry.

        Raises:
          TfrecError: the name is taken, or a capability is not one this registry knows.
        """
        if not name or not isinstance(name, str):
            raise TfrecError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise TfrecError(f"{self.kind} {name!r} is already registered")
        unknown = sorted(set(capabilities) - set(self.capabilities))
        if unknown:
            known = ", ".join(self.capabilities) or "none"
            raise TfrecError(f"{self.kind} {name!r}: unknown capability {unknown[0]!r} (known: {known})")
        entry = Entry(name, target, help, prefix, {**self.capabilities, **capabilities})
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Removes ``name`` (tests register throwaway entries); a name not registered is ignored."""
        self._entries.pop(name, None)

    @contextlib.contextmanager
    def registered(self, name: str, target, **kwargs):
        """``name`` registered for the duration of the block, and only that."""
        entry = self.register(name, target, **kwargs)
        try:
            yield entry
        finally:
            self.unregister(name)

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order (prefix entries as their prefix)."""
        return tuple(self._entries)

    def entries(self) -> tuple[Entry, ...]:
        """Every entry, in registration order."""
        return tuple(self._entries.values())

    def listed(self) -> str:
        """The names for a message: ``adam, lazy-adam, ...``."""
        return ", ".join(self._entries) or "none"

    def find(self, name: str) -> Entry | None:
        """The entry of ``name``: its own, else the longest prefix entry that matches it, else None."""
        if name in self._entries and not self._entries[name].prefix:
            return self._entries[name]
        matching = [e for e in self._entries.values() if e.prefix and e.matches(name)]
        return max(matching, key=lambda e: len(e.name)) if matching else None

    def entry(self, name: str) -> Entry:
        """The entry of ``name``.

        Raises:
          TfrecError: no entry matches (the message lists the registered names).
        """
        found = self.find(name)
        if found is None:
            raise self.error(f"unknown {self.kind} {name!r}: use one of {self.listed()}")
        return found

    def help(self) -> str:
        """``name (help), ...`` of every entry, for ``--help``."""
        return ", ".join(f"{e.name} ({e.help})" if e.help else e.name for e in self._entries.values())


def _builder(module: str, attribute: str) -> str:
    return f"{module}:{attribute}"


# Optimizers: a target is a Keras optimizer class or any callable taking ``learning_rate=``.
optimizers = Registry("optimizer")
optimizers.register("adam", _builder("tfrec.optimizers", "Adam"),
                    help="Keras' Adam, each variable's step in one native op")  # fmt: skip
optimizers.register("lazy-adam", _builder("tfrec.optimizers", "LazyAdam"),
                    help="Adam that moves only the embedding rows in the batch")  # fmt: skip
optimizers.register("adagrad", _builder("tfrec.optimizers", "TorchAdagrad"), help="PyTorch's Adagrad")
optimizers.register("sgd", _builder("tfrec.optimizers", "SGD"), help="Keras' SGD")

#: Strategies: a target is a callable ``(shards) -> tf.distribute.Strategy``. Capabilities:
#: ``cluster`` (its processes come from ``TF_CONFIG``: TensorFlow must not list devices before it is
#: built) and ``splits_tables`` (variables split by rows over parameter servers: ``--shards`` applies,
#: and ``tfrec train`` serves the cluster's worker and ps tasks).
strategies = Registry("strategy", {"cluster": False, "splits_tables": False})
strategies.register("auto", _builder("tfrec.strategies", "auto"), help="all GPUs, else the CPU")
strategies.register("default", _builder("tfrec.strategies", "default"), help="no distribution")
strategies.register("mirrored", _builder("tfrec.strategies", "mirrored"),
                    help="MirroredStrategy over all GPUs, or all logical CPUs")  # fmt: skip
strategies.register("multi-worker", _builder("tfrec.strategies", "multi_worker"), cluster=True,
                    help="MultiWorkerMirroredStrategy over TF_CONFIG's workers")  # fmt: skip
strategies.register("parameter-server", _builder("tfrec.strategies", "parameter_server"), cluster=True,
                    splits_tables=True, help="tables split by rows over TF_CONFIG's ps tasks")  # fmt: skip

#: Data sources: a target is a callable ``(name, *, download, columns, delimiter) -> tfrec.data.Ratings``.
#: Capabilities: ``check`` (a callable ``(name) -> None`` that raises ``DataError`` for a name it will
#: not load, called before TensorFlow is imported; None: nothing to check) and ``columns`` (it takes
#: ``--columns``). A path to a file or a directory is not a registered name: files are read by
#: ``tfrec.data.files``, directories as MovieLens files.
sources = Registry("data source", {"check": None, "columns": False}, error=DataError)
for _name in ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest", "ml-latest-small"):
    sources.register(_name, _builder("tfrec.data.sources", "load_movielens"))
sources.register("tfds:", _builder("tfrec.data.sources", "load_tfds_name"), prefix=True, columns=True,
                 check=_builder("tfrec.data.sources", "check_tfds"),
                 help="tfds:movielens/<config>-ratings (or any TFDS ratings set with --columns)")  # fmt: skip
sources.register("synthetic:", _builder("tfrec.data.sources", "load_synthetic"), prefix=True,
                 check=_builder("tfrec.data.sources", "check_synthetic"),
                 help="synthetic[:users=N,items=N,ratings=N,rank=N,sigma=S,round=0|1,seed=N]")  # fmt: skip
sources.register("synthetic-fm:", _builder("tfrec.data.sources", "load_synthetic_fm"), prefix=True,
                 check=_builder("tfrec.data.sources", "check_synthetic"),
                 help="synthetic-fm[:users=N,items=N,rank=N,sigma=S,seed=N] (every pair rated by a planted "
                 "factorization machine; side features user_occupation_label, movie_genres)")  # fmt: skip
del _name


#: PyTorch layouts (``tfrec import-torch``): how a model class's weights are named and shaped in PyTorch
#: code, keyed by the model's class name; a target is a ``tfrec.convert.layouts.Layout`` (a class
#: without an entry uses its nearest base class's).
torch_layouts = Registry("PyTorch layout")
torch_layouts.register("MatrixFactorization", _builder("tfrec.convert.layouts.mf", "MF"))
torch_layouts.register("BiasedMatrixFactorization", _builder("tfrec.convert.layouts.mf", "BiasedMF"))
torch_layouts.register("NeuralCollaborativeFiltering", _builder("tfrec.convert.layouts.ncf", "NCF"))
torch_layouts.register("AutoRec", _builder("tfrec.convert.layouts.autorec", "AutoRec"))
torch_layouts.register("FactorizationMachine", _builder("tfrec.convert.layouts.fm", "FM"))


#: Commands other packages add to ``tfrec`` through the ``tfrec.commands`` entry point group (the
#: harness's ``tfrec parity`` and ``tfrec bench``): a target is a callable ``(argv, parser_class) -> int``
#: whose docstring's first line is its help; ``tensorflow = True`` on it asks for TensorFlow first.
commands = Registry("command")


def discover_commands() -> Registry:
    """:data:`commands`, with every installed ``tfrec.commands`` entry point registered (once)."""
    from importlib.metadata import entry_points

    for point in entry_points(group="tfrec.commands"):
        if commands.find(point.name) is None:
            commands.register(point.name, point.value)
    return commands


def load_target(value) -> Callable:
    """A capability that names a callable (``"module:attribute"``) or is one, as the callable."""
    if isinstance(value, str):
        module, _, attribute = value.partition(":")
        return getattr(importlib.import_module(module), attribute)
    return value
