"""Factorization machines over ids and side features: FM (Rendle 2010) and field-aware FM (Juan et al. 2016)."""

from __future__ import annotations

import numpy as np
from tfrec._keras import tf

from tfrec.data import fields as fieldlib
from tfrec.data.table import Ratings
from tfrec.families import Family
from tfrec.models._base import RatingModel
from tfrec.models._layers import factor_initializer, id_lookup


def pairwise_interaction(xv):
    """``sum_{s<t} <x_s v_s, x_t v_t>`` per example from ``xv = x * v`` ``[batch, slots, k]``, in O(k slots).

    Rendle's identity: half of (square of the sum minus sum of the squares), summed over k.
    """
    total = tf.reduce_sum(xv, axis=1)
    return 0.5 * tf.reduce_sum(tf.square(total) - tf.reduce_sum(tf.square(xv), axis=1), axis=-1)


def field_aware_interaction(xv, slot_field, num_fields: int):
    """``sum_{s<t} <x_s v_{s, f(t)}, x_t v_{t, f(s)}>`` from ``xv`` ``[batch, slots, fields, k]``.

    ``slot_field[s]`` is slot ``s``'s field. With ``S[g, f] = sum_{s in g} x_s v_{s,f}``
    and ``P[g, f] = <S[g, f], S[f, g]>``, the sum over pairs of slots is
    ``(sum(P) - sum_s |x_s v_{s, f(s)}|^2) / 2``: pairs in different fields appear
    twice in ``sum(P)``, pairs in one field (genres) once each way in ``|S[g, g]|^2``.
    O(k slots fields + k fields^2) per example, never the slots^2 pairs.
    """
    member = tf.one_hot(slot_field, num_fields, dtype=xv.dtype)  # [slots, fields]
    shape = tf.shape(xv)
    flat = tf.reshape(xv, [shape[0], shape[1], -1])  # [batch, slots, fields * k]
    sums = tf.reshape(
        tf.matmul(member, flat, transpose_a=True), tf.concat([shape[:1], [num_fields, num_fields, -1]], 0)
    )
    crossed = tf.reduce_sum(sums * tf.transpose(sums, [0, 2, 1, 3]), axis=[1, 2, 3])  # S[g, f] . S[f, g]
    own = tf.reduce_sum(xv * member[tf.newaxis, :, :, tf.newaxis], axis=2)  # x_s v_{s, f(s)}
    return 0.5 * (crossed - tf.reduce_sum(tf.square(own), axis=[1, 2]))


FAMILY = Family(
    model="FactorizationMachine",
    title="Factorization machines",
    variants={"fm": {}, "ffm": {}},
    variant_models={"ffm": "FieldAwareFactorizationMachine"},
    # The refit on the whole training part helped FM and FFM on each of five ML-100K splits (benchmarks/RESULTS.md).
    defaults={"dim": 8, "learning_rate": 0.005, "l2": 0.1, "batch_size": 1024, "patience": 3, "refit": True},
    variant_defaults={"ffm": {"dim": 4, "learning_rate": 0.01}},
    arguments={"dim": "dim", "l2": "l2", "fields": "features"},
    options={
        "features": {
            "type": "names",
            "default": ["user_id", "movie_id"],
            "help": "fields, TFDS names: user_id,movie_id,bucketized_user_age,user_gender,"
            "user_occupation_label,user_zip_code,movie_genres",
        },
    },
    search={
        "learning_rate": {"low": 0.001, "high": 0.03, "log": True},
        "dim": {"low": 2, "high": 64, "log": True},
        "l2": {"low": 0.001, "high": 1.0, "log": True},
        "batch_size": {"choices": [256, 512, 1024, 2048]},
    },
    side_features=True,
    rank=50,
)


