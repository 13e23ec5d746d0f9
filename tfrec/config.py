"""Training configuration, importable without TensorFlow (the CLI builds its flags from it)."""

from __future__ import annotations

import dataclasses

from tfrec import families, registry
from tfrec.errors import TfrecError

FEEDBACK_NAMES = ("explicit", "implicit")
IMPLICIT_LOSS_NAMES = ("bce", "mse")
NORMALIZATION_NAMES = ("observed", "entries")
INIT_NAMES = ("torch", "glorot")
ACTIVATION_NAMES = ("sigmoid", "linear", "relu", "elu", "selu", "tanh", "softplus", "swish", "gelu")
ID_FEATURES = ("user_id", "movie_id")
PRECISION_NAMES = ("float16", "bfloat16")
#: The fields every family's ``defaults`` sets (``tfrec.families.Family``), measured per family on
#: ML-100K 80/20 seed 42 by the validation cut of the training part (benchmarks/RESULTS.md).
#: The epoch cap: early stopping, not the cap, should end a run; without a validation cut nothing else does.
DEFAULT_EPOCHS, DEFAULT_EPOCHS_WITHOUT_VALIDATION = 500, 50
PER_MODEL = ("dim", "learning_rate", "l2", "batch_size", "patience", "refit")


def _parse_layers(layers) -> tuple[int, ...]:
    if isinstance(layers, str):
        try:
            layers = [int(x) for x in layers.replace(" ", "").split(",") if x]
        except ValueError:
            raise TfrecError(f"layers must be comma-separated integers like 256,64, got {layers!r}") from None
    layers = tuple(int(x) for x in layers)
    if any(x < 1 for x in layers):
        raise TfrecError(f"layers must be positive widths, got {','.join(map(str, layers))}")
    return layers


def _parse_features(features) -> tuple[str, ...]:
    names = features.replace(" ", "").split(",") if isinstance(features, str) else list(features)
    names = tuple(str(n) for n in names if n)
    if not names:
        raise TfrecError("features must name at least one field, e.g. user_id,movie_id")
    return names


@dataclasses.dataclass
class TrainConfig:
    """Everything ``tfrec train`` needs; defaults measured on ML-100K (benchmarks/RESULTS.md).

    A field left at None takes the model's default (its family's ``defaults``,
    ``tfrec.families``) or, for ``split``, the feedback's, when :meth:`check` runs.

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
        ``tfrec.optimizers.TorchAdagrad``), ``sgd``, or one the user registered.
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
      features: FM/FFM fields, TFDS names (``user_id``, ``movie_id``, ``bucketized_user_age``,
        ``user_gender``, ``user_occupation_label``, ``user_zip_code``, ``movie_genres``, ...);
        a comma-separated string is split.
      layers: NCF hidden layer widths.
      dropout: NCF dropout before each hidden layer.
      feedback: ``explicit`` (ratings) or ``implicit`` (interactions: NCF); None: the data's
        (``implicit`` for a file without a rating column, else ``explicit``), set when the data loads.
      columns: For a file of the user's own: ``user=COL,item=COL[,rating=COL][,timestamp=COL]``
        (``tfrec.data.files``); None: found by their names.
      delimiter: For a delimited file; None: sniffed.
      negatives: Implicit NCF: sampled unrated items per rated pair, per epoch.
      implicit_loss: Implicit NCF: ``bce`` or ``mse`` (on the sigmoid output).
      hidden: AutoRec hidden units.
      encoder_activation, decoder_activation: AutoRec activations.
      loss_normalization: AutoRec: ``observed`` (mean over observed ratings) or
        ``entries`` (mean over every vector entry).
      input_dropout: AutoRec: rate of observed input ratings dropped in training.
      init: AutoRec kernels: ``torch`` (``nn.Linear``'s U(+-1/sqrt(fan_in)),
        measured slightly better on ML-100K) or ``glorot`` (Keras' default).
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
    optimizer: str = "adam"
    seed: int = 42
    validation_fraction: float = 0.1
    patience: int | None = None
    steps_per_execution: int = 128
    strategy: str = "auto"
    shards: str | None = None
    features: tuple[str, ...] | str = ID_FEATURES
    layers: tuple[int, ...] | str = (64, 32, 16)
    dropout: float = 0.0
    feedback: str | None = None
    negatives: int = 4
    implicit_loss: str = "bce"
    hidden: int = 300
    encoder_activation: str = "sigmoid"
    decoder_activation: str = "linear"
    loss_normalization: str = "observed"
    input_dropout: float = 0.25
    init: str = "torch"
    refit: bool | None = None
    checkpoint_dir: str | None = None
    deterministic: bool = False
    mixed_precision: str | None = None
    columns: str | None = None
    delimiter: str | None = None

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
                f"{self.data}: has no rating column (interactions only); {self.model} learns ratings: "
                f"train an implicit-feedback model (--model {' / '.join(able)})"
            )
        self.check()

    @property
    def _defaulted(self) -> dict:
        """Which of ``feedback`` and ``split`` :meth:`check` filled in (the data may still change them)."""
        if "_filled" not in self.__dict__:
            self.__dict__["_filled"] = {}
        return self.__dict__["_filled"]

    def check(self) -> None:
        """Fills model defaults; raises TfrecError naming the first field with a bad value."""
        family = self.family  # raises for an unknown model, listing the known ones
        registry.optimizers.entry(self.optimizer)  # raises for an unknown name, listing the registered ones
        registry.strategies.entry(self.strategy)
        for key, allowed in (
            ("feedback", (*FEEDBACK_NAMES, None)), ("implicit_loss", IMPLICIT_LOSS_NAMES),
            ("loss_normalization", NORMALIZATION_NAMES), ("encoder_activation", ACTIVATION_NAMES),
            ("decoder_activation", ACTIVATION_NAMES), ("init", INIT_NAMES),
        ):  # fmt: skip
            if getattr(self, key) not in allowed:
                named = ", ".join(a for a in allowed if a is not None)
                raise TfrecError(f"unknown {key} {getattr(self, key)!r}: use one of {named}")
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
        self.layers = _parse_layers(self.layers)
        self.features = _parse_features(self.features)
        if self.features != ID_FEATURES and not family.side_features:
            able = [n for f in families.families() if f.side_features for n in f.variants]
            raise TfrecError(f"features are for {', '.join(able)}; {self.model} uses user_id and movie_id")
        for key in ("epochs", "batch_size", "dim", "steps_per_execution", "negatives", "hidden"):
            if getattr(self, key) < 1:
                raise TfrecError(f"{key} must be at least 1, got {getattr(self, key)}")
        if not self.learning_rate > 0:
            raise TfrecError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.l2 < 0 or self.patience < 0:
            raise TfrecError(f"l2 and patience must be >= 0, got {self.l2} and {self.patience}")
        if not 0 <= self.validation_fraction < 1:
            raise TfrecError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        for key in ("dropout", "input_dropout"):
            if not 0 <= getattr(self, key) < 1:
                raise TfrecError(f"{key} must be in [0, 1), got {getattr(self, key)}")


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
