"""Factorization machines: the O(k n) forms, field encoding, learning a planted FM, side features, export."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfrec  # noqa: F401  (Keras 2 before TensorFlow)
from conftest import BLOCK_TFREC
import tensorflow as tf
from tfrec import data, export
from tfrec.data import fields as fieldlib
from tfrec.errors import DataError
from tfrec.models import FactorizationMachine, FieldAwareFactorizationMachine
from tfrec.models.fm import explicit_pairwise, field_aware_interaction, pairwise_interaction

SYNTHETIC_FIELDS = ["user_id", "movie_id", "user_occupation_label", "movie_genres"]
ML_SIDE_FIELDS = [
    "user_id", "movie_id", "bucketized_user_age", "user_gender", "user_occupation_label", "user_zip_code",
    "movie_genres",
]  # fmt: skip
HAS_ML100K = data.recbole_directory() is not None
needs_ml100k = pytest.mark.skipif(not HAS_ML100K, reason="recbole not installed (README install command adds it)")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_o_kn_interaction_equals_the_explicit_pairwise_sum(seed):
    rng = np.random.default_rng(seed)
    batch, slots, k = 16, 9, 5
    x = rng.normal(size=(batch, slots)) * (rng.random((batch, slots)) > 0.3)  # some slots inactive (x = 0)
    v = rng.normal(size=(batch, slots, k))
    fast = pairwise_interaction(tf.constant(v * x[..., None], tf.float64)).numpy()
    np.testing.assert_allclose(fast, explicit_pairwise(x, v), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_field_aware_interaction_equals_the_explicit_pairwise_sum(seed):
    rng = np.random.default_rng(seed)
    batch, fields, k = 12, 4, 3
    slot_field = np.array([0, 1, 2, 3, 3, 3, 1])  # several slots in one field, as genres are
    x = rng.normal(size=(batch, len(slot_field))) * (rng.random((batch, len(slot_field))) > 0.2)
    v = rng.normal(size=(batch, len(slot_field), fields, k))
    xv = tf.constant(v * x[..., None, None], tf.float64)
    fast = field_aware_interaction(xv, tf.constant(slot_field), fields).numpy()
    np.testing.assert_allclose(fast, explicit_pairwise(x, v, slot_field), rtol=1e-10, atol=1e-10)


def test_a_wrong_pair_sum_is_caught_by_the_explicit_sum():
    """The check can fail: dropping the sum-of-squares correction counts each feature with itself."""
    rng = np.random.default_rng(3)
    x, v = rng.normal(size=(4, 5)), rng.normal(size=(4, 5, 3))
    xv = v * x[..., None]
    wrong = 0.5 * np.sum(xv.sum(axis=1) ** 2, axis=-1)
    assert np.max(np.abs(wrong - explicit_pairwise(x, v))) > 0.1


def test_tokens_and_slots_follow_the_documented_encoding():
    assert fieldlib.token("bucketized_user_age", np.float32(25.0)) == "25"
    assert fieldlib.token("user_gender", np.bool_(True)) == "1"
    assert fieldlib.token("user_zip_code", " 55455") == "55"
    table = data.generate_fm(users=6, items=5, seed=1).ratings
    sides = fieldlib.side_tokens(table, SYNTHETIC_FIELDS)
    layout = fieldlib.slots(SYNTHETIC_FIELDS, sides["user_side"], sides["item_side"])
    rows, values = layout.item_slots
    assert rows.shape[0] == 5 + 1 and not rows[0].any() and not values[0].any()  # row 0: unknown item
    genres = layout.widths["movie_genres"]
    for r in range(1, 6):
        genre_values = values[r, 1 : 1 + genres]
        count = len(sides["item_side"]["movie_genres"][r - 1])
        np.testing.assert_allclose(genre_values[:count], 1.0 / count)  # normalised multi-hot
        assert not genre_values[count:].any()
    with pytest.raises(DataError, match="no field 'bogus'"):
        fieldlib.side_tokens(table, ["user_id", "bogus"])
    with pytest.raises(DataError, match="user_id given twice"):
        fieldlib.side_tokens(table, ["user_id", "user_id"])


@pytest.fixture(scope="module")
def planted():
    """A planted FM (100 users x 50 items, every pair rated), 25% held out, and an FM and FFM trained on it."""
    parts = data.split(data.generate_fm(users=100, items=50, seed=0).ratings, "ratio:0.25", seed=0)
    models = {}
    for cls, dim in ((FactorizationMachine, 8), (FieldAwareFactorizationMachine, 4)):
        tf.keras.utils.set_random_seed(0)
        model = cls.from_table(parts.train, fields=SYNTHETIC_FIELDS, dim=dim)
        model.compile(optimizer=tf.keras.optimizers.Adam(0.03), steps_per_execution=16)
        vocabularies = (model.user_vocabulary, model.item_vocabulary)
        train = data.dataset(parts.train, 256, shuffle=True, seed=0, vocabularies=vocabularies)
        model.fit(train, epochs=30, verbose=0)
        models[cls.__name__] = model
    return parts, models


def _r2(model, table) -> float:
    predicted = model.score({"user_id": tf.constant(table.user_id), "movie_id": tf.constant(table.movie_id)})
    y = table.rating
    return 1 - float(np.sum((predicted.numpy() - y) ** 2) / np.sum((y - y.mean()) ** 2))


@pytest.mark.parametrize("name", ["FactorizationMachine", "FieldAwareFactorizationMachine"])
def test_a_planted_fm_is_recovered_on_held_out_pairs(planted, name):
    parts, models = planted
    assert len(parts.train) == 3750 and len(parts.test) == 1250
    assert _r2(models[name], parts.test) >= 0.97  # measured: FM 0.986, FFM 0.988


def test_given_side_features_score_like_the_held_ones_and_unknown_values_contribute_nothing(planted):
    parts, models = planted
    model = models["FieldAwareFactorizationMachine"]
    test = parts.test
    occupation = test.user_features["user_occupation_label"][test.user]
    genres = tf.gather(tf.RaggedTensor.from_row_splits(*test.item_features["movie_genres"]), test.item)
    ids = {"user_id": tf.constant(test.user_id), "movie_id": tf.constant(test.movie_id)}
    given = {**ids, "user_occupation_label": tf.constant(occupation), "movie_genres": genres}
    np.testing.assert_allclose(model.score(given).numpy(), model.score(ids).numpy(), rtol=1e-5, atol=1e-5)
    # An unseen user whose occupation is unknown too (-1): the user contributes nothing, only the movie does.
    n = 5
    unknown = {"user_id": tf.constant(["nobody"] * n), "movie_id": tf.constant(test.movie_id[:n]),
               "user_occupation_label": tf.constant([-1] * n, tf.int64), "movie_genres": genres[:n]}  # fmt: skip
    rows = model.lookup({"user_id": unknown["user_id"], "movie_id": unknown["movie_id"]})
    np.testing.assert_allclose(model.score(unknown).numpy(), model.score_rows(tf.zeros_like(rows[0]), rows[1]).numpy())
    # A known occupation given to the unseen user changes the prediction.
    known = {**unknown, "user_occupation_label": tf.constant(occupation[:n])}
    assert np.max(np.abs(model.score(known).numpy() - model.score(unknown).numpy())) > 1e-3


def test_keras_save_and_load_keeps_fields_and_predictions(planted, tmp_path):
    parts, models = planted
    model = models["FactorizationMachine"]
    path = export.save_keras(model, tmp_path / "fm.keras")
    loaded = export.load_keras(path)
    assert loaded.fields == model.fields and loaded.user_side == model.user_side
    ids = {"user_id": tf.constant(parts.test.user_id[:50]), "movie_id": tf.constant(parts.test.movie_id[:50])}
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), rtol=1e-6)


LOAD_WITHOUT_TFREC = (
    BLOCK_TFREC
    + """
