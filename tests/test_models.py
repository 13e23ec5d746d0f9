"""The contract suite every registered model family passes, plus each model's own formula and learning checks.

Driven by the registry (``tfrec.families``): a family gets these tests by registering, as the test's own
toy family (tests/toy_family.py, defined outside tfrec) does here. The SavedModel half of the contract
(served in a process without tfrec, ``recommend`` with ``k`` per call) is tests/test_export.py's, over
the same registry.
"""

import numpy as np
import pytest

import tfrec  # selects Keras 2 before tensorflow below
import tensorflow as tf
import toy_family
from tfrec import data, families
from tfrec.config import TrainConfig
from tfrec.models import AutoRec, BiasedMatrixFactorization, MatrixFactorization, NeuralCollaborativeFiltering
from tfrec.train import build, training_dataset

NAMES = [*families.names(), toy_family.NAME]

# Settings that reach the planted structure in a few seconds each: (config fields, epochs).
SETTINGS = {
    "mf": ({"learning_rate": 0.01, "l2": 0.02}, 25),
    "biased-mf": ({"learning_rate": 0.01, "l2": 0.02}, 25),
    "ncf": ({"layers": "32,16", "learning_rate": 0.003, "l2": 1e-4}, 25),
    "gmf": ({"learning_rate": 0.01, "l2": 1e-4}, 8),
    "neumf": ({"layers": "32,16", "learning_rate": 0.003, "l2": 1e-4}, 10),
    "autorec-i": ({"hidden": 100, "learning_rate": 0.01, "l2": 0.001, "batch_size": 32, "input_dropout": 0}, 30),
    "autorec-u": ({"hidden": 100, "learning_rate": 0.01, "l2": 0.001, "batch_size": 32, "input_dropout": 0}, 30),
    # With the two id fields an FM is biased MF (w0 + w_u + w_i + <v_u, v_i>), and so is FFM.
    "fm": ({"learning_rate": 0.01, "l2": 0.02}, 25),
    "ffm": ({"learning_rate": 0.01, "l2": 0.02}, 25),
}
DEFAULT_SETTINGS = ({}, 25)  # a family not listed trains with its own defaults


@pytest.fixture(scope="module", autouse=True)
def toy():
    with toy_family.registered():
        yield


@pytest.fixture(scope="module")
def planted():
    """Synthetic data with sigma 0.5: the floor no model can beat on held-out ratings."""
    return data.generate(users=400, items=300, ratings=60_000, rank=4, sigma=0.5, seed=0)


@pytest.fixture(scope="module")
def planted_split(planted):
    return data.random_split(planted.ratings, 0.2, seed=0)


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, planted_split):
    """Each model trained once on the planted data; the tests below share it."""
    tf.keras.utils.set_random_seed(0)
    fields, epochs = SETTINGS.get(request.param, DEFAULT_SETTINGS)
    config = TrainConfig(model=request.param, dim=8, steps_per_execution=8, seed=0, **{"batch_size": 512, **fields})
    model = build(request.param, planted_split.train, config)
    history = model.fit(training_dataset(config, planted_split.train, model=model), epochs=epochs, verbose=0)
    test = model.evaluate(data.dataset(planted_split.test, 8192), return_dict=True, verbose=0)
    return request.param, model, history.history, test


def _features(users, items):
    return {"user_id": tf.constant(users, tf.string), "movie_id": tf.constant(items, tf.string)}


def test_loss_goes_down_and_is_reported_apart_from_regularization(fitted):
    name, _, history, _ = fitted
    # Halved from the first epoch's mean; the toy family starts at the mean rating with nothing but biases to learn.
    assert history["loss"][-1] < (0.95 if name == toy_family.NAME else 0.5) * history["loss"][0]
    assert history["regularization_loss"][-1] > 0  # every setting above has l2 > 0
    assert set(history) >= {"loss", "regularization_loss", "rmse", "mae"}


