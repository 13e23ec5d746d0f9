"""The training contract every tfrec rating model shares."""

from __future__ import annotations

import contextlib

import numpy as np
from tfrec import _internals, _loop
from tfrec._keras import tf
import tensorflow_recommenders as tfrs

from tfrec.config import PRECISION_NAMES
from tfrec.data.pipeline import dataset as pair_dataset, is_epoch_pipeline
from tfrec.data.table import ITEM_KEYS, Ratings
from tfrec.errors import TfrecError
from tfrec.models._layers import id_lookup


#: What a rating-pair pipeline carries: the ids (as the model's row numbers when it has vocabularies) and
#: the rating. Side features (FM) come from the model's own tables, looked up by id.
PAIR_FEATURES = ("user_id", "movie_id", "user_rating")


def rating_task() -> tfrs.tasks.Ranking:
    """The explicit-feedback head: MSE loss (one value per example), RMSE and MAE metrics."""
    return tfrs.tasks.Ranking(
        loss=tf.keras.losses.MeanSquaredError(reduction=tf.keras.losses.Reduction.NONE),
        metrics=[
            tf.keras.metrics.RootMeanSquaredError(name="rmse"),
            tf.keras.metrics.MeanAbsoluteError(name="mae"),
        ],
    )


def _finite_epochs(ds) -> bool:
    return is_epoch_pipeline(ds) and int(ds.cardinality()) > 0