import json
import numpy as np
import tensorflow as tf

path, request = json.loads(sys.argv[1])
loaded = tf.saved_model.load(path)
inputs = {k: tf.constant(v, dtype) for k, (v, dtype) in request.items()}
full = loaded.signatures["serving_default"](**inputs)["predictions"].numpy()
ids = loaded.signatures["serving_ids"](user_id=inputs["user_id"], movie_id=inputs["movie_id"])["predictions"].numpy()
top = loaded.signatures["recommend"](user_id=inputs["user_id"][:2], k=tf.constant(3))["movie_id"].numpy()
print(json.dumps({"full": full.tolist(), "ids": ids.tolist(), "top": top.astype(str).tolist(),
                  "inputs": sorted(loaded.signatures["serving_default"].structured_input_signature[1])}))
"""
)


def test_saved_model_serves_side_features_by_tfds_name_without_tfrec(planted, tmp_path):
    parts, models = planted
    model = models["FieldAwareFactorizationMachine"]
    path = export.save(model, tmp_path / "ffm", rated=parts.train)
    test = parts.test
    n = 6
    occupation = test.user_features["user_occupation_label"][test.user[:n]].tolist()
    genres = tf.gather(tf.RaggedTensor.from_row_splits(*test.item_features["movie_genres"]), test.item[:n])
    padded = genres.to_tensor(default_value=-1).numpy().tolist()
    users = test.user_id[:n].tolist()
    users[-1] = "nobody"  # an unseen user, with a known occupation
    request = {
        "user_id": (users, "string"),
        "movie_id": (test.movie_id[:n].tolist(), "string"),
        "user_occupation_label": (occupation[:-2] + [-1, occupation[-1]], "int64"),  # one value missing (-1)
        "movie_genres": (padded, "int64"),
    }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_TFREC, json.dumps([str(path), request])],
                          capture_output=True, text=True, env=env, check=True)  # fmt: skip
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["inputs"] == sorted(["user_id", "movie_id", "user_occupation_label", "movie_genres"])
    features = {k: tf.constant(v, getattr(tf, dtype)) for k, (v, dtype) in request.items()}
    np.testing.assert_allclose(served["full"], model(features).numpy(), atol=1e-6)
    ids = {"user_id": features["user_id"], "movie_id": features["movie_id"]}
    np.testing.assert_allclose(served["ids"], model(ids).numpy(), atol=1e-6)
    assert served["full"][:-2] == pytest.approx(served["ids"][:-2], abs=1e-6)  # known users, their own features
    assert served["full"][-2] != pytest.approx(served["ids"][-2], abs=1e-4)  # occupation missing: not used
    assert all(len(row) == 3 for row in served["top"])


@needs_ml100k
def test_cli_trains_an_fm_with_side_features_and_rejects_unknown_ones(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "fm.json"
    features = ",".join(ML_SIDE_FIELDS)
    done = subprocess.run(
        [sys.executable, "-m", "tfrec", "train", "--model", "fm", "--data", "ml-100k", "--features", features,
         "--epochs", "3", "--quiet", "--json", str(out)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["config"]["features"] == ML_SIDE_FIELDS
    assert summary["test_rmse"] < 0.96  # the global mean alone scores 1.13 on this split
    bad = subprocess.run(
        [sys.executable, "-m", "tfrec", "train", "--model", "fm", "--data", "ml-100k",
         "--features", "user_id,shoe_size"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0
    assert "no field 'shoe_size'" in bad.stderr