@tf.keras.utils.register_keras_serializable(package="tfrec")
class FactorizationMachine(RatingModel):
    """A second-order factorization machine over fields of ids and side features.

    ``r_hat(x) = w0 + sum_j w_j x_j + sum_{j<l} <v_j, v_l> x_j x_l`` over the
    rating's active features (``tfrec.data.fields``: one per single-valued field
    with ``x = 1``, one per genre with ``x = 1 / genres``), the pair sum by
    Rendle's identity in O(k x active features). ``w0`` starts at the training
    mean. Each field has its own vocabulary and out-of-vocabulary row; an unknown
    value has ``x = 0`` and contributes nothing, so an unseen user predicts from
    the movie's features and the fields it was given.

    The model holds every known user's and movie's side features (from the
    training table), so ids alone are enough to score a pair (training,
    ``recommend``); side features given in the input (by their TFDS names)
    replace the held ones, which is how a new user with known age and occupation
    is scored.

    Args:
      user_vocabulary, item_vocabulary: Known ids (``side_tokens``).
      fields: Field names, e.g. ``("user_id", "movie_id", "user_occupation_label")``.
      user_side, item_side: ``{field: [[token, ...] per vocabulary id]}``.
      dim: Factor dimension k.
      l2: L2 weight on the factors and linear weights of the batch's active
        features, ``l2 * sum(rows**2) / batch`` as the other models' per-batch L2.
      embeddings_initializer: Of the factors; default N(0, 0.1). Linear weights start at 0.
      global_mean, rating_range: As in :class:`~tfrec.models.MatrixFactorization`.
    """

    reads_streams = False  # it holds every id's side features, from the training table

    field_aware = False
    default_embedding_std = 0.1

    def __init__(
        self,
        user_vocabulary,
        item_vocabulary,
        fields,
        user_side,
        item_side,
        dim: int = 8,
        l2: float = 0.0,
        embeddings_initializer="default",
        global_mean: float = 0.0,
        rating_range=None,
        **kwargs,
    ):
        super().__init__(rating_range=rating_range, **kwargs)
        embeddings_initializer = factor_initializer(embeddings_initializer, self.default_embedding_std)
        self.fields = tuple(fields)
        self.dim, self.l2, self.global_mean = int(dim), float(l2), float(global_mean)
        self._add_lookups(user_vocabulary, item_vocabulary)
        self._set_untracked(
            user_side={f: [[str(t) for t in row] for row in user_side[f]] for f in self.fields if f in user_side},
            item_side={f: [[str(t) for t in row] for row in item_side[f]] for f in self.fields if f in item_side},
        )
        layout = fieldlib.slots(self.fields, self.user_side, self.item_side)
        self._set_untracked(vocabularies=layout.vocabularies, widths=layout.widths, offsets=layout.offsets)
        self.num_features = layout.features
        self.user_fields, self.item_fields = list(layout.user_fields), list(layout.item_fields)
        self._slots = {
            "user": tuple(tf.constant(a) for a in layout.user_slots),
            "item": tuple(tf.constant(a) for a in layout.item_slots),
        }
        self._held_slot_field = tf.constant(layout.slot_field, tf.int32)  # the user's slots, then the item's
        self.field_lookups = {
            f: id_lookup(self.vocabularies[f]) for f in self.fields if f not in fieldlib.ID_FIELDS
        }  # fmt: skip
        self.num_fields = len(self.fields)
        width = self.dim * (self.num_fields if self.field_aware else 1)
        self.factors = tf.keras.layers.Embedding(
            self.num_features, width, embeddings_initializer=embeddings_initializer, name="factors"
        )
        self.linear = tf.keras.layers.Embedding(self.num_features, 1, embeddings_initializer="zeros", name="linear")
        self.bias = self.add_weight(
            name="global_bias", shape=(), initializer=tf.keras.initializers.Constant(self.global_mean)
        )

    @classmethod
    def table_args(cls, train: Ratings) -> dict:
        return {k: v for k, v in RatingModel.table_args(train).items() if not k.endswith("_vocabulary")}

    @classmethod
    def from_table(cls, train: Ratings, fields=fieldlib.ID_FIELDS, **kwargs):
        """Builds the model with the vocabularies and side features of a training table's ``fields``."""
        return cls(**{**cls.table_args(train), **fieldlib.side_tokens(train, fields), "fields": fields, **kwargs})

    def lookup_layers(self) -> list:
        return [*super().lookup_layers(), *self.field_lookups.values()]

    # ---- slots: (global row, value) pairs of a batch ------------------------------------------

    def _held_columns(self, who: str, field: str):
        names = self.user_fields if who == "user" else self.item_fields
        start = sum(self.widths[f] for f in names[: names.index(field)])
        return start, start + self.widths[field]

    def slots(self, users, items, features=None):
        """``(rows [batch, slots], values [batch, slots], slot_field [slots])`` of a batch.

        Fields come from ``features`` when given there (raw TFDS values, tokenized
        as ``tfrec.data.fields.token`` does), else from the held side features of
        the user or movie row (row 0, an unseen id: every held field unknown).
        """
        features = features or {}
        # int64 for direct callers' rows (int32, numpy); the model's own inputs are cast in `lookup`.
        users, items = tf.cast(users, tf.int64), tf.cast(items, tf.int64)
        if not any(f in features for f in self.fields if f not in fieldlib.ID_FIELDS):
            # Every field held (training, recommend): one gather per side.
            (user_rows, user_values), (item_rows, item_values) = self._slots["user"], self._slots["item"]
            rows = tf.concat([tf.gather(user_rows, users), tf.gather(item_rows, items)], 1)
            values = tf.concat([tf.gather(user_values, users), tf.gather(item_values, items)], 1)
            return rows, values, self._held_slot_field
        rows, values, field_of = [], [], []
        for k, field in enumerate(self.fields):
            who = "user" if field in self.user_side else "item"
            if field in features and field not in fieldlib.ID_FIELDS:
                r, v = self._encode(field, features[field])
            else:
                held_rows, held_values = self._slots[who]
                begin, end = self._held_columns(who, field)
                index = users if who == "user" else items
                r, v = tf.gather(held_rows, index)[:, begin:end], tf.gather(held_values, index)[:, begin:end]
            rows.append(r)
            values.append(v)
            field_of.append(tf.fill([tf.shape(r)[1]], tf.constant(k, tf.int32)))
        return tf.concat(rows, 1), tf.concat(values, 1), tf.concat(field_of, 0)

    def feature_slots(self) -> tuple:
        """``(user_rows, user_values, item_rows, item_values)``: each user's and item's feature rows and values."""
        return (*self._slots["user"], *self._slots["item"])

    def _encode(self, field: str, raw):
        """Raw values of a side field ``[batch]`` (multi-hot: ``[batch, n]``, ragged or padded with -1)."""
        if isinstance(raw, tf.RaggedTensor):
            raw = raw.to_tensor(default_value=-1)
        raw = tf.convert_to_tensor(raw)
        if raw.shape.rank == 1:
            raw = raw[:, tf.newaxis]
        if raw.dtype == tf.string:
            tokens = tf.strings.strip(raw)
            if field == "user_zip_code":
                tokens = tf.strings.substr(tokens, 0, fieldlib.ZIP_PREFIX)
        else:
            if raw.dtype == tf.bool or raw.dtype.is_floating:
                raw = tf.cast(raw, tf.int64)  # float age buckets truncate, as int() does
            tokens = tf.strings.as_string(raw)
        local = self.field_lookups[field](tokens)
        known = tf.cast(local > 0, tf.float32)
        count = tf.reduce_sum(known, axis=1, keepdims=True)
        values = known / tf.maximum(count, 1.0)
        return tf.where(local > 0, local + self.offsets[field], 0), values

    # ---- scoring --------------------------------------------------------------------------------

    def score(self, features, training=False):
        users, items = self.lookup(features)
        return self._from_slots(*self.slots(users, items, features), training=training)

    def score_rows(self, users, items, training=False):
        return self._from_slots(*self.slots(users, items), training=training)

    def _from_slots(self, rows, values, slot_field, training=False):
        factors = self.factors(rows)
        weights = self.linear(rows)[..., 0]
        active = tf.cast(values != 0, factors.dtype)
        if self.l2 and training:
            batch = tf.cast(tf.shape(rows)[0], factors.dtype)
            penalty = tf.reduce_sum(tf.square(factors) * active[..., tf.newaxis]) + tf.reduce_sum(
                tf.square(weights) * active
            )
            self.add_loss(self.l2 * penalty / tf.maximum(batch, 1.0))
        linear = tf.reduce_sum(weights * values, axis=1)
        return self.bias + linear + self.interaction(factors, values, slot_field)

    def interaction(self, factors, values, slot_field):
        """The pairwise term from the slots' factors ``[batch, slots, k]`` and values."""
        del slot_field
        return pairwise_interaction(factors * values[..., tf.newaxis])

    def serving_inputs(self) -> dict:
        """The ``serving_default`` inputs: the ids and each side field, by TFDS name and dtype.

        A value outside a field's training vocabulary (``""``, ``-1``) takes its
        out-of-vocabulary row: that field contributes nothing.
        """
        specs = {"user_id": tf.TensorSpec([None], tf.string), "movie_id": tf.TensorSpec([None], tf.string)}
        for field in self.fields:
            if field not in specs:
                specs[field] = tf.TensorSpec(
                    [None, None] if field in fieldlib.MULTI_HOT else [None], SERVING_DTYPES[field]
                )
        return specs

    def get_config(self):
        return {
            **super().get_config(),
            "user_vocabulary": self.user_vocabulary,
            "item_vocabulary": self.item_vocabulary,
            "fields": list(self.fields),
            "user_side": self.user_side,
            "item_side": self.item_side,
            "dim": self.dim,
            "l2": self.l2,
            "embeddings_initializer": tf.keras.initializers.serialize(self.factors.embeddings_initializer),
            "global_mean": self.global_mean,
        }


