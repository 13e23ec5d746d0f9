"""AutoRec: an autoencoder over each item's (or user's) vector of observed ratings."""

from __future__ import annotations

import numpy as np
from tfrec._keras import tf

from tfrec import ops

from tfrec.data.pipeline import vocabulary_rows
from tfrec.data.table import Ratings
from tfrec.data.vectors import compress, observed_entries, rating_rows, sparse_rows, vector_dataset, vectors_in
from tfrec.errors import TfrecError
from tfrec.families import Family
from tfrec.models._base import RatingModel
from tfrec.models._layers import SeededDropout, gather_dense_gradient

KINDS = ("item", "user")
NORMALIZATIONS = ("observed", "entries")
INITS = ("glorot", "torch")


FAMILY = Family(
    model="AutoRec",
    title="AutoRec",
    variants={"autorec-i": {"kind": "item"}, "autorec-u": {"kind": "user"}},
    # A batch is rating vectors (items or users), not ratings. The training ratings are also the model's
    # inputs, so the held-out validation cut costs it twice, and it refits on the whole training part.
    defaults={"dim": 32, "learning_rate": 0.001, "l2": 0.001, "batch_size": 256, "patience": 5, "refit": True},
    variant_defaults={"autorec-u": {"learning_rate": 0.003}},
    arguments={
        "hidden": "hidden", "encoder_activation": "encoder_activation", "decoder_activation": "decoder_activation",
        "l2": "l2", "loss_normalization": "loss_normalization", "input_dropout": "input_dropout", "init": "init",
        "mixed_precision": "mixed_precision",
    },
    options={
        "hidden": {"type": "int", "default": 300, "min": 1, "help": "hidden units",
                   "search": {"low": 100, "high": 1000, "log": True}},
        "encoder_activation": {
            "type": "str", "default": "sigmoid", "help": "encoder",
            "choices": ["sigmoid", "linear", "relu", "elu", "selu", "tanh", "softplus", "swish", "gelu"],
        },
        "decoder_activation": {
            "type": "str", "default": "linear", "help": "decoder",
            "choices": ["sigmoid", "linear", "relu", "elu", "selu", "tanh", "softplus", "swish", "gelu"],
        },
        "loss_normalization": {"type": "str", "default": "observed", "choices": ["observed", "entries"],
                               "help": "mean over observed ratings, or over every vector entry"},
        "init": {"type": "str", "default": "torch", "choices": ["torch", "glorot"],
                 "help": "kernel init: nn.Linear's U(+-1/sqrt(fan_in)), or Glorot's"},
        "input_dropout": {"type": "float", "default": 0.25, "min": 0.0, "below": 1.0,
                          "help": "rate of observed input ratings dropped in training",
                          "search": {"low": 0.0, "high": 0.5}},
    },
    search={"learning_rate": {"low": 0.0003, "high": 0.01, "log": True},
            "l2": {"low": 0.0001, "high": 0.1, "log": True}, "batch_size": {"choices": [32, 64, 128, 256, 512]}},
    mixed_precision=("autorec-i", "autorec-u"),
    threads_per_op="all",  # dense matrix products: one thread per core each
    rank=40,
)  # fmt: skip