def test_learns_planted_structure(fitted, planted, planted_split):
    """MF reaches the noise floor. The others close a share of the gap between the best
    model without user-item interactions (the planted mean and biases) and the floor:
    half for NCF; 30% for AutoRec, which here has only 300 (or 400) example vectors
    for about 80K weights (measured 0.606 I-AutoRec, 0.631 U-AutoRec, bound 0.639). The toy family,
    biases only, reaches the best biases-only predictor (the planted biases) and no further."""
    name, _, _, test = fitted
    users = planted_split.test.user_id.astype(int) - 1  # id "k" was drawn as row k - 1
    items = planted_split.test.movie_id.astype(int) - 1
    biases_only = planted.global_mean + planted.user_bias[users] + planted.item_bias[items]
    floor = float(np.sqrt(np.mean((planted_split.test.rating - biases_only) ** 2)))
    assert floor > planted.sigma + 0.15  # the interactions matter on this data
    share = {"mf": None, "biased-mf": None, "autorec-i": 0.3, "autorec-u": 0.3}.get(name, 0.5)
    bound = planted.sigma + 0.05 if share is None else floor - share * (floor - planted.sigma)
    if name == toy_family.NAME:
        bound = floor + 0.03
        assert test["rmse"] > planted.sigma + 0.1  # without factors the interactions stay out of reach
    assert test["rmse"] <= bound, (name, test, floor)


def test_output_shape_dtype_and_call_styles_agree(fitted, planted_split):
    _, model, _, _ = fitted
    test = planted_split.test
    features = _features(test.user_id[:7], test.movie_id[:7])
    direct = model(features).numpy()
    assert direct.shape == (7,) and direct.dtype == np.float32
    batch = next(iter(data.dataset(test, 7)))
    np.testing.assert_allclose(model(batch).numpy(), direct, rtol=1e-6)
    np.testing.assert_allclose(model.predict(data.dataset(test, 3).take(3), verbose=0)[:7], direct, rtol=1e-6)
    fn = tf.function(lambda f: model(f))
    np.testing.assert_allclose(fn(features).numpy(), direct, rtol=1e-6)


def test_config_round_trip_keeps_predictions(fitted, planted_split):
    _, model, _, _ = fitted
    clone = type(model).from_config(model.get_config())
    features = _features(planted_split.test.user_id[:20], planted_split.test.movie_id[:20])
    clone(features)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(features).numpy(), model(features).numpy(), rtol=1e-6)
    assert clone.get_config() == model.get_config()


def test_weights_save_and_load_round_trip(fitted, planted_split, tmp_path):
    _, model, _, _ = fitted
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    clone = type(model).from_config(model.get_config())
    features = _features(planted_split.test.user_id[:20], planted_split.test.movie_id[:20])
    clone(features)
    clone.load_weights(path)
    np.testing.assert_allclose(clone(features).numpy(), model(features).numpy(), rtol=1e-6)


def test_keras_file_round_trip_keeps_predictions_and_optimizer_state(fitted, planted_split, tmp_path):
    from tfrec import export

    _, model, _, _ = fitted
    export.save_keras(model, tmp_path / "model.keras")
    loaded = export.load_keras(tmp_path / "model.keras")
    features = _features(planted_split.test.user_id[:20], planted_split.test.movie_id[:20])
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded(features).numpy(), model(features).numpy(), rtol=1e-6)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0


