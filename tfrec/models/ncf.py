"""Neural collaborative filtering: the MLP, GMF and NeuMF models of He et al. (2017)."""

from __future__ import annotations


from tfrec._keras import tf
import tensorflow_recommenders as tfrs

from tfrec.data.implicit import implicit_dataset
from tfrec.errors import TfrecError
from tfrec.families import Family
from tfrec.models._base import RatingModel, rating_task
from tfrec.models._layers import (
    IdEmbedding,
    mlp_tower,
)

VARIANTS = ("mlp", "gmf", "neumf")
FEEDBACK = ("explicit", "implicit")
IMPLICIT_LOSSES = ("bce", "mse")


def implicit_task(loss: str) -> tfrs.tasks.Ranking:
    """The implicit-feedback head: BCE on logits, or MSE on the sigmoid output; AUC as metric."""
    none = tf.keras.losses.Reduction.NONE
    if loss == "bce":
        return tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=none),
            metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")],
        )
    return tfrs.tasks.Ranking(
        loss=tf.keras.losses.MeanSquaredError(reduction=none),
        metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse"), tf.keras.metrics.AUC(name="auc")],
    )


FAMILY = Family(
    model="NeuralCollaborativeFiltering",
    title="NCF",
    variants={"ncf": {"variant": "mlp"}, "gmf": {"variant": "gmf"}, "neumf": {"variant": "neumf"}},
    # The refit on the whole training part helped GMF and NeuMF on each of five ML-100K splits and NCF on four
    # (benchmarks/RESULTS.md, "Defaults that follow the data"); implicit NeuMF too.
    defaults={"dim": 32, "learning_rate": 0.001, "l2": 0.01, "batch_size": 1024, "patience": 3, "refit": True},
    arguments={
        "dim": "dim", "layers": "layers", "dropout": "dropout", "feedback": "feedback",
        "implicit_loss": "implicit_loss", "l2": "l2", "mixed_precision": "mixed_precision",
    },
    options={
        "layers": {"type": "ints", "default": [64, 32, 16], "help": "MLP widths", "variants": ["ncf", "neumf"],
                   "search": {"choices": [[64, 32, 16], [128, 64, 32], [256, 128, 64], [64, 32]]}},
        "dropout": {"type": "float", "default": 0.0, "min": 0.0, "below": 1.0, "help": "before each MLP layer",
                    "variants": ["ncf", "neumf"],
                    "search": {"low": 0.0, "high": 0.5}},
        "negatives": {"type": "int", "default": 4, "min": 1, "pipeline": True, "feedback": "implicit",
                      "help": "implicit: sampled unrated items per rated pair, per epoch",
                      "search": {"low": 1, "high": 8}},
        "implicit_loss": {"type": "str", "default": "bce", "choices": ["bce", "mse"], "feedback": "implicit",
                          "help": "implicit: the loss on the output (mse: on the sigmoid)"},
    },
    search={"learning_rate": {"low": 0.0003, "high": 0.01, "log": True}, "dim": {"low": 8, "high": 64, "log": True},
            "l2": {"low": 0.0001, "high": 0.1, "log": True}, "batch_size": {"choices": [256, 512, 1024, 2048]}},
    implicit=True,
    mixed_precision=("ncf", "neumf"),  # GMF has no Dense layer but its output
    rank=30,
)  # fmt: skip


