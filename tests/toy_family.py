"""A model family defined outside tfrec, as a user would write one: the registry is the only door it uses.

``r_hat(u, i) = mu + b_u + b_i``: biased MF without factors (the "baseline predictor" of Koren 2008).
Tests register it with :func:`registered` and then drive it through everything a built-in family gets.
"""

import contextlib

import numpy as np

import tfrec  # noqa: F401  (selects Keras 2 before tensorflow below)
import tensorflow as tf
from tfrec import families, registry
from tfrec.convert import layouts
from tfrec.models import IdEmbedding, RatingModel

NAME = "toy-biases"

FAMILY = families.Family(
    model="BaselinePredictor",
    title="Baseline predictor (a test's own family)",
    variants={NAME: {}},
    defaults={"dim": 1, "learning_rate": 0.05, "l2": 0.001, "batch_size": 256, "patience": 3, "refit": False},
    arguments={"l2": "l2", "item_bias_scale": "item_bias_scale"},
    search={"learning_rate": {"low": 0.005, "high": 0.2, "log": True}},  # what `tfrec tune` tries
    options={  # an option tfrec knows nothing of: --item-bias-scale on the command line
        "item_bias_scale": {
            "type": "float",
            "default": 1.0,
            "min": 0.0,
            "help": "multiplies the item biases",
            "search": {"low": 0.0, "high": 2.0},
        },
    },
)


@tf.keras.utils.register_keras_serializable(package="tfrec_tests")
class BaselinePredictor(RatingModel):
    def __init__(
        self, user_vocabulary, item_vocabulary, l2=0.0, global_mean=0.0, rating_range=None, item_bias_scale=1.0,
        **kwargs,
    ):  # fmt: skip
        super().__init__(rating_range=rating_range, **kwargs)
        self.l2, self.global_mean, self.item_bias_scale = float(l2), float(global_mean), float(item_bias_scale)
        self._add_lookups(user_vocabulary, item_vocabulary)
        self.user_bias = IdEmbedding(len(self.user_vocabulary), 1, "zeros", self.l2, name="user_bias")
        self.item_bias = IdEmbedding(len(self.item_vocabulary), 1, "zeros", self.l2, name="item_bias")

    def score_rows(self, users, items, training=False):
        return self.global_mean + self.user_bias(users)[:, 0] + self.item_bias_scale * self.item_bias(items)[:, 0]

    def get_config(self):
        return {
            **super().get_config(), "user_vocabulary": self.user_vocabulary, "item_vocabulary": self.item_vocabulary,
            "l2": self.l2, "global_mean": self.global_mean, "item_bias_scale": self.item_bias_scale,
        }  # fmt: skip


class BaselineLayout(layouts.Layout):
    """The PyTorch baseline predictor: ``bu``, ``bi`` (``nn.Embedding(n, 1)``) and a ``mu`` parameter."""

    names = {"user_bias.weight": ("bu.weight", "bu"), "item_bias.weight": ("bi.weight", "bi"), "mu": ("mean",)}

    def sizes(self, cls, state):
        return {}

    def build(self, cls, state, user_vocabulary, item_vocabulary, **kwargs):
        mu = float(np.reshape(state["mu"], ()))
        return super().build(cls, state, user_vocabulary, item_vocabulary, global_mean=mu, **kwargs)

    def assign(self, model, state):
        layouts.assign_table(model.user_bias, state, "user_bias.weight")
        layouts.assign_table(model.item_bias, state, "item_bias.weight")

    def scores(self, model, state, users, items):
        bu, bi = (np.asarray(state[f"{w}_bias.weight"], np.float64)[:, 0] for w in ("user", "item"))
        return float(np.reshape(state["mu"], ())) + bu[users] + model.item_bias_scale * bi[items]


@contextlib.contextmanager
def layout_registered():
    """The toy family's PyTorch layout in ``tfrec.registry.torch_layouts`` for the duration."""
    with registry.torch_layouts.registered(FAMILY.model, BaselineLayout()):
        yield


@contextlib.contextmanager
def registered():
    """The toy family in the registry for the duration (and only that)."""
    families.register(FAMILY, BaselinePredictor)
    try:
        yield FAMILY
    finally:
        families.unregister(FAMILY)