class RatingModel(tfrs.Model):
    """A ``tfrs.Model`` that predicts ``user_rating`` from an example dict.

    Subclasses implement :meth:`score` (raw predictions, shape ``[batch]``).
    ``call`` clips them to the training rating range at inference (not in
    training, where the clip would zero gradients), as Surprise does.
    ``compute_loss`` hands ``loss_inputs`` (labels, predictions, weights) to a
    ``tfrs.tasks.Ranking`` head (default :func:`rating_task`: MSE loss, ``rmse``
    and ``mae`` metrics) and ``reduce_loss`` turns its per-example losses into
    the batch loss; subclasses override these two for other labels and masks.
    ``train_step`` and ``test_step`` keep TFRS's shape but report ``loss`` (the data loss) and
    ``regularization_loss`` apart as epoch means (TFRS reports the last batch's), and scale both for
    ``tf.distribute`` so gradients are right under MirroredStrategy.

    ``mixed_precision`` (``float16`` or ``bfloat16``, models with Dense layers only) gives those layers
    Keras' ``mixed_<dtype>`` policy: they compute in it, their weights stay float32, and the models cast
    their outputs back to float32 before the loss. With a ``LossScaleOptimizer`` (``tfrec.train.build``
    wraps the optimizer for ``float16``) ``train_step`` scales the loss and unscales the gradients, as
    Keras' own ``train_step`` does.
    """

    label = "user_rating"
    #: Std of the normal distribution the "default" embedding initializer draws from (None: no embeddings);
    #: a PyTorch reference of the family draws its tables from the same one.
    default_embedding_std: float | None = None
    mixed_precision_layers = False  #: whether the model has Dense layers for ``mixed_precision`` to act on

    def __init__(self, rating_range=None, task=None, mixed_precision=None, item_key="movie_id", **kwargs):
        super().__init__(**kwargs)
        if item_key not in ITEM_KEYS:
            raise TfrecError(f"item_key must be one of {', '.join(ITEM_KEYS)}, got {item_key!r}")
        #: What the model calls items where it answers: an export's signatures and ``tfrec predict``
        #: (``movie_id`` for MovieLens, ``item_id`` for other data; ``Ratings.item_key``). Inputs may
        #: name items either way.
        self.item_key = item_key
        if mixed_precision is not None and mixed_precision not in PRECISION_NAMES:
            raise TfrecError(f"mixed_precision must be float16, bfloat16 or None, got {mixed_precision!r}")
        if mixed_precision is not None and not self.mixed_precision_layers:
            raise TfrecError(f"mixed_precision: {type(self).__name__} has no Dense layers to compute in it")
        self.mixed_precision = mixed_precision
        self.rating_range = tuple(float(r) for r in rating_range) if rating_range is not None else None
        self.task = task or rating_task()
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.regularization_tracker = tf.keras.metrics.Mean(name="regularization_loss")

    reads_streams = True  #: trains on streamed shards (``tfrec.data.stream``): rating pairs, no side features

    @staticmethod
    def table_args(train: Ratings) -> dict:
        """Vocabularies, global mean and rating range of a training table (or a streamed part)."""
        if getattr(train, "streamed", False):
            return train.table_args()
        return {
            "user_vocabulary": train.user_ids[np.unique(train.user)].tolist(),
            "item_vocabulary": train.item_ids[np.unique(train.item)].tolist(),
            "global_mean": float(train.rating.astype(np.float64).mean()),
            "rating_range": (float(train.rating.min()), float(train.rating.max())),
            "item_key": train.item_key,
        }

    @classmethod
    def from_table(cls, train: Ratings, **kwargs):
        """Builds the model with the vocabularies, mean and rating range of a training table."""
        return cls(**{**cls.table_args(train), **kwargs})

    def training_dataset(self, table: Ratings, batch_size: int = 1024, *, shuffle=True, seed: int = 42, **kwargs):
        """The shuffled pipeline ``fit`` eats, from a training table: ``model.fit(model.training_dataset(train))``.

        Rating pairs with the ids as the model's row numbers (:meth:`dataset`) here; families that eat
        something else override it (AutoRec: rating vectors; NCF with implicit feedback: interactions
        with ``negatives`` sampled items each). ``tfrec train`` fits on the same pipeline. ``kwargs``:
        ``drop_remainder``, ``first_epoch`` (the epoch of the first pass: a resumed run's shuffles).
        """
        return self.dataset(table, batch_size, shuffle=shuffle, seed=seed, **kwargs)

    @classmethod
    def vector_kind(cls, name: str) -> str | None:
        """``item`` or ``user`` if model ``name`` reads rating vectors of items or users, None for rating pairs."""
        del name
        return None

    def set_ratings(self, table: Ratings) -> None:
        """Makes ``table``'s ratings the ones the model reads as inputs (a no-op here; AutoRec keeps them).

        ``tfrec.train.run`` calls it after fitting on a cut of the training part, with the whole part.
        """
        del table

    def stored_ratings(self):
        """``(user_rows, item_columns)`` of ratings the model itself keeps, or None (most models keep none).

        User rows are vocabulary rows (1..U), item columns are 0-based (row - 1); an export leaves
        these pairs out of ``recommend`` when it is given no training table.
        """
        return None

    def dense_policy(self):
        """The dtype policy of the model's Dense layers: ``mixed_<dtype>`` or float32."""
        name = f"mixed_{self.mixed_precision}" if self.mixed_precision else "float32"
        return tf.keras.mixed_precision.Policy(name)

    def _add_lookups(self, user_vocabulary, item_vocabulary) -> None:
        """The id vocabularies and their lookup layers (see :func:`id_lookup`)."""
        self._set_untracked(
            user_vocabulary=[str(v) for v in user_vocabulary], item_vocabulary=[str(v) for v in item_vocabulary]
        )
        self.user_lookup = id_lookup(self.user_vocabulary)
        self.item_lookup = id_lookup(self.item_vocabulary)

    @_internals.untracked
    def _set_untracked(self, **values) -> None:
        """Sets plain-data attributes (vocabularies, side features) without Keras tracking them.

        They are not weights: ``get_config`` saves them. Tracked, each of their strings is
        walked by every ``model.metrics`` call, which ``fit`` makes two or three times an epoch.
        """
        for name, value in values.items():
            setattr(self, name, value)

    def lookup_layers(self) -> list:
        """The lookup layers a SavedModel must keep (their tables are not weights)."""
        return [self.user_lookup, self.item_lookup]

    def serving_inputs(self) -> dict:
        """The inputs of an export's ``serving_default``: name -> ``tf.TensorSpec`` (here the two ids)."""
        return {"user_id": tf.TensorSpec([None], tf.string), "movie_id": tf.TensorSpec([None], tf.string)}

    def lookup(self, features):
        """Row indices of the batch's users and items (0 for an unseen id), looked up once.

        A training pipeline built with the model's vocabularies
        (``tfrec.data.dataset(..., vocabularies=...)``) brings them ready as
        ``user_row``/``movie_row``; raw ``user_id``/``movie_id`` strings go
        through the ``StringLookup`` layers (serving always does).
        """
        if "user_row" in features and "movie_row" in features:
            # int64: Keras' load_model rebuilds a model on float placeholders of the inputs it was built on.
            return tf.cast(features["user_row"], tf.int64), tf.cast(features["movie_row"], tf.int64)
        return self.user_lookup(features["user_id"]), self.item_lookup(features["movie_id"])

    def score(self, features, training=False):
        """Raw predictions ``[batch]`` for an example dict (before the inference clip)."""
        return self.score_rows(*self.lookup(features), training=training)

    def score_rows(self, users, items, training=False):
        """Raw predictions ``[batch]`` for row indices from :meth:`lookup` (row 0: an unseen id)."""
        raise NotImplementedError

    #: Whether :meth:`score_items` evaluates the model on the whole ``users x items`` grid of pairs
    #: (memory grows with the model's width per pair) or in closed form (one ``[batch, V]`` matrix).
    scores_item_grid = True

    def item_state(self):
        """What :meth:`score_items` needs about the items that no user changes (None: nothing).

        An export computes it once and stores it, instead of once per block of users.
        """
        return None

    def score_items(self, users, item_state=None):
        """Raw predictions ``[batch, V]`` of every known item (rows ``1..V``) for user rows ``[batch]``.

        The same numbers :meth:`score_rows` gives pair by pair; this default
        evaluates the grid of pairs, and models with a closed form override it.
        ``tfrec.export``'s ``recommend`` calls it on blocks of users, with
        :meth:`item_state` computed once.
        """
        del item_state
        n = len(self.item_vocabulary)
        batch = tf.shape(users)[0]
        items = tf.tile(tf.range(1, n + 1, dtype=users.dtype), [batch])
        return tf.reshape(self.score_rows(tf.repeat(users, n), items), [batch, n])

    @staticmethod
    def with_movie_id(features):
        """``features`` with the items under ``movie_id`` (TFDS's name, which the model reads) if they came
        as ``item_id``: a model takes either name, whatever its :attr:`item_key`."""
        if "movie_id" in features or "item_id" not in features:
            return features
        renamed = dict(features)
        renamed["movie_id"] = renamed.pop("item_id")
        return renamed

    def call(self, features, training=False):
        predictions = self.score(self.with_movie_id(features), training=training)
        if self.rating_range is not None and not training:
            predictions = tf.clip_by_value(predictions, *self.rating_range)
        return predictions

    def compute_loss(self, features, training=False):
        labels, predictions, weights = self.loss_inputs(features, training)
        per_example = self.task(labels=labels, predictions=predictions, sample_weight=weights, training=training)
        return self.reduce_loss(per_example, weights)

    def loss_inputs(self, features, training=False):
        """``(labels, predictions, sample_weight)`` for the task, each ``[batch, 1]`` or None.

        Keras' MSE averages the last axis: ``[batch, 1]`` makes reduction NONE keep
        one loss per example.
        """
        predictions = self(features, training=training)
        weights = features.get("sample_weight")
        weights = None if weights is None else weights[:, tf.newaxis]
        return features[self.label][:, tf.newaxis], predictions[:, tf.newaxis], weights

    def reduce_loss(self, per_example, weights):
        """The batch loss from per-example losses: their mean over the global batch."""
        del weights
        return tf.nn.compute_average_loss(per_example)

    def _regularization(self):
        if not self.losses:
            return tf.constant(0.0)
        return tf.nn.scale_regularization_loss(tf.add_n([tf.reduce_sum(x) for x in self.losses]))

    def _report(self, loss, regularization):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.loss_tracker.update_state(loss * replicas)
        self.regularization_tracker.update_state(regularization * replicas)
        return {metric.name: metric.result() for metric in self.metrics}

    @staticmethod
    def _unpack(inputs):
        # train_on_batch/test_on_batch(x) hand the step (x,); fit on a dataset of dicts hands x.
        return inputs[0] if isinstance(inputs, tuple) and len(inputs) == 1 else inputs

    # Keras skips restoring the compile state of a loaded model whose class overrides ``compile``, so the
    # string is resolved in the hook ``compile`` calls instead (_internals.GET_OPTIMIZER).
    def _get_optimizer(self, optimizer):
        """``compile(optimizer="adam")`` (any case) means :class:`tfrec.optimizers.Adam`.

        That is Keras' Adam, the same steps, each variable's step in one native op (faster, the
        same numbers). An optimizer instance is used as given: ``tf.keras.optimizers.Adam(0.01)``
        works and takes more ops a step than ``tfrec.optimizers.Adam(0.01)``.
        """
        if isinstance(optimizer, str) and optimizer.lower() == "adam":
            from tfrec.optimizers import Adam

            optimizer = Adam()
        return super()._get_optimizer(optimizer)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, *args, **kwargs):
        """Keras' ``fit``, with every weight and optimizer slot created first (:meth:`create_variables`).

        A pipeline from :meth:`training_dataset` or :meth:`dataset` (``tfrec.data``'s, unchanged) is
        read through one iterator for all epochs, as ``tfrec train`` reads it: ``x.repeat()`` with
        ``steps_per_epoch`` set to its length (the same for ``validation_data``). The batches are the
        ones Keras gets by making a new iterator every epoch, which costs an iterator's start each epoch
        and the prefetch across the epoch's end (``tfrec bench --path python`` measures it). Under
        MultiWorkerMirroredStrategy, or given ``steps_per_epoch``, Keras reads the pipeline as usual.
        """
        if not getattr(self, "_variables_created", False) and self.optimizer is not None:
            with self.distribute_strategy.scope():
                self.create_variables()
        one_worker = not isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)
        if one_worker and not args and kwargs.get("steps_per_epoch") is None and _finite_epochs(x):
            x, kwargs["steps_per_epoch"] = x.repeat(), int(x.cardinality())
            validation = kwargs.get("validation_data")
            if kwargs.get("validation_steps") is None and _finite_epochs(validation):
                kwargs["validation_data"], kwargs["validation_steps"] = (
                    validation.repeat(),
                    int(validation.cardinality()),
                )
        return super().fit(x, y, batch_size, epochs, *args, **kwargs)

    def dataset(self, table: Ratings, batch_size: int = 1024, **kwargs):
        """``tfrec.data.dataset`` of ``table``'s rating pairs with the ids as this model's row numbers.

        The same batches as the id strings would give, without a string lookup in any step; the
        fast input for ``fit`` (rating-pair families), ``evaluate`` and ``predict``. ``kwargs``:
        ``shuffle``, ``seed``, ``drop_remainder``, ``first_epoch``.
        """
        vocabularies = (self.user_vocabulary, self.item_vocabulary)
        return pair_dataset(table, batch_size, features=PAIR_FEATURES, vocabularies=vocabularies, **kwargs)

    def create_variables(self) -> None:
        """Creates every weight and optimizer slot now, from one pair of known ids, instead of in ``fit``.

        A ``tf.function`` that creates variables on its first call is traced twice; created here, the
        train step is traced once (``tfrec.train.build`` calls it).
        The weights are drawn in the order the first training step would draw them, so the
        values are the same.
        """
        one = tf.ones([1], tf.int64)
        self({"user_row": one, "movie_row": one})
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)
            self._variables_created = True

    #: Whether ``fit`` and ``evaluate`` run ``steps_per_execution`` steps through tfrec's loop
    #: (:mod:`tfrec._loop`: each step traced once) or through Keras' own (set False before ``fit``).
    fast_loop = True

    def make_train_function(self, force=False):
        if not self.fast_loop:
            return super().make_train_function(force)
        return _loop.multi_step_function(self, "train", force, super().make_train_function)

    def make_test_function(self, force=False):
        if not self.fast_loop:
            return super().make_test_function(force)
        return _loop.multi_step_function(self, "test", force, super().make_test_function)

    # Keras 2 runs `steps_per_execution` steps per call for the *_on_batch methods too, so with more than one
    # (tfrec.train.build compiles with 128) a single batch ends in "End of sequence". These run one step.
    def train_on_batch(self, *args, **kwargs):
        with self._one_step_per_execution("train"):
            return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        with self._one_step_per_execution("test"):
            return super().test_on_batch(*args, **kwargs)

    def predict_on_batch(self, *args, **kwargs):
        with self._one_step_per_execution("predict"):
            return super().predict_on_batch(*args, **kwargs)

    @contextlib.contextmanager
    def _one_step_per_execution(self, kind: str):
        """Sets the steps per execution to 1 for one call, after the function is made for the real count.

        Made while the count reads 1, Keras would cache its one-step function, and a later ``fit``,
        which advances its batch counter by the real count per call, would skip batches.
        """
        steps = _internals.steps_per_execution(self)
        if steps is None or int(steps.numpy()) == 1:
            yield
            return
        getattr(self, f"make_{kind}_function")()
        count = int(steps.numpy())
        steps.assign(1)
        try:
            yield
        finally:
            steps.assign(count)

    # The steps are straight-line TensorFlow (no Python control flow on tensors), so AutoGraph has nothing to
    # convert; skipping it (and so every layer and metric called inside) shortens tracing a train step.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, inputs):
        inputs = self._unpack(inputs)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization = self._regularization()
            total = loss + regularization
            scaled = isinstance(self.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
            if scaled:  # float16: small gradients would flush to zero unscaled
                total = self.optimizer.get_scaled_loss(total)
        gradients = tape.gradient(total, self.trainable_variables)
        if scaled:
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._report(loss, regularization)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, inputs):
        inputs = self._unpack(inputs)
        loss = self.compute_loss(inputs, training=False)
        return self._report(loss, self._regularization())

    def get_config(self):
        return {"rating_range": self.rating_range, "mixed_precision": self.mixed_precision, "item_key": self.item_key}
