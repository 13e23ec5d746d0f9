"""Shipping a trained model: a SavedModel that serves raw ids, and Keras-native save/load.

``save(model, path)`` writes a SavedModel that TensorFlow Serving, or any TF
program, loads with ``tf.saved_model.load`` alone (no tfrec, no Keras custom
objects). Every model family gets the same signatures, whose item name ITEM is
the model's ``item_key``: ``movie_id`` for a model trained on MovieLens (TFDS's
name), ``item_id`` for one trained on other data (a user's file of products,
songs, businesses...):

- ``serving_default``: ``user_id``, ITEM (string ``[batch]``) ->
  ``predictions`` (float32 ``[batch]``), the model's rating, clipped to the
  training rating range unless ``clip=False``. Unseen ids get the model's
  documented answer (the training mean plus what it knows, e.g. ``mu + b_i``).
  Factorization machines' ``serving_default`` also takes each side feature
  they were trained with, by its TensorFlow Datasets name and dtype
  (``bucketized_user_age`` float32, ``user_gender`` bool,
  ``user_occupation_label`` int64, ``user_zip_code`` string, ``movie_genres``
  int64 ``[batch, n]`` padded with -1, ...); a value the training data did not
  have (``""``, ``-1``) takes the field's out-of-vocabulary row and contributes
  nothing. Their ``serving_ids`` signature takes the ids alone and uses each
  known user's and item's training side features.
- ``recommend``: ``user_id`` (string ``[batch]``), ``k`` (int32 scalar, chosen
  per call) -> ITEM (string ``[batch, k]``) and ``scores`` (float32
  ``[batch, k]``), best first, leaving out the items the user rated in training.
- ``recommend_including_rated``: the same without leaving any item out.

``recommend`` ranks by the model's unclipped score (the clip would tie every
item above the top rating), and ``scores`` are those scores. ``k`` above the
number of items gives every item; when exclusion leaves fewer than ``k``
items, the remaining slots hold ITEM ``""`` and score ``-inf``. Users are
scored against the whole item vocabulary in blocks, so a batch of any size
runs in bounded memory (``pairs_per_step`` pairs per block, or
``matrix_entries_per_step`` for models with a closed-form ``[users, items]``
score).

A SavedModel is a program: load only ones from a source you trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tfrec._keras import tf

from tfrec.data.pipeline import vocabulary_rows
from tfrec.data.table import Ratings
from tfrec.errors import TfrecError

SIGNATURES = ("serving_default", "recommend", "recommend_including_rated")
PAIRS_PER_STEP = 1 << 18
MATRIX_ENTRIES_PER_STEP = 1 << 22


class _Untracked:
    """Holds the Keras model out of the SavedModel's object graph (it would bring the optimizer's slots along)."""

    def __init__(self, model):
        self.model = model


class _Serving(tf.Module):
    """The exported program: the model's weights and id lookups, the item vocabulary and the rated items."""

    def __init__(self, model, rated: tuple[np.ndarray, np.ndarray], clip: bool, users_per_step: int):
        super().__init__(name="tfrec_serving")
        self._held = _Untracked(model)
        # What the signatures read: the weights (not the optimizer's slots, 2x the weights for Adam)
        # and the lookup layers' hash tables.
        self.weights = list(model.weights)
        self.lookups = model.lookup_layers()
        self.clip = clip
        self.items = tf.constant(model.item_vocabulary, tf.string)
        self.num_items = len(model.item_vocabulary)
        self.users_per_step = users_per_step
        splits, columns = rated
        # Variables, not constants: at ML-20M scale the rated pairs would bloat the graph proto.
        self.rated_splits = tf.Variable(splits, trainable=False, name="rated_row_splits")
        self.rated_items = tf.Variable(columns, trainable=False, name="rated_items")
        state = model.item_state()  # e.g. I-AutoRec's item codes: computed here once, not per request
        self.item_state = None if state is None else tf.Variable(state, trainable=False, name="item_state")

        self.item_key = getattr(model, "item_key", "movie_id")
        inputs = model.serving_inputs()  # items as movie_id, the name the model reads
        self.predict = self._signature(inputs)
        self.predict_ids = self._signature({name: inputs[name] for name in ("user_id", "movie_id")})

    def _signature(self, inputs: dict):
        """A tf.function taking ``inputs`` by name, items under the model's item key."""
        names = [self.item_key if n == "movie_id" else n for n in inputs]

        def predict(*args):
            return self._predict({"movie_id" if n == self.item_key else n: a for n, a in zip(names, args)})

        return tf.function(
            predict, input_signature=[tf.TensorSpec(s.shape, s.dtype, n) for n, s in zip(names, inputs.values())]
        )

    def _predict(self, features):
        # One prediction per row: an input shorter or longer than user_id (a client that dropped an
        # element) is refused, not broadcast into answers for the wrong pairs.
        rows = tf.shape(features["user_id"])[0]
        checks = [
            tf.debugging.assert_equal(
                tf.shape(value)[0],
                rows,
                message=f"{self.item_key if name == 'movie_id' else name} must have as many entries as user_id "
                "(one per pair)",
            )  # fmt: skip
            for name, value in features.items()
            if name != "user_id"
        ]
        with tf.control_dependencies(checks):
            predictions = self._held.model(features) if self.clip else self._held.model.score(features)
        return {"predictions": tf.cast(predictions, tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int32)])
    def recommend(self, user_id, k):
        return self._top_k(user_id, k, exclude_rated=True)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int32)])
    def recommend_including_rated(self, user_id, k):
        return self._top_k(user_id, k, exclude_rated=False)

    def _top_k(self, user_id, k, exclude_rated: bool):
        tf.debugging.assert_non_negative(k, message="k must be >= 0")
        k = tf.minimum(k, self.num_items)
        users = self._held.model.user_lookup(user_id)
        batch, step = tf.shape(users)[0], self.users_per_step
        blocks = tf.maximum(1, (batch + step - 1) // step)  # at least one, so an empty batch has a shape
        users_in_blocks = tf.reshape(tf.pad(users, [[0, blocks * step - batch]]), [blocks, step])

        def block_top_k(block):
            scores = tf.cast(self._held.model.score_items(block, self.item_state), tf.float32)
            if exclude_rated:
                scores = tf.where(self._rated_mask(block), -np.inf, scores)
            top = tf.math.top_k(scores, k)
            return top.values, top.indices

        values, indices = tf.map_fn(
            block_top_k,
            users_in_blocks,
            fn_output_signature=(tf.TensorSpec([step, None], tf.float32), tf.TensorSpec([step, None], tf.int32)),
            parallel_iterations=1,  # one block's scores in memory at a time
        )
        values, indices = tf.reshape(values, [-1, k])[:batch], tf.reshape(indices, [-1, k])[:batch]
        ids = tf.where(tf.math.is_inf(values) & (values < 0), "", tf.gather(self.items, indices))
        return {self.item_key: ids, "scores": values}

    def _rated_mask(self, users):
        """``[len(users), V]``: True where the user rated the item in training."""
        rated = tf.gather(tf.RaggedTensor.from_row_splits(self.rated_items, self.rated_splits, validate=False), users)
        cells = tf.stack([rated.value_rowids(), tf.cast(rated.flat_values, tf.int64)], axis=1)
        shape = tf.cast(tf.stack([tf.size(users), self.num_items]), tf.int64)
        return tf.scatter_nd(cells, tf.ones_like(rated.flat_values, tf.bool), shape)


def rated_rows(model, rated: Ratings | None) -> tuple[np.ndarray, np.ndarray]:
    """Items rated per user row of ``model``'s vocabulary, CSR over rows ``0..U`` (row 0: unseen users).

    ``rated`` is the training table; ids outside the model's vocabularies are
    left out. Without it, an AutoRec model's own stored ratings are used, and
    any other model excludes nothing.
    """
    users_known = len(model.user_vocabulary)
    if rated is not None:
        u = vocabulary_rows(model.user_vocabulary, rated.user_ids)[rated.user]
        i = vocabulary_rows(model.item_vocabulary, rated.item_ids)[rated.item] - 1  # columns 0..V-1; -1 unseen
    elif model.stored_ratings() is not None:  # a model that keeps its training ratings (AutoRec)
        u, i = model.stored_ratings()
    else:
        u = i = np.zeros(0, np.int64)
    keep = (u > 0) & (i >= 0)
    u, i = u[keep], i[keep]
    order = np.lexsort((i, u))
    splits = np.zeros(users_known + 2, np.int64)
    np.add.at(splits, u + 1, 1)
    return np.cumsum(splits), i[order].astype(np.int32)


def save(
    model,
    path: str | os.PathLike,
    rated: Ratings | None = None,
    *,
    clip: bool = True,
    pairs_per_step: int = PAIRS_PER_STEP,
    matrix_entries_per_step: int = MATRIX_ENTRIES_PER_STEP,
) -> Path:
    """Writes ``model`` as a SavedModel with the module docstring's signatures.

    Args:
      model: A trained tfrec model (any family; trained under any strategy).
      path: A directory that does not exist yet (missing parents are made) or is empty. The
        SavedModel is written beside it and renamed into place, so a failure leaves nothing there.
      rated: The training table, whose (user, item) pairs ``recommend`` leaves
        out. Default: an AutoRec model's stored ratings; nothing for others.
      clip: Clip ``serving_default``'s predictions to the training rating range.
      pairs_per_step, matrix_entries_per_step: Memory bounds of ``recommend``
        (see the module docstring).

    Returns:
      The path written.

    Raises:
      TfrecError: ``path`` exists and is not an empty directory.
    """
    path = Path(path)
    refuse_existing(path)
    budget = pairs_per_step if model.scores_item_grid else matrix_entries_per_step
    module = _Serving(model, rated_rows(model, rated), clip, max(1, budget // len(model.item_vocabulary)))
    signatures = {
        "serving_default": module.predict.get_concrete_function(),
        **({"serving_ids": module.predict_ids.get_concrete_function()} if _takes_side_features(model) else {}),
        "recommend": module.recommend.get_concrete_function(),
        "recommend_including_rated": module.recommend_including_rated.get_concrete_function(),
    }
    with staged_directory(path) as staging:
        tf.saved_model.save(module, str(staging), signatures=signatures)
    return path


def _takes_side_features(model) -> bool:
    return set(model.serving_inputs()) != {"user_id", "movie_id"}


def refuse_existing(path: str | os.PathLike) -> None:
    """Raises TfrecError if ``path`` exists and is not an empty directory (a target is never overwritten)."""
    path = Path(path)
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        raise TfrecError(f"{path}: already exists; write to a new directory")


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike):
    """Yields a fresh directory beside ``path``, renamed to ``path`` when the block ends without error.

    Missing parent directories are made (TensorFlow Serving's layout is ``NAME/VERSION``); an empty
    directory at ``path`` is replaced. On any error (or an interrupt) the staged directory is
    removed, so ``path`` is either complete or as it was.
    """
    path = Path(path)
    refuse_existing(path)
    path.resolve().parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.resolve().parent))
    try:
        yield staging
        if path.is_dir():
            path.rmdir()  # empty (refuse_existing): replaced by the staged directory
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load(path: str | os.PathLike):
    """Loads a SavedModel written by :func:`save` (``tf.saved_model.load``), with a clear error for other paths."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise TfrecError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    loaded = tf.saved_model.load(str(path))
    missing = [s for s in SIGNATURES if s not in loaded.signatures]
    if missing:
        raise TfrecError(f"{path}: a SavedModel without the tfrec signature(s) {', '.join(missing)}")
    return loaded


def item_key(loaded) -> str:
    """What a SavedModel of :func:`save` calls items: ``movie_id`` or ``item_id`` (its ``recommend`` output)."""
    outputs = loaded.signatures["recommend"].structured_outputs
    return next(name for name in outputs if name != "scores")


def save_keras(model, path: str | os.PathLike) -> Path:
    """Saves ``model`` in Keras' native ``.keras`` format, optimizer state included, atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise TfrecError(f"{path}: a Keras model file must end in .keras")
    if not path.parent.is_dir():
        raise TfrecError(f"{path}: directory {path.parent} does not exist")
    fd, staging = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".keras", dir=path.parent)
    os.close(fd)
    try:
        model.save(staging, overwrite=True)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path


def load_keras(path: str | os.PathLike):
    """Loads a ``.keras`` file written by :func:`save_keras`: the compiled model, optimizer state included."""
    import tfrec.models  # noqa: F401  (registers the model classes with Keras)
    import tfrec.optimizers  # noqa: F401  (and the optimizers: Adam, LazyAdam, TorchAdagrad)

    path = Path(path)
    if not path.is_file():
        raise TfrecError(f"{path}: no such Keras model file")
    try:
        return tf.keras.models.load_model(path)
    except (ValueError, OSError) as e:
        raise TfrecError(f"{path}: cannot load as a Keras model: {e}") from None