@tf.keras.utils.register_keras_serializable(package="tfrec")
class AutoRec(RatingModel):
    """AutoRec (Sedhain, Menon, Sanner & Xie, WWW 2015), item- or user-based.

    I-AutoRec (``kind="item"``) reads item ``i``'s ratings by all users,
    ``r_i`` in R^users (0 where unobserved), and reconstructs them:

        h(r_i) = f(V r_i + mu),    r_hat_i = g(W h(r_i) + b)

    with ``f`` the encoder and ``g`` the decoder activation. U-AutoRec
    (``kind="user"``) does the same with a user's ratings of all items. The
    rating of pair ``(u, i)`` is entry ``u`` of ``r_hat_i`` (I-AutoRec), with
    ``r_i`` taken from the training ratings, which the model keeps (compressed
    rows in non-trainable variables, saved with the weights). So
    ``model({"user_id", "movie_id"})`` works like every other tfrec model; it
    computes only the decoder units it needs, with a sparse-dense matmul for the
    encoder, so no dense rating matrix is ever built. A pair with an unseen
    user or item predicts the training mean.

    Training examples are rating vectors (``tfrec.data.vector_dataset``:
    ``{"ratings": [B, n], "mask": [B, n]}``, or with ``ragged=True``, as
    ``tfrec train`` feeds them, only the observed entries: ``{"columns",
    "ratings"}`` ragged ``[B, None]``; the model reads both). Unobserved entries count
    nowhere: the encoder reads ``ratings * mask``, and the mask is the Ranking
    task's sample weight, so they add nothing to the loss or the RMSE/MAE
    metrics whatever value they hold. So on a CPU the loss reads the model at
    the observed entries only (``tfrec.ops.observed_matmul`` for the encoder,
    ``sampled_matmul`` for the decoder, and their gradients): the same numbers
    as the dense products, in about a twentieth of the arithmetic on MovieLens.
    On a GPU, under XLA, in mixed precision or without tfrec's native kernels
    it takes the dense products. Input dropout is drawn at the observed entries
    either way, so both paths take the same steps. ``loss_normalization``
    says what the masked squared errors are divided by:

    - ``observed`` (default): the number of observed entries in the (global)
      batch, a mean over ratings, as the PyTorch AutoRec tutorials compute
      ``((r_hat - r) * mask).pow(2).sum() / mask.sum()``.
    - ``entries``: all ``B x n`` entries, which is what Keras' MSE with a
      sample weight computes (and d2l's masked Gluon loss).

    Args:
      user_vocabulary, item_vocabulary: Known ids (strings).
      kind: ``item`` (I-AutoRec) or ``user`` (U-AutoRec).
      hidden: Width of the hidden layer.
      encoder_activation, decoder_activation: Keras activations of ``f`` and
        ``g``; the paper's best is sigmoid and identity (``linear``).
      l2: Keras L2 weight on both kernels, ``l2 * (||V||^2 + ||W||^2)`` (the
        paper's ``lambda / 2``).
      loss_normalization: ``observed`` or ``entries``.
      input_dropout: Rate at which observed input ratings are dropped in
        training (the targets keep them), as in denoising autoencoders. A pair's
        own rating is in its training input but never in its test input; the
        dropout keeps the model from learning to copy it. 0 is the paper's model.
      init: ``glorot`` (Keras' Glorot-uniform kernels, zero encoder bias) or
        ``torch`` (``nn.Linear``'s U(+-1/sqrt(fan_in)) kernels and encoder
        bias); the parity metric tier compares the two.
      global_mean, rating_range: From the training table.
      ratings: ``(row_splits, columns, values)`` of the training ratings
        (:func:`tfrec.data.rating_rows`); None when restoring from a config,
        where the saved weights bring them back.

    Example (``train`` is a training ``tfrec.data.Ratings``, such as
    ``tfrec.data.split(tfrec.data.load("ml-100k")).train``; tests run it):
      >>> model = AutoRec.from_table(train, kind="item", hidden=300, input_dropout=0.25)
      >>> model.compile(optimizer=tf.keras.optimizers.Adam(0.001))
      >>> history = model.fit(tfrec.data.vector_dataset(train, "item", 256, shuffle=True), epochs=1, verbose=0)
      >>> model({"user_id": tf.constant(["1", "nobody"]), "movie_id": tf.constant(["1", "1"])}).shape
      TensorShape([2])
    """

    reads_streams = False  # it reads whole rating vectors, which a stream does not hold
    mixed_precision_layers = True

    def __init__(
        self,
        user_vocabulary,
        item_vocabulary,
        kind: str = "item",
        hidden: int = 500,
        encoder_activation="sigmoid",
        decoder_activation="linear",
        l2: float = 0.0,
        loss_normalization: str = "observed",
        input_dropout: float = 0.0,
        init: str = "glorot",
        global_mean: float = 0.0,
        rating_range=None,
        ratings=None,
        **kwargs,
    ):
        if kind not in KINDS:
            raise TfrecError(f"kind must be 'item' or 'user', got {kind!r}")
        if loss_normalization not in NORMALIZATIONS:
            raise TfrecError(f"loss_normalization must be 'observed' or 'entries', got {loss_normalization!r}")
        super().__init__(rating_range=rating_range, **kwargs)
        self.kind, self.hidden, self.l2 = kind, int(hidden), float(l2)
        self.encoder_activation, self.decoder_activation = encoder_activation, decoder_activation
        self.loss_normalization, self.global_mean = loss_normalization, float(global_mean)
        if not 0.0 <= input_dropout < 1.0:
            raise TfrecError(f"input_dropout must be in [0, 1), got {input_dropout}")
        self.input_dropout = float(input_dropout)
        self.dropout = SeededDropout(self.input_dropout, name="input_dropout")
        self._add_lookups(user_vocabulary, item_vocabulary)
        users, items = len(self.user_vocabulary), len(self.item_vocabulary)
        rows, self.width = (items, users) if kind == "item" else (users, items)
        self._store_ratings(ratings, rows)
        if init not in INITS:
            raise TfrecError(f"init must be 'glorot' or 'torch', got {init!r}")
        self.init = init
        self._build_layers(hidden, encoder_activation, decoder_activation)

    def _store_ratings(self, ratings, rows: int) -> None:
        """The input ratings as CSR variables (``row_splits``, ``columns``, ``values``) of ``rows`` rows."""
        if ratings is None:  # from a config: the weights bring the ratings back
            ratings = np.zeros(rows + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        splits, columns, values = (np.asarray(a) for a in ratings)
        if len(splits) != rows + 1 or not splits[-1] == len(columns) == len(values):
            raise TfrecError(
                f"ratings: row_splits of length {len(splits)} ending at {splits[-1]}, {len(columns)} columns and "
                f"{len(values)} values do not describe {rows} rows"
            )
        # Plain variables, not Keras weights: the number of ratings may change (set_ratings).
        self.row_splits = tf.Variable(np.asarray(splits, np.int64), trainable=False, name="row_splits")
        self.columns = tf.Variable(np.asarray(columns, np.int32), trainable=False, name="columns", shape=[None])
        self.values = tf.Variable(np.asarray(values, np.float32), trainable=False, name="values", shape=[None])

    def _build_layers(self, hidden: int, encoder_activation, decoder_activation) -> None:
        """The encoder and decoder, built, with ``init``'s initializers."""
        init = self.init
        regularizer = tf.keras.regularizers.L2(self.l2) if self.l2 else None

        def kernel():  # a fresh instance per layer: one unseeded instance reused draws the same values
            if init == "torch":  # nn.Linear: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in))
                return tf.keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
            return tf.keras.initializers.GlorotUniform()

        encoder_bias = "zeros"
        if init == "torch":  # nn.Linear's bias: U(+-1/sqrt(fan_in))
            encoder_bias = tf.keras.initializers.RandomUniform(-(self.width**-0.5), self.width**-0.5)
        self.encoder = tf.keras.layers.Dense(
            hidden, encoder_activation, kernel_initializer=kernel(), bias_initializer=encoder_bias,
            kernel_regularizer=regularizer, name="encoder", dtype=self.dense_policy(),
        )  # fmt: skip
        # An identity decoder starts at the training mean rather than at 0: it need not learn the rating level first.
        start = self.global_mean if decoder_activation == "linear" else 0.0
        self.decoder = tf.keras.layers.Dense(
            self.width, decoder_activation, kernel_initializer=kernel(), kernel_regularizer=regularizer,
            bias_initializer=tf.keras.initializers.Constant(start), name="decoder", dtype=self.dense_policy(),
        )  # fmt: skip
        self.encoder.build((None, self.width))
        self.decoder.build((None, self.hidden))

    @classmethod
    def from_table(cls, train: Ratings, kind: str = "item", **kwargs):
        """The model with the vocabularies, mean, range and rating rows of a training table."""
        if kind not in KINDS:
            raise TfrecError(f"kind must be 'item' or 'user', got {kind!r}")
        rows = rating_rows(train, kind)
        stored = (rows.row_splits, rows.columns, rows.values)
        return cls(**{**cls.table_args(train), "kind": kind, "ratings": stored, **kwargs})

    def training_dataset(self, table, batch_size=64, *, shuffle=True, seed=42, **kwargs):
        """Rating vectors of the model's kind, the observed entries only (ragged ``{columns, ratings}``)."""
        return vector_dataset(table, self.kind, batch_size, ragged=True, shuffle=shuffle, seed=seed, **kwargs)

    @classmethod
    def vector_kind(cls, name: str) -> str:
        return FAMILY.variants[name]["kind"]

    def stored_ratings(self):
        splits, columns = self.row_splits.numpy(), self.columns.numpy().astype(np.int64)
        rows = np.repeat(np.arange(len(splits) - 1), np.diff(splits))
        return (columns + 1, rows) if self.kind == "item" else (rows + 1, columns)

    def set_ratings(self, table: Ratings) -> None:
        """Replaces the stored input ratings with ``table``'s (ids outside the vocabularies are left out).

        The weights stay. ``tfrec train`` calls it after early stopping with the
        whole training part, so the validation cut's ratings, held out while
        fitting, are inputs again when predicting, as they are known ratings.
        """
        u = vocabulary_rows(self.user_vocabulary, table.user_ids)[table.user] - 1  # 0-based; -1: unknown id
        i = vocabulary_rows(self.item_vocabulary, table.item_ids)[table.item] - 1
        keep = (u >= 0) & (i >= 0)
        rows, cols = (i[keep], u[keep]) if self.kind == "item" else (u[keep], i[keep])
        splits, columns, values = compress(rows, cols, table.rating[keep], self.row_splits.shape[0] - 1)
        self.row_splits.assign(splits)
        self.columns.assign(columns)
        self.values.assign(values)

    @property
    def num_ratings(self) -> int:
        """How many training ratings the model holds as inputs."""
        return int(tf.size(self.values))

    def reconstruct(self, ratings, training=False, mask=None):
        """``r_hat`` for dense rating vectors ``[B, width]`` (``mask``: where they are observed; default nonzero)."""
        if mask is None:
            mask = tf.cast(tf.not_equal(ratings, 0), ratings.dtype)
        inputs = ratings * mask
        if self.input_dropout and training:  # drawn at the observed entries, as the observed-entry path draws
            entries = tf.where(tf.not_equal(mask, 0))
            dropped = self.dropout(tf.gather_nd(inputs, entries), training=training)
            inputs = tf.scatter_nd(entries, dropped, tf.shape(inputs, out_type=tf.int64))
        decoded = self.decoder(self.encoder(inputs, training=training), training=training)
        return tf.cast(decoded, tf.float32)  # mixed precision: the loss and metrics in float32

    def score(self, features, training=False):
        if "ratings" in features:
            # Unobserved entries read as 0 whatever the vector holds there, so they change nothing.
            ratings, mask = self._dense_vectors(features)
            return self.reconstruct(ratings, training, mask=mask)
        return super().score(features, training)

    def score_rows(self, users, items, training=False):
        rows, columns = (items, users) if self.kind == "item" else (users, items)
        known = tf.logical_and(users > 0, items > 0)
        unique_rows, position = tf.unique(tf.maximum(rows - 1, 0))
        h = tf.gather(self._hidden(unique_rows), position)
        units = tf.maximum(columns - 1, 0)
        decoded = tf.reduce_sum(h * tf.transpose(tf.gather(self.decoder.kernel, units, axis=1)), axis=-1)
        decoded = self.decoder.activation(decoded + tf.gather(self.decoder.bias, units))
        return tf.where(known, decoded, self.global_mean)

    scores_item_grid = False

    def _hidden(self, rows):
        """``f(V r + mu)`` of the stored rating rows ``rows`` (0-based), ``[len(rows), hidden]``."""
        inputs = sparse_rows(self.row_splits, self.columns, self.values, rows, self.width)
        return self.encoder.activation(tf.sparse.sparse_dense_matmul(inputs, self.encoder.kernel) + self.encoder.bias)

    def item_state(self):
        """I-AutoRec: every item's code ``f(V r_i + mu)``, ``[V, hidden]``; U-AutoRec: None."""
        if self.kind == "user":
            return None
        return self._hidden(tf.range(len(self.item_vocabulary), dtype=tf.int64))

    def score_items(self, users, item_state=None):
        unit = tf.maximum(users - 1, 0)
        if self.kind == "user":  # each user's whole reconstructed vector
            decoded = self.decoder(self._hidden(unit))
        else:  # every item's code, read at each user's decoder unit
            codes = self.item_state() if item_state is None else item_state
            weights = tf.gather(self.decoder.kernel, unit, axis=1)  # [hidden, batch]
            decoded = tf.matmul(weights, codes, transpose_a=True, transpose_b=True)
            decoded = self.decoder.activation(decoded + tf.gather(self.decoder.bias, unit)[:, tf.newaxis])
        return tf.where((users > 0)[:, tf.newaxis], decoded, self.global_mean)

    def loss_inputs(self, features, training=False):
        if "ratings" not in features:
            return super().loss_inputs(features, training)
        kernels = self._product_kernels()
        if kernels is None:  # every entry of the batch, in dense products
            ratings, mask = self._dense_vectors(features)
            predictions = self({"ratings": ratings, "mask": mask}, training=training)
            flat = lambda x: tf.reshape(x, [-1, 1])  # noqa: E731
            return flat(ratings), flat(predictions), flat(mask)
        # Only the observed entries, which are all the loss reads: the same numbers in a twentieth of the work.
        rows, columns, ratings, weights = observed_entries(features)
        inputs = ratings * weights
        if self.input_dropout:  # the draws of the dense path, which also draws at the observed entries only
            inputs = self.dropout(inputs, training=training)
        batch = vectors_in(features)
        hidden = ops.observed_matmul(kernels, rows, columns, inputs, self.encoder.kernel, batch)
        hidden = self.encoder.activation(hidden + self.encoder.bias)
        decoded = ops.sampled_matmul(kernels, rows, columns, hidden, self.decoder.kernel)
        predictions = self.decoder.activation(decoded + gather_dense_gradient(self.decoder.bias, columns))
        if self.rating_range is not None and not training:  # as call() clips
            predictions = tf.clip_by_value(predictions, *self.rating_range)
        return ratings[:, tf.newaxis], predictions[:, tf.newaxis], weights[:, tf.newaxis]

    def _dense_vectors(self, features):
        """``(ratings, mask)``, each ``[B, width]``, of dense or ragged vectors."""
        if not isinstance(features["ratings"], tf.RaggedTensor):
            return features["ratings"], features["mask"]
        rows, columns, ratings, weights = observed_entries(features)
        entries = tf.stack([rows, columns], axis=1)
        shape = tf.stack([vectors_in(features), tf.constant(self.width, tf.int64)])
        return tf.scatter_nd(entries, ratings, shape), tf.scatter_nd(entries, weights, shape)

    # Refused where Keras makes its step functions, not in compile(): Keras skips a custom compile() when it
    # loads a model, which would then come back without its optimizer.
    def make_train_function(self, force=False):
        self._refuse_xla()
        return super().make_train_function(force)

    def make_test_function(self, force=False):
        self._refuse_xla()
        return super().make_test_function(force)

    def make_predict_function(self, force=False):
        self._refuse_xla()
        return super().make_predict_function(force)

    def _refuse_xla(self) -> None:
        if self.jit_compile:
            raise TfrecError(
                "AutoRec cannot run with jit_compile=True: it scores (user, movie) pairs (evaluate, predict, "
                "serving) from its stored ratings with ragged and sparse ops, which XLA does not compile"
            )

    def _product_kernels(self):
        """tfrec's observed-entry kernels where they apply (float32 on a CPU, outside XLA), else None."""
        if self.mixed_precision is not None:
            return None
        return ops.product_kernels(self.encoder.kernel, self.decoder.kernel, allow=not self.jit_compile)

    def compute_loss(self, features, training=False):
        labels, predictions, weights = self.loss_inputs(features, training)
        per_example = self.task(labels=labels, predictions=predictions, sample_weight=weights, training=training)
        if self.loss_normalization == "entries" and "ratings" in features:
            # Over all B x n entries of the global batch, as Keras' weighted MSE; the observed ones may be fewer.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            entries = vectors_in(features) * self.width * replicas
            return tf.reduce_sum(per_example) / tf.cast(entries, per_example.dtype)
        return self.reduce_loss(per_example, weights)

    def reduce_loss(self, per_example, weights):
        if weights is None or self.loss_normalization == "entries":
            return tf.nn.compute_average_loss(per_example)
        observed = tf.distribute.get_replica_context().all_reduce("sum", tf.reduce_sum(weights))
        return tf.reduce_sum(per_example) / tf.maximum(observed, 1.0)

    def get_config(self):
        return {
            **super().get_config(),
            "user_vocabulary": self.user_vocabulary,
            "item_vocabulary": self.item_vocabulary,
            "kind": self.kind,
            "hidden": self.hidden,
            "encoder_activation": self.encoder_activation,
            "decoder_activation": self.decoder_activation,
            "l2": self.l2,
            "loss_normalization": self.loss_normalization,
            "input_dropout": self.input_dropout,
            "init": self.init,
            "global_mean": self.global_mean,
        }