def test_unseen_ids_get_defined_answers(fitted, planted_split):
    name, model, _, _ = fitted
    known_user, known_item = planted_split.train.user_id[0], planted_split.train.movie_id[0]
    out = model(_features(["nobody", known_user, "nobody"], [known_item, "nothing", "nothing"])).numpy()
    assert np.isfinite(out).all()
    other = model(_features(["someone else", known_user], [known_item, "another thing"])).numpy()
    np.testing.assert_allclose(other, out[:2], rtol=1e-6)  # every unseen id is the same unseen id
    mu = model.global_mean
    if name in ("biased-mf", toy_family.NAME):
        b_i = model.item_bias(model.item_lookup(tf.constant([known_item]))).numpy()[0, 0]
        b_u = model.user_bias(model.user_lookup(tf.constant([known_user]))).numpy()[0, 0]
        np.testing.assert_allclose(out, [mu + b_i, mu + b_u, mu], rtol=1e-5)
    elif name in ("fm", "ffm"):  # an unknown id adds nothing: the trained w0 plus the known id's weight
        w = model.linear.embeddings.numpy()[:, 0]
        w_i = w[model.offsets["movie_id"] + int(model.item_lookup(tf.constant([known_item]))[0])]
        w_u = w[model.offsets["user_id"] + int(model.user_lookup(tf.constant([known_user]))[0])]
        w0 = float(model.bias.numpy())
        np.testing.assert_allclose(out, [w0 + w_i, w0 + w_u, w0], rtol=1e-5)
    else:
        np.testing.assert_allclose(out, [mu, mu, mu], rtol=1e-6)
    assert model(_features([], [])).shape == (0,)


def test_predictions_clip_to_training_range_only_at_inference():
    train = data.Ratings.from_arrays(["a", "b"], ["x", "y"], [1.0, 5.0])
    model = BiasedMatrixFactorization.from_table(train, dim=2)
    features = _features(["a"], ["x"])
    model(features)  # builds the tables
    model.user_bias.embedding.embeddings.assign([[0.0], [10.0], [0.0]])  # OOV row, "a", "b"
    assert model(features).numpy()[0] == 5.0
    np.testing.assert_allclose(
        model(features, training=True).numpy()[0] - 13.0,
        model.interaction(*model.lookup(features)).numpy()[0],
        atol=1e-5,
    )


def test_biased_mf_formula_by_hand():
    train = data.Ratings.from_arrays(["u1", "u2"], ["i1", "i2"], [2.0, 4.0])
    model = BiasedMatrixFactorization.from_table(train, dim=2)
    assert model.global_mean == 3.0 and model.rating_range == (2.0, 4.0)
    model(_features(["u1"], ["i1"]))
    model.user_factors.embedding.embeddings.assign([[9, 9], [1.0, 2.0], [0, 0]])
    model.item_factors.embedding.embeddings.assign([[9, 9], [0.5, -0.25], [0, 0]])
    model.user_bias.embedding.embeddings.assign([[9], [0.1], [0]])
    model.item_bias.embedding.embeddings.assign([[9], [-0.3], [0]])
    # 3 + 0.1 - 0.3 + (1*0.5 + 2*-0.25) = 2.8; the OOV row (9s) is never used.
    np.testing.assert_allclose(model(_features(["u1"], ["i1"]), training=True).numpy(), [2.8], rtol=1e-6)


