"""The parity cases: model x data x split x training configuration (no torch, no TensorFlow).

A trajectory case runs a few hundred steps on small synthetic data: the
TensorFlow model starts from the reference's initial weights and takes the
reference's batches in the reference's order, so per-step losses and final
predictions must agree to a relative ``TRAJECTORY_RTOL``.
"""

from __future__ import annotations

import dataclasses

TRAJECTORY_RTOL = 1e-4
SMALL = "synthetic:users=60,items=40,ratings=1500,rank=3,sigma=0.3,seed=7"


@dataclasses.dataclass(frozen=True)
class Case:
    """One parity case.

    Attributes:
      name: File stem of the fixture.
      model: A ``tfrec train`` model name.
      optimizer: ``sgd``, ``adagrad`` or ``adam`` (PyTorch defaults for the
        rest: Adam betas (0.9, 0.999) and eps 1e-8, Adagrad eps 1e-10 and no
        initial accumulator).
      learning_rate, batch_size, epochs: Training.
      dim: Embedding width (MF, NCF).
      layers: NCF tower widths.
      hidden: AutoRec hidden units.
      l2: MF/NCF: tfrec's per-batch L2 on looked-up rows (the reference adds the
        same term to its loss). AutoRec: Keras L2 on the kernels, which is PyTorch
        ``weight_decay = 2 * l2`` on the weight matrices only.
      init_std: Std of the reference's normal embedding init.
      data, split, seed: What it trains on; ``seed`` seeds the split, the
        initial weights and the batch order.
    """

    name: str
    model: str
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs: int
    dim: int = 8
    layers: tuple[int, ...] = (16, 8)
    hidden: int = 16
    l2: float = 0.0
    init_std: float = 1.0
    data: str = SMALL
    split: str = "ratio"
    seed: int = 0
    tier: str = "trajectory"

    def config(self) -> dict:
        return {**dataclasses.asdict(self), "layers": list(self.layers)}


CASES = {
    c.name: c
    for c in [
        Case("mf-sgd", "mf", "sgd", 0.05, 64, 4, init_std=0.3),
        Case("mf-adagrad", "mf", "adagrad", 0.05, 64, 4),
        Case("mf-adam", "mf", "adam", 0.01, 64, 4),
        Case("biased-mf-adam-l2", "biased-mf", "adam", 0.01, 64, 4, l2=0.05, init_std=0.1),
        Case("biased-mf-sgd", "biased-mf", "sgd", 0.05, 32, 3, init_std=0.1),
        Case("ncf-adam", "ncf", "adam", 0.003, 64, 3, init_std=0.01),
        Case("gmf-sgd", "gmf", "sgd", 0.5, 64, 3, init_std=0.3),
        Case("neumf-adagrad", "neumf", "adagrad", 0.05, 64, 3, init_std=0.01),
        Case("autorec-i-adam-l2", "autorec-i", "adam", 0.003, 8, 4, l2=0.001),
        Case("autorec-u-sgd", "autorec-u", "sgd", 0.05, 8, 4),
    ]
}
