"""Training configuration, importable without TensorFlow (the CLI builds its flags from it)."""

from __future__ import annotations

import dataclasses

from tfrec.errors import TfrecError

MODEL_NAMES = ("mf", "biased-mf")
OPTIMIZER_NAMES = ("adam", "adagrad", "sgd")
STRATEGY_NAMES = ("auto", "default", "mirrored")
# Measured on ML-100K 80/20 seed 42 (benchmarks/RESULTS.md): plain MF, with no mean or bias
# terms to carry the rating level, overfits at lr 0.01 before it converges.
DEFAULT_LEARNING_RATES = {"mf": 0.003, "biased-mf": 0.01}


@dataclasses.dataclass
class TrainConfig:
    """Everything ``tfrec train`` needs; defaults measured on ML-100K (benchmarks/RESULTS.md).

    Attributes:
      model: ``mf`` or ``biased-mf``.
      data: A dataset name, directory or spec (``tfrec.data.load``).
      split: ``ratio[:F]``, ``u1``..``u5`` or ``leave-last-out``.
      epochs: Upper bound; early stopping on validation RMSE usually ends sooner.
      batch_size: Examples per step.
      dim: Factor dimension.
      learning_rate: Optimizer learning rate; None: the model's measured default
        (:data:`DEFAULT_LEARNING_RATES`).
      l2: L2 weight on the looked-up rows of each batch.
      optimizer: ``adam``, ``adagrad`` or ``sgd``.
      seed: Seeds the split, the validation cut, initial weights and batch order.
      validation_fraction: Share of the training part held out for early stopping.
      patience: Epochs without a better validation RMSE before stopping.
      steps_per_execution: Batches per ``tf.function`` call (hides Python overhead).
      strategy: ``auto`` (all GPUs, else CPU), ``default`` or ``mirrored``.
    """

    model: str = "biased-mf"
    data: str = "ml-100k"
    split: str = "ratio"
    epochs: int = 50
    batch_size: int = 1024
    dim: int = 32
    learning_rate: float | None = None
    l2: float = 0.1
    optimizer: str = "adam"
    seed: int = 42
    validation_fraction: float = 0.1
    patience: int = 3
    steps_per_execution: int = 16
    strategy: str = "auto"

    def check(self) -> None:
        """Raises TfrecError naming the first field with a bad value."""
        if self.model not in MODEL_NAMES:
            raise TfrecError(f"unknown model {self.model!r}: use one of {', '.join(MODEL_NAMES)}")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise TfrecError(f"unknown optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZER_NAMES)}")
        for key in ("epochs", "batch_size", "dim", "steps_per_execution"):
            if getattr(self, key) < 1:
                raise TfrecError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LEARNING_RATES[self.model]
        if not self.learning_rate > 0:
            raise TfrecError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.l2 < 0 or self.patience < 0:
            raise TfrecError(f"l2 and patience must be >= 0, got {self.l2} and {self.patience}")
        if not 0 <= self.validation_fraction < 1:
            raise TfrecError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.strategy not in STRATEGY_NAMES:
            raise TfrecError(f"unknown strategy {self.strategy!r}: use one of {', '.join(STRATEGY_NAMES)}")
