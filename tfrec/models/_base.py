"""The training contract every tfrec rating model shares."""

from __future__ import annotations

import numpy as np
from tfrec._keras import tf
import tensorflow_recommenders as tfrs

from tfrec.data.table import Ratings


class RatingModel(tfrs.Model):
    """A ``tfrs.Model`` that predicts ``user_rating`` from an example dict.

    Subclasses implement :meth:`score` (raw predictions, shape ``[batch]``).
    ``call`` clips them to the training rating range at inference (not in
    training, where the clip would zero gradients), as Surprise does.
    ``compute_loss`` hands predictions to a ``tfrs.tasks.Ranking`` head (MSE loss,
    ``rmse`` and ``mae`` metrics). ``train_step`` and ``test_step`` keep TFRS's
    shape but report ``loss`` (the data loss, MSE) and ``regularization_loss``
    apart as epoch means (TFRS reports the last batch's), and scale both for
    ``tf.distribute`` so gradients are right under MirroredStrategy.
    """

    def __init__(self, rating_range=None, **kwargs):
        super().__init__(**kwargs)
        self.rating_range = tuple(float(r) for r in rating_range) if rating_range is not None else None
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(reduction=tf.keras.losses.Reduction.NONE),
            metrics=[
                tf.keras.metrics.RootMeanSquaredError(name="rmse"),
                tf.keras.metrics.MeanAbsoluteError(name="mae"),
            ],
        )
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.regularization_tracker = tf.keras.metrics.Mean(name="regularization_loss")

    @staticmethod
    def table_args(train: Ratings) -> dict:
        """Vocabularies, global mean and rating range of a training table."""
        return {
            "user_vocabulary": train.user_ids[np.unique(train.user)].tolist(),
            "item_vocabulary": train.item_ids[np.unique(train.item)].tolist(),
            "global_mean": float(train.rating.astype(np.float64).mean()),
            "rating_range": (float(train.rating.min()), float(train.rating.max())),
        }

    def score(self, features, training=False):
        raise NotImplementedError

    def call(self, features, training=False):
        predictions = self.score(features, training=training)
        if self.rating_range is not None and not training:
            predictions = tf.clip_by_value(predictions, *self.rating_range)
        return predictions

    def compute_loss(self, features, training=False):
        predictions = self(features, training=training)
        # Keras' MSE averages the last axis: give it [batch, 1] so NONE keeps one loss per example.
        per_example = self.task(
            labels=features["user_rating"][:, tf.newaxis],
            predictions=predictions[:, tf.newaxis],
            sample_weight=features.get("sample_weight"),
            training=training,
        )
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

    def train_step(self, inputs):
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization = self._regularization()
            total = loss + regularization
        gradients = tape.gradient(total, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._report(loss, regularization)

    def test_step(self, inputs):
        loss = self.compute_loss(inputs, training=False)
        return self._report(loss, self._regularization())

    def get_config(self):
        return {"rating_range": self.rating_range}