@tf.keras.utils.register_keras_serializable(package="tfrec")
class FieldAwareFactorizationMachine(FactorizationMachine):
    """Field-aware FM: feature ``j`` has one k-vector per field, ``v_{j, f}``, and a pair of features
    ``(j, l)`` in fields ``(f, g)`` interacts through ``<v_{j, g}, v_{l, f}>``.

    Costs ``fields`` times FM's factor memory (``features x fields x k`` floats)
    and per example ``slots x fields x k`` gathered values plus a
    ``fields x fields x k`` block (:func:`field_aware_interaction`); at
    MovieLens' 7 fields and k = 4 that is 28 floats per feature. Arguments as
    :class:`FactorizationMachine`; ``dim`` is the per-field k (default 4).
    """

    field_aware = True

    def __init__(self, *args, dim: int = 4, **kwargs):
        super().__init__(*args, dim=dim, **kwargs)

    def interaction(self, factors, values, slot_field):
        shaped = tf.reshape(factors, tf.concat([tf.shape(factors)[:2], [self.num_fields, self.dim]], 0))
        return field_aware_interaction(shaped * values[..., tf.newaxis, tf.newaxis], slot_field, self.num_fields)


# TFDS MovieLens dtypes of the side features a field model's serving_default takes.
SERVING_DTYPES = {
    "bucketized_user_age": tf.float32,
    "raw_user_age": tf.float32,
    "user_gender": tf.bool,
    "user_occupation_label": tf.int64,
    "user_occupation_text": tf.string,
    "user_zip_code": tf.string,
    "movie_genres": tf.int64,
    "movie_title": tf.string,
}


def explicit_pairwise(x: np.ndarray, v: np.ndarray, slot_field: np.ndarray | None = None) -> np.ndarray:
    """The pair sum by enumerating pairs, in float64: the definition the O(k n) forms must equal.

    ``x``: ``[batch, slots]``; ``v``: ``[batch, slots, k]`` (FM) or ``[batch, slots, fields, k]`` (FFM,
    with ``slot_field``).
    """
    x, v = np.asarray(x, np.float64), np.asarray(v, np.float64)
    out = np.zeros(x.shape[0])
    for s in range(x.shape[1]):
        for t in range(s + 1, x.shape[1]):
            if slot_field is None:
                dot = np.sum(v[:, s] * v[:, t], axis=-1)
            else:
                dot = np.sum(v[:, s, slot_field[t]] * v[:, t, slot_field[s]], axis=-1)
            out += x[:, s] * x[:, t] * dot
    return out
