"""The parity cases (``cases.toml``): model x data x split x training configuration (no torch, no TensorFlow).

A trajectory case runs a few hundred steps on small synthetic data: the
TensorFlow model starts from the reference's initial weights and takes the
reference's batches in the reference's order, so per-step losses and final
predictions must agree to a relative ``TRAJECTORY_RTOL``. A metric case trains
each framework independently on MovieLens-100K and compares test RMSE and MAE
means over seeds.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from tfrec import families

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
        if not families.family(self.model).side_features:
            del config["features"]  # fixtures written before FM keep their bytes
        else:
            config["features"] = list(self.features)
        return config


def case_config(case: Case):
    """The checked ``tfrec.config.TrainConfig`` of a case: its model options, ``tfrec train``'s for the rest.

    Input dropout is off: the references have none. The references weigh biases by the case's one ``l2``.
    """
    from tfrec.config import TrainConfig

    settings = {"layers": case.layers, "hidden": case.hidden, "input_dropout": 0.0, "features": case.features,
                "bias_l2": case.l2}  # fmt: skip
    options = {k: v for k, v in settings.items() if k in families.own_options(case.model)}  # the model's own
    config = TrainConfig(
        model=case.model, dim=case.dim, l2=case.l2, learning_rate=case.learning_rate, **options
    )  # fmt: skip
    config.check()
    return config


def _load() -> tuple[dict, dict]:
    """The cases of ``cases.toml``; a string value naming a constant of this module stands for it."""
    spec = tomllib.loads((Path(__file__).parent / "cases.toml").read_text(encoding="utf-8"))
    named = {"SMALL": SMALL, "SMALL_FM": SMALL_FM, "FM_SMALL_FIELDS": FM_SMALL_FIELDS, "ML_SIDE_FIELDS": ML_SIDE_FIELDS}

    def case(entry: dict, defaults: dict) -> Case:
        values = {**defaults, **entry}
        values = {k: named.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return Case(**values)

    trajectory = [case(e, {}) for e in spec["trajectory"]]
    metric = [case(e, spec["metric_defaults"]) for e in spec["metric"]]
    return {c.name: c for c in trajectory}, {c.name: c for c in metric}


# Metric tier: the means over seeds must agree within max(METRIC_ATOL, 3 x the reference's std).
METRIC_ATOL = 0.005
CASES, METRIC_CASES = _load()
ALL_CASES = {**CASES, **METRIC_CASES}
