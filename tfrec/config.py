"""Training configuration, importable without TensorFlow (the CLI builds its flags from it)."""

from __future__ import annotations

import dataclasses
import difflib
import os


from tfrec import families, registry
from tfrec.data import splits
from tfrec.errors import TfrecError

FEEDBACK_NAMES = ("explicit", "implicit")
PRECISION_NAMES = ("float16", "bfloat16")
#: The fields every family's ``defaults`` sets (``tfrec.families.Family``), chosen per family by the
#: validation cut of the training part, never by the test part.
#: The epoch cap: early stopping, not the cap, should end a run; without a validation cut nothing else does.
DEFAULT_EPOCHS, DEFAULT_EPOCHS_WITHOUT_VALIDATION = 500, 50
PER_MODEL = ("dim", "learning_rate", "l2", "batch_size", "patience", "refit")
#: The optimizer of a family that names none in its ``defaults``.
DEFAULT_OPTIMIZER = "adam"


@dataclasses.dataclass(init=False)
class TrainConfig:
    """Everything ``tfrec train`` needs; a setting not given takes its family's default.

    A field left at None takes the model's default (its family's ``defaults``,
    ``tfrec.families``) or, for ``split``, the feedback's, when :meth:`check` runs. What only some
    models have (NCF's ``layers``, AutoRec's ``hidden``, FM's ``features``...) is an option their
    family declares (``Family.options``): ``TrainConfig(model="neumf", layers="64,32")``, read back
    as ``config.layers`` (or :meth:`value`), with the family's default where none is given.

    Attributes:
      model: A registered model name (``tfrec.families.names()``).
      data: A dataset name, directory or spec (``tfrec.data.load``).
      split: ``ratio[:F]``, ``u1``..``u5`` or ``leave-last-out``; None: ``ratio``
        for explicit feedback, ``leave-last-out`` (the NCF protocol) for implicit.
      epochs: At most this many. None: 500 when a validation cut ends the run by early stopping
        (the ML-100K defaults stop after 7-41), 50 without one. A run that reaches the cap while
        validation still improves says so (``stopped: "epoch cap"`` in ``tfrec.train.run``'s report).
      batch_size: Examples per step (AutoRec: rating vectors per step).
      dim: Embedding dimension (MF factors, NCF embeddings, FM factors; FFM: per field).
      learning_rate: Optimizer learning rate.
      l2: L2 weight: on the looked-up rows of each batch (MF, NCF), on the
        kernels (AutoRec).
      optimizer: A name in ``tfrec.registry.optimizers``: ``adam``, ``lazy-adam`` (moves only the
        embedding rows in the batch: ``tfrec.optimizers.LazyAdam``), ``adagrad`` (PyTorch's:
        ``tfrec.optimizers.TorchAdagrad``), ``sgd``, or one the user registered. None: the
        family's default (``lazy-adam`` for MF and biased MF, ``adam`` for the others).
      seed: Seeds the split, the validation cut, initial weights, batch order
        and negative samples.
      validation_fraction: Share of the training part held out for early
        stopping (explicit feedback; implicit holds out each user's latest
        training interaction instead); 0 turns early stopping off.
      patience: Epochs without a better validation score before stopping.
      steps_per_execution: Batches per ``tf.function`` call (hides Python overhead).
      strategy: A name in ``tfrec.registry.strategies``: ``auto`` (all GPUs, else CPU), ``default``, ``mirrored`` or
        ``multi-worker`` (MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG``) or
        ``parameter-server`` (ParameterServerStrategy: the tables split by rows over the ``ps``
        tasks of ``TF_CONFIG``; this process is the ``chief``).
      shards: Under ``parameter-server``, how tables are split: a number of shards
        (``"2"``: every variable in two pieces by rows), or a size (``"64MB"``: pieces
        of at most that many bytes); default: pieces of at least 256 KB, at most one
        per parameter server (TensorFlow's ``MinSizePartitioner``).
      feedback: ``explicit`` (ratings) or ``implicit`` (interactions: NCF); None: the data's
        (``implicit`` for a file without a rating column, else ``explicit``), set when the data loads.
      columns: For a file of the user's own: ``user=COL,item=COL[,rating=COL][,timestamp=COL]``
        (``tfrec.data.files``); None: found by their names.
      delimiter: For a delimited file; None: sniffed.
      min_count: For streamed shards (``tfrec.data.stream``): an id rated fewer times in the part the
        model fits on gets no row of its own and takes the unseen-id answer. 1: every rated id.
      options: The model family's own settings by option name (``Family.options``), as Python
        values or as the command line gives them (``"64,32"``); checked and completed with the
        family's defaults by :meth:`check`. Keyword arguments that are not fields land here too.
      refit: After early stopping, train a fresh model on the whole training
        part (validation cut included) for the best epoch count. Costs a
        second fit; None: the model's default.
      checkpoint_dir: Save the model, optimizer and early-stopping state at
        every epoch end; a run started again with the same settings resumes
        from the last saved epoch (``tfrec.checkpoints``).
      deterministic: Seed Python, NumPy and TensorFlow and turn on TensorFlow's
        op determinism: the same settings give bit-identical weights.
      mixed_precision: None (float32), ``float16`` (GPUs; the loss is scaled) or
        ``bfloat16`` (CPUs with AVX512-BF16/AMX, recent GPUs, TPUs): the Dense
        layers of NCF and AutoRec compute in it; weights, embeddings, the output
        and the loss stay float32.
    """

    model: str = dataclasses.field(default_factory=families.default_model)
    data: str = "ml-100k"
    split: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    dim: int | None = None
    learning_rate: float | None = None
    l2: float | None = None
    optimizer: str | None = None
    seed: int = 42
    validation_fraction: float = 0.1
    patience: int | None = None
    steps_per_execution: int = 128
    strategy: str = "auto"
    shards: str | None = None
    feedback: str | None = None
    refit: bool | None = None
    checkpoint_dir: str | None = None
    deterministic: bool = False
    mixed_precision: str | None = None
    columns: str | None = None
    delimiter: str | None = None
    min_count: int = 1
    options: dict = dataclasses.field(default_factory=dict)

    def __init__(self, **settings):
        """The fields by name (defaults as declared); any other keyword is a family option
        (``TrainConfig(model="neumf", layers="64,32")``), as are the entries of ``options``."""
        for field in dataclasses.fields(self):
            if field.name in settings:
                value = settings.pop(field.name)
            elif field.default is not dataclasses.MISSING:
                value = field.default
            else:
                value = field.default_factory()
            setattr(self, field.name, os.fspath(value) if isinstance(value, os.PathLike) else value)
        self.options = {**self.options, **settings}

    def __getattr__(self, name):
        """A family option by name (``config.layers``), as :meth:`value` reads it."""
        if name.startswith("_") or name == "options":
            raise AttributeError(name)
        spec = families.family(self.model).options.get(name)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} of {self.model} has no field or option {name!r}")
        return families.parse_option(name, spec, self.options.get(name, spec["default"]))

    def value(self, name: str):
        """A field, or an option of the model's family (its default where none was given).

        Raises:
          TfrecError: the model has no such field or option.
        """
        try:
            return getattr(self, name)
        except AttributeError:
            raise TfrecError(f"{self.model} has no setting {name!r}") from None

    def as_dict(self) -> dict:
        """The fields and the options in one flat JSON-ready dict (what run reports and checkpoints record)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "options"}
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        return {**record, **options}

    @classmethod
    def from_dict(cls, record: dict) -> "TrainConfig":
        """The config of :meth:`as_dict`'s dict: the fields, and every other key as an option."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"options"}
        return cls(**{k: v for k, v in record.items() if k in fields},
                   options={k: v for k, v in record.items() if k not in fields})  # fmt: skip

    @property
    def family(self) -> families.Family:
        return families.family(self.model)

    @property
    def splits_tables(self) -> bool:
        """Whether the strategy splits tables by rows over parameter servers (``--shards`` applies)."""
        return registry.strategies.entry(self.strategy).capabilities["splits_tables"]

    @property
    def cluster(self) -> bool:
        """Whether the strategy's processes come from ``TF_CONFIG`` (devices must not be listed before it)."""
        return registry.strategies.entry(self.strategy).capabilities["cluster"]

    @property
    def implicit(self) -> bool:
        return self.feedback == "implicit" and self.family.implicit

    def for_data(self, feedback: str) -> None:
        """Takes the loaded data's feedback where none was asked for (with its split), then checks again.

        Raises:
          TfrecError: interactions without ratings asked to train an explicit-only model, or the other way round.
        """
        self.check()
        if feedback == "implicit" and self._defaulted.get("feedback"):
            self.feedback = "implicit"
            if self._defaulted.get("split"):
                self.split = "leave-last-out"
        if feedback == "implicit" and self.feedback == "explicit":
            raise TfrecError(f"{self.data}: has no ratings (interactions only), so it trains with --feedback implicit")
        if feedback == "implicit" and not self.family.implicit:
            able = [n for f in families.families() if f.implicit for n in f.variants]
            raise TfrecError(
                f"{self.data}: no rating column found (interactions only); {self.model} learns ratings: name "
                f"yours with --columns rating=COL, or train an implicit-feedback model (--model {' / '.join(able)})"
            )
        self.check()
        self._check_feedback_options()

    def _check_feedback_options(self) -> None:
        """Refuses an option of the other feedback given a value (a recorded config holds each at its default)."""
        feedback = "implicit" if self.implicit else "explicit"
        for name, spec in families.own_options(self.model).items():
            wanted = spec.get("feedback", feedback)
            if wanted != feedback and self.options[name] != families.parse_option(name, spec, spec["default"]):
                learns = "interactions (implicit feedback)" if self.implicit else "ratings (explicit feedback)"
                raise TfrecError(f"{name} is for {wanted} feedback, and this run on {self.data} learns {learns}: "
                                 f"leave {name} out, or give --feedback {wanted}")  # fmt: skip

    def for_table(self, table) -> None:
        """Sets each setting the family scales by the data (``Family.scaled``) and the user left to its
        default: ``coefficient / d``, ``d`` the geometric mean of ratings per user and per item of
        ``table``, the part the model fits on. Called once per run, before the first model is built.
        """
        self.check()
        left = {key: c for key, c in self.family.scaled.items() if self._defaulted.get(key) is True}
        if not left:  # nothing to scale (a search trial gives l2 itself): no pass over the ratings
            return
        per_id = families.ratings_per_id(len(table), *table.rated_ids())
        for key, coefficient in left.items():
            setattr(self, key, float(f"{coefficient / per_id:.2g}"))  # two digits: a rule of thumb
            self._defaulted[key] = {"coefficient": coefficient, "ratings_per_id": round(per_id, 1)}

    @property
    def scaled(self) -> dict:
        """The settings :meth:`for_table` set from the data: ``{name: {"coefficient", "ratings_per_id"}}``."""
        return {key: how for key, how in self._defaulted.items() if isinstance(how, dict)}

    @property
    def _defaulted(self) -> dict:
        """Which settings :meth:`check` filled in (the data may still change them)."""
        if "_filled" not in self.__dict__:
            self.__dict__["_filled"] = {}
        return self.__dict__["_filled"]

    def check(self) -> None:
        """Fills model defaults; raises TfrecError naming the first field with a bad value."""
        self._check_types()
        family = self.family  # raises for an unknown model, listing the known ones
        if self.optimizer is None:
            self.optimizer = family.defaults_for(self.model).get("optimizer", DEFAULT_OPTIMIZER)
        registry.optimizers.entry(self.optimizer)  # raises for an unknown name, listing the registered ones
        registry.strategies.entry(self.strategy)
        if self.feedback not in (*FEEDBACK_NAMES, None):
            raise TfrecError(f"unknown feedback {self.feedback!r}: use one of {', '.join(FEEDBACK_NAMES)}")
        self._check_options(family)
        if self.shards is not None:
            if not self.splits_tables:
                able = ", ".join(e.name for e in registry.strategies.entries() if e.capabilities["splits_tables"])
                raise TfrecError(f"shards is for strategy {able}: the other strategies copy whole tables")
            shard_spec(self.shards)  # raises for a bad value
        if self.mixed_precision is not None:
            if self.mixed_precision not in PRECISION_NAMES:
                raise TfrecError(
                    f"unknown mixed_precision {self.mixed_precision!r}: use one of {', '.join(PRECISION_NAMES)}"
                )
            if self.model not in family.mixed_precision:
                able = [n for f in families.families() for n in f.mixed_precision]
                raise TfrecError(
                    f"mixed_precision is for the models with Dense layers ({', '.join(able)}); "
                    f"{self.model} is embedding lookups, which compute in float32"
                )
        if self.feedback == "implicit" and not family.implicit:
            able = [n for f in families.families() if f.implicit for n in f.variants]
            raise TfrecError(f"feedback 'implicit' is for {', '.join(able)}, not {self.model}")
        for key, value in family.defaults_for(self.model).items():
            if getattr(self, key) is None:
                setattr(self, key, value)
                self._defaulted[key] = True
        missing = [key for key in PER_MODEL if getattr(self, key) is None]
        if missing:
            raise TfrecError(f"model {self.model!r}: its family sets no default for {', '.join(missing)}")
        if self.epochs is None:
            self.epochs = DEFAULT_EPOCHS if self.validation_fraction > 0 else DEFAULT_EPOCHS_WITHOUT_VALIDATION
        if self.feedback is None:  # explicit until the data says otherwise (for_data)
            self.feedback = "explicit"
            self._defaulted["feedback"] = True
        if self.split is None:
            self.split = "leave-last-out" if self.implicit else "ratio"
            self._defaulted["split"] = True
        for key in ("epochs", "batch_size", "dim", "steps_per_execution"):
            if getattr(self, key) < 1:
                raise TfrecError(f"{key} must be at least 1, got {getattr(self, key)}")
        if not self.learning_rate > 0:
            raise TfrecError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.l2 < 0 or self.patience < 0:
            raise TfrecError(f"l2 and patience must be >= 0, got {self.l2} and {self.patience}")
        if self.min_count < 1:  # its type is checked with every field's (_check_types)
            raise TfrecError(f"min_count must be a positive integer, got {self.min_count!r}")
        splits.parse(self.split)  # raises for an unknown spec or a test fraction outside (0, 1)
        if not 0 <= self.validation_fraction < 1:
            raise TfrecError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")

    def _check_types(self) -> None:
        """Each field holds its declared type (a JSON config can hold anything): one error naming it."""
        for field in dataclasses.fields(self):
            kind, _, optional = field.type.partition(" | ")
            value = getattr(self, field.name)
            if (value is None and optional) or field.name == "options" or isinstance(value, _TYPES[kind][0]) and (
                    kind == "bool" or not isinstance(value, bool)):  # fmt: skip
                continue
            raise TfrecError(f"{field.name} must be {_TYPES[kind][1]}, got {value!r}")
        if not 0 <= self.seed < 2**32:
            raise TfrecError(f"seed must be from 0 to 2**32 - 1, got {self.seed}")

    def _check_options(self, family: families.Family) -> None:
        """Parses and checks each given option against its family's spec, and fills in the others' defaults."""
        for name in self.options:
            if name not in family.options:
                owners = [n for f in families.families() if name in f.options for n in f.variants]
                if owners:
                    raise TfrecError(f"{name} is an option of {', '.join(owners)}, not of {self.model}")
                own = ", ".join(family.options) or "none"
                known = [f.name for f in dataclasses.fields(self) if f.name != "options"] + list(family.options)
                close = ["learning_rate"] if name == "lr" else difflib.get_close_matches(name, known, n=1)
                meant = f"; did you mean {close[0]}?" if close else ""
                raise TfrecError(f"unknown option {name!r} for {self.model} (its options: {own}{meant})")
        parsed = {
            name: families.parse_option(name, spec, self.options.get(name, spec["default"]))
            for name, spec in family.options.items()
        }
        # An option of other variants given a value (a recorded config holds every option, at its default).
        for name in sorted(set(self.options) - set(families.own_options(self.model))):
            spec = family.options[name]
            if parsed[name] != families.parse_option(name, spec, spec["default"]):
                raise TfrecError(f"{name} is an option of {', '.join(spec['variants'])}, not of {self.model}")
        self.options = parsed


#: A field's declared type -> (the Python types it takes, how an error names it).
_TYPES = {
    "str": (str, "text"), "int": (int, "a whole number"), "float": ((int, float), "a number"),
    "bool": (bool, "true or false"), "dict": (dict, "an object"),
}  # fmt: skip

_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def shard_spec(value) -> tuple[str, int]:
    """``("shards", N)`` for ``"N"``, ``("bytes", B)`` for a size such as ``"64MB"``; raises TfrecError."""
    text = str(value).strip().upper().replace(" ", "")
    if text.isdigit() and int(text) >= 1:
        return "shards", int(text)
    number = text.rstrip("KMGB")
    unit = text[len(number) :]
    try:
        size = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        size = 0
    if unit and size >= 1:
        return "bytes", int(size)
    raise TfrecError(f"shards {value!r}: use a number of shards (2) or a size per shard (64MB, 512KB, 1GB)")
