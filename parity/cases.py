"""The parity cases: model x data x split x training configuration (no torch, no TensorFlow).

A trajectory case runs a few hundred steps on small synthetic data: the
TensorFlow model starts from the reference's initial weights and takes the
reference's batches in the reference's order, so per-step losses and final
predictions must agree to a relative ``TRAJECTORY_RTOL``. A metric case trains
each framework independently on MovieLens-100K and compares test RMSE and MAE
means over seeds.
"""

from __future__ import annotations

import dataclasses

TRAJECTORY_RTOL = 1e-4
SMALL = "synthetic:users=60,items=40,ratings=1500,rank=3,sigma=0.3,seed=7"
SMALL_FM = "synthetic-fm:users=40,items=30,rank=3,sigma=0.1,seed=7"
FM_SMALL_FIELDS = ("user_id", "movie_id", "user_occupation_label", "movie_genres")
ML_SIDE_FIELDS = (
    "user_id", "movie_id", "bucketized_user_age", "user_gender", "user_occupation_label", "user_zip_code",
    "movie_genres",
)  # fmt: skip


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
      features: FM/FFM fields (TFDS names).
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
    seeds: tuple[int, ...] = ()
    features: tuple[str, ...] = ("user_id", "movie_id")

    @property
    def training_seeds(self) -> tuple[int, ...]:
        """Metric cases train once per seed (the split stays ``seed``'s); trajectory cases once."""
        return self.seeds or (self.seed,)

    def config(self) -> dict:
        config = {**dataclasses.asdict(self), "layers": list(self.layers), "seeds": list(self.seeds)}
        if self.model not in ("fm", "ffm"):
            del config["features"]  # fixtures written before FM keep their bytes
        else:
            config["features"] = list(self.features)
        return config


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
        Case(
            "fm-adam-l2",
            "fm",
            "adam",
            0.01,
            64,
            3,
            dim=4,
            l2=0.05,
            init_std=0.1,
            data=SMALL_FM,
            features=FM_SMALL_FIELDS,
        ),
        Case(
            "ffm-adagrad", "ffm", "adagrad", 0.05, 64, 3, dim=3, init_std=0.1, data=SMALL_FM, features=FM_SMALL_FIELDS
        ),
    ]
}

# Metric tier: each framework trains on its own from its own random initial weights (the same
# distribution), on ML-100K, once per seed; the means over seeds must agree within
# max(METRIC_ATOL, 3 x the reference's std).
METRIC_ATOL = 0.005
_ML = {"data": "ml-100k", "seed": 42, "tier": "metric", "seeds": (1, 2, 3), "dim": 32, "init_std": 0.1}
METRIC_CASES = {
    c.name: c
    for c in [
        Case("mf-ml100k-ratio", "mf", "adam", 0.003, 1024, 25, l2=0.1, split="ratio", **_ML),
        Case("mf-ml100k-u1", "mf", "adam", 0.003, 1024, 25, l2=0.1, split="u1", **_ML),
        Case("biased-mf-ml100k-ratio", "biased-mf", "adam", 0.01, 1024, 8, l2=0.1, split="ratio", **_ML),
        Case("biased-mf-ml100k-u1", "biased-mf", "adam", 0.01, 1024, 8, l2=0.1, split="u1", **_ML),
        Case(
            "ncf-ml100k-ratio", "ncf", "adam", 0.001, 1024, 6, layers=(64, 32, 16), l2=0.01, **{**_ML, "init_std": 0.01}
        ),
        Case("gmf-ml100k-ratio", "gmf", "adam", 0.001, 1024, 12, l2=0.01, **{**_ML, "init_std": 0.01}),
        Case(
            "neumf-ml100k-ratio",
            "neumf",
            "adam",
            0.001,
            1024,
            6,
            layers=(64, 32, 16),
            l2=0.01,
            **{**_ML, "init_std": 0.01},
        ),
        Case("autorec-i-ml100k-ratio", "autorec-i", "adam", 0.001, 256, 30, hidden=500, l2=0.001, **_ML),
        Case("autorec-u-ml100k-ratio", "autorec-u", "adam", 0.003, 256, 20, hidden=300, l2=0.001, **_ML),
        # FM and FFM vary more from seed to seed (0.002 RMSE here): five seeds a side.
        Case(
            "fm-ml100k-ratio",
            "fm",
            "adam",
            0.01,
            1024,
            8,
            l2=0.1,
            features=ML_SIDE_FIELDS,
            **{**_ML, "dim": 8, "seeds": (1, 2, 3, 4, 5)},
        ),
        Case(
            "ffm-ml100k-ratio",
            "ffm",
            "adam",
            0.01,
            1024,
            7,
            l2=0.1,
            features=ML_SIDE_FIELDS,
            **{**_ML, "dim": 4, "seeds": (1, 2, 3, 4, 5)},
        ),
        # The classic PyTorch MF blog posts: one rating per step, plain SGD, N(0, 1) factors, k=20, 10 epochs.
        Case("mf-per-sample-sgd", "mf", "sgd", 0.01, 1, 10, **{**_ML, "dim": 20, "init_std": 1.0}),
    ]
}
ALL_CASES = {**CASES, **METRIC_CASES}