@pytest.mark.parametrize("cls", [MatrixFactorization, BiasedMatrixFactorization])
def test_mf_answers_unseen_ids_without_reading_or_training_their_row(cls):
    """MF's and biased MF's tables skip the row-0 mask: their tf.where drops an unseen id's terms (MF answers
    the global mean), and keeps the loss's gradient off the unseen rows. Row 0 holds 9s here, to show."""
    train = data.Ratings.from_arrays(["u1", "u2"], ["i1", "i2"], [2.0, 4.0])
    model = cls.from_table(train, dim=2)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.5))
    model(_features(["u1"], ["i1"]))
    biased = cls is BiasedMatrixFactorization
    tables = [model.user_factors, model.item_factors] + ([model.user_bias, model.item_bias] if biased else [])
    assert not any(table.mask_unseen for table in tables)
    model.user_factors.embedding.embeddings.assign([[9.0, 9.0], [1.0, 2.0], [0.5, 0.5]])
    model.item_factors.embedding.embeddings.assign([[9.0, 9.0], [0.5, -0.25], [1.0, 1.0]])
    b_u1, b_i1, b_i2 = (0.25, -0.5, 0.125) if biased else (0.0, 0.0, 0.0)
    if biased:
        model.user_bias.embedding.embeddings.assign([[9.0], [b_u1], [0.0]])
        model.item_bias.embedding.embeddings.assign([[9.0], [b_i1], [b_i2]])
    out = model(_features(["nobody", "u1", "u1", "nobody"], ["i1", "nothing", "i1", "nothing"]), training=True)
    # unseen user: mu + b_i1; unseen item: mu + b_u1; known pair: mu + b_u1 + b_i1 + 1*0.5 + 2*-0.25 (MF: no
    # mu, no biases); both unseen: mu
    expected = [3.0 + b_i1, 3.0 + b_u1, 3.0 + b_u1 + b_i1 if biased else 0.0, 3.0]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    users = model.user_lookup(tf.constant(["nobody", "u1"]))
    grid = model.score_items(users).numpy()  # every known item: i1, i2
    np.testing.assert_allclose(grid[0], [3.0 + b_i1, 3.0 + b_i2], rtol=1e-6)
    u1 = [3.0 + b_u1 + b_i1, 3.0 + b_u1 + b_i2 + 3.0] if biased else [0.0, 3.0]  # u1 . i2 = 1 + 2
    np.testing.assert_allclose(grid[1], u1, rtol=1e-6)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.train_on_batch({**_features(["nobody"], ["nothing"]), "user_rating": tf.constant([5.0])})
    for a, b in zip(before, model.trainable_weights):  # no gradient reached an unseen row
        np.testing.assert_array_equal(a, b.numpy())
    if not biased:  # and MF's answer for a half-unseen pair is the mean: nothing of i1 trains either
        model.train_on_batch({**_features(["nobody"], ["i1"]), "user_rating": tf.constant([5.0])})
        for a, b in zip(before, model.trainable_weights):
            np.testing.assert_array_equal(a, b.numpy())
    model.train_on_batch({**_features(["u1"], ["i1"]), "user_rating": tf.constant([5.0])})
    assert np.abs(model.user_factors.embedding.embeddings.numpy()[1] - [1.0, 2.0]).max() > 0.1  # a known pair trains
    assert (model.user_factors.embedding.embeddings.numpy()[0] == 9.0).all()


def test_l2_penalises_only_looked_up_rows():
    train = data.Ratings.from_arrays(["u1", "u2"], ["i1", "i2"], [2.0, 4.0])
    model = MatrixFactorization.from_table(train, dim=2, l2=0.5)
    model(_features(["u1"], ["i1"]))
    model.user_factors.embedding.embeddings.assign([[0, 0], [1.0, 1.0], [3.0, 3.0]])
    model.item_factors.embedding.embeddings.assign([[0, 0], [2.0, 0.0], [5.0, 5.0]])
    model(_features(["u1", "u1"], ["i1", "i1"]))
    # 0.5 * (sum of squares of the two looked-up user rows + item rows) / batch of 2
    np.testing.assert_allclose(float(tf.add_n(model.losses)), 0.5 * (2 + 2 + 4 + 4) / 2, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_has_parity_trajectory_fixtures(name):
    """Every family of tfrec's own has a PyTorch reference and trajectory fixtures (test_parity checks them)."""
    from parity.cases import CASES
    from parity.fixtures_io import paths
    from parity.reference import REFERENCE_CLASSES

    if name == toy_family.NAME:
        pytest.skip("a family defined outside tfrec brings its own PyTorch reference, if any")
    assert families.family(name).class_name(name) in REFERENCE_CLASSES
    cases = [c for c in CASES.values() if c.model == name]
    assert cases, f"{name}: no trajectory case in parity/cases.toml"
    assert all(path.is_file() for case in cases for path in paths(case.name))


@pytest.mark.parametrize("cls", [MatrixFactorization, BiasedMatrixFactorization, NeuralCollaborativeFiltering, AutoRec])
def test_docstring_examples_run(cls, planted_split):
    import doctest

    globs = {"tf": tf, "tfrec": tfrec, "train": planted_split.train, cls.__name__: cls}
    (test,) = [t for t in doctest.DocTestFinder(recurse=False).find(cls, globs=globs) if t.examples]
    result = doctest.DocTestRunner().run(test)
    assert result.attempted >= 4 and result.failed == 0