@tf.keras.utils.register_keras_serializable(package="tfrec")
class NeuralCollaborativeFiltering(RatingModel):
    """NCF (He, Liao, Zhang, Nie, Hu & Chua, WWW 2017) for ratings or implicit feedback.

    Three variants of one family, chosen by ``variant``:

    - ``mlp``: ``y = w . MLP([p_u ; q_i]) + b``, the user and item embeddings
      concatenated and fed to a tower of Dense layers (each after an optional
      Dropout). With ``dim=32, layers=[256, 64]`` this is the model of the
      TensorFlow Recommenders basic ranking tutorial.
    - ``gmf``: ``y = w . (g_u * h_i) + b``, a weighted dot product.
    - ``neumf``: ``y = w . [g_u * h_i ; MLP([p_u ; q_i])] + b``, the two
      branches (with their own embeddings) fused before the output layer.

    With ``feedback="explicit"`` ``y`` is the rating (MSE loss, RMSE/MAE
    metrics); the output bias starts at the training mean. With
    ``feedback="implicit"`` the model predicts ``sigmoid(y)``, the probability
    that the user interacts with the item (label ``label``: 1 for a rated pair,
    0 for a sampled one), trained with binary cross-entropy on ``y`` or, as the
    common PyTorch NCF tutorial does, MSE on ``sigmoid(y)``.

    A pair with an unseen user or item predicts the training mean (explicit)
    or 0 (implicit: an id with no interactions is never recommended).

    Args:
      user_vocabulary, item_vocabulary: Known ids (strings).
      variant: ``mlp``, ``gmf`` or ``neumf``.
      dim: Embedding width of the MLP branch (each of user and item).
      gmf_dim: Embedding width of the GMF branch; default ``dim``.
      layers: Widths of the MLP's hidden layers.
      dropout: Dropout rate before each hidden layer (0: none).
      activation: Hidden-layer activation.
      feedback: ``explicit`` or ``implicit``.
      implicit_loss: ``bce`` or ``mse`` (implicit only).
      l2: L2 weight on the looked-up embedding rows per batch (see ``IdEmbedding``).
      embeddings_initializer: Keras initializer of the embeddings; "default" is
        N(0, 0.01), the NCF paper's.
      global_mean, rating_range: From the training table (explicit only).

    Example (``train`` is a training ``tfrec.data.Ratings``, such as
    ``tfrec.data.split(tfrec.data.load("ml-100k")).train``; tests run it):
      >>> model = NeuralCollaborativeFiltering.from_table(train, variant="neumf", layers=[64, 32, 16])
      >>> model.compile(optimizer=tf.keras.optimizers.Adam(0.001))
      >>> history = model.fit(tfrec.data.dataset(train, 1024, shuffle=True), epochs=1, verbose=0)
      >>> model({"user_id": tf.constant(["1", "nobody"]), "movie_id": tf.constant(["1", "1"])}).shape
      TensorShape([2])
    """

    mixed_precision_layers = True
    default_embedding_std = 0.01  # the NCF paper's N(0, 0.01)

    @staticmethod
    def branches(variant: str) -> tuple[bool, bool]:
        """``(gmf, mlp)``: which of the two branches a variant has."""
        return variant != "mlp", variant != "gmf"

    def __init__(
        self,
        user_vocabulary,
        item_vocabulary,
        variant: str = "mlp",
        dim: int = 32,
        gmf_dim: int | None = None,
        layers=(256, 64),
        dropout: float = 0.0,
        activation="relu",
        feedback: str = "explicit",
        implicit_loss: str = "bce",
        l2: float = 0.0,
        embeddings_initializer="default",
        global_mean: float = 0.0,
        rating_range=None,
        **kwargs,
    ):
        for key, value, allowed in (
            ("variant", variant, VARIANTS), ("feedback", feedback, FEEDBACK),
            ("implicit_loss", implicit_loss, IMPLICIT_LOSSES),
        ):  # fmt: skip
            if value not in allowed:
                raise TfrecError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
        layer_sizes = [int(s) for s in layers]
        has_gmf, has_mlp = self.branches(variant)
        if has_mlp and not layer_sizes:
            raise TfrecError(f"layers: the {variant} variant needs at least one hidden layer")
        if not 0.0 <= dropout < 1.0:
            raise TfrecError(f"dropout must be in [0, 1), got {dropout}")
        implicit = feedback == "implicit"
        super().__init__(
            rating_range=None if implicit else rating_range,
            task=implicit_task(implicit_loss) if implicit else rating_task(),
            **kwargs,
        )
        self.layer_sizes = layer_sizes
        self.label = "label" if implicit else "user_rating"
        self.variant, self.feedback, self.implicit_loss = variant, feedback, implicit_loss
        self.dim, self.gmf_dim = int(dim), int(gmf_dim or dim)
        self.dropout, self.activation, self.l2 = float(dropout), activation, float(l2)
        self.global_mean = float(global_mean)
        if embeddings_initializer == "default":
            embeddings_initializer = tf.keras.initializers.RandomNormal(stddev=self.default_embedding_std)
        self.embeddings_initializer = tf.keras.initializers.get(embeddings_initializer)
        self._add_lookups(user_vocabulary, item_vocabulary)
        if not has_mlp and self.mixed_precision:
            raise TfrecError(f"mixed_precision: the {variant} variant has no MLP tower to compute in it")
        self._build_layers(has_gmf, has_mlp, start=0.0 if implicit else self.global_mean)

    def _build_layers(self, has_gmf: bool, has_mlp: bool, start: float) -> None:
        """The branches' tables, the MLP tower and the output layer (its bias starting at ``start``)."""
        users, items = len(self.user_vocabulary), len(self.item_vocabulary)

        def table(n, width, name):
            return IdEmbedding(n, width, self.embeddings_initializer, self.l2, name=name)

        if has_mlp:
            self.user_mlp, self.item_mlp = table(users, self.dim, "user_mlp"), table(items, self.dim, "item_mlp")
            self.tower = mlp_tower(self.layer_sizes, self.dropout, self.activation, dtype=self.dense_policy())
        if has_gmf:
            self.user_gmf = table(users, self.gmf_dim, "user_gmf")
            self.item_gmf = table(items, self.gmf_dim, "item_gmf")
        self.output_layer = tf.keras.layers.Dense(1, bias_initializer=tf.keras.initializers.Constant(start))

    def logits(self, users, items, training=False):
        """``y`` of the class docstring, shape ``[batch]``, for row indices from :meth:`lookup`."""
        branches = []
        has_gmf, has_mlp = self.branches(self.variant)
        if has_gmf:
            branches.append(self.user_gmf(users) * self.item_gmf(items))
        if has_mlp:
            pair = tf.concat([self.user_mlp(users), self.item_mlp(items)], axis=-1)
            branches.append(tf.cast(self.tower(pair, training=training), tf.float32))
        fused = branches[0] if len(branches) == 1 else tf.concat(branches, axis=-1)
        return self.output_layer(fused)[:, 0]

    def score_rows(self, users, items, training=False):
        y, known = self.logits(users, items, training), tf.logical_and(users > 0, items > 0)
        if self.feedback == "implicit":
            return tf.where(known, tf.sigmoid(y), 0.0)
        return tf.where(known, y, self.global_mean)

    def loss_inputs(self, features, training=False):
        if self.feedback == "explicit":
            return super().loss_inputs(features, training)
        y = self.logits(*self.lookup(features), training=training)
        predictions = y if self.implicit_loss == "bce" else tf.sigmoid(y)
        return features[self.label][:, tf.newaxis], predictions[:, tf.newaxis], None

    def training_dataset(self, table, batch_size=1024, *, shuffle=True, seed=42, negatives: int = 4, **kwargs):
        """Rating pairs, or with implicit feedback each interaction with ``negatives`` sampled items (label 0)."""
        if self.feedback == "implicit":
            return implicit_dataset(table, negatives, batch_size, shuffle=shuffle, seed=seed, **kwargs)
        return super().training_dataset(table, batch_size, shuffle=shuffle, seed=seed, **kwargs)

    def get_config(self):
        return {
            **super().get_config(),
            "user_vocabulary": self.user_vocabulary,
            "item_vocabulary": self.item_vocabulary,
            "variant": self.variant,
            "dim": self.dim,
            "gmf_dim": self.gmf_dim,
            "layers": self.layer_sizes,
            "dropout": self.dropout,
            "activation": self.activation,
            "feedback": self.feedback,
            "implicit_loss": self.implicit_loss,
            "l2": self.l2,
            "embeddings_initializer": tf.keras.initializers.serialize(self.embeddings_initializer),
            "global_mean": self.global_mean,
        }
