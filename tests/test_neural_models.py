"""NCF and AutoRec specifics: formulas by hand, the masked loss, implicit feedback that learns."""

import numpy as np
import pytest

import tfrec  # noqa: F401  (selects Keras 2 before tensorflow below)
import tensorflow as tf
from tfrec import data
from tfrec.config import TrainConfig
from tfrec.data.implicit import ranking_candidates
from tfrec.data.vectors import dense_rows, rating_rows
from tfrec.errors import TfrecError
from tfrec.metrics import most_popular, ranking_metrics
from tfrec.models import AutoRec, NeuralCollaborativeFiltering
from tfrec.train import build, training_dataset


def _features(users, items):
    return {"user_id": tf.constant(users, tf.string), "movie_id": tf.constant(items, tf.string)}


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    cells = rng.permutation(20 * 15)[:120]
    return data.Ratings.from_arrays(cells // 15, cells % 15, rng.integers(1, 6, 120).astype(float))


def test_tfrs_basic_ranking_tutorial_model_is_ncf_with_its_settings(small):
    """Embeddings 32 + Dense 256 relu + Dense 64 relu + Dense 1, parameter for parameter."""
    model = NeuralCollaborativeFiltering.from_table(small, variant="mlp", dim=32, layers=[256, 64])
    model(_features(["1"], ["2"]))
    users, items = len(model.user_vocabulary) + 1, len(model.item_vocabulary) + 1  # + the OOV row, as StringLookup
    expected = users * 32 + items * 32 + (64 * 256 + 256) + (256 * 64 + 64) + (64 + 1)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == expected
    assert [layer.units for layer in model.tower.layers] == [256, 64]
    assert all(layer.activation.__name__ == "relu" for layer in model.tower.layers)


def test_gmf_and_neumf_formulas_by_hand(small):
    gmf = NeuralCollaborativeFiltering.from_table(small, variant="gmf", dim=2)
    features = _features(["1"], ["2"])
    gmf(features)
    u, i = (int(x[0]) for x in gmf.lookup(features))
    gmf.user_gmf.embedding.embeddings[u].assign([1.0, 2.0])
    gmf.item_gmf.embedding.embeddings[i].assign([3.0, -1.0])
    gmf.output_layer.set_weights([np.array([[0.5], [2.0]], np.float32), np.array([0.25], np.float32)])
    # 0.5 * (1 * 3) + 2 * (2 * -1) + 0.25
    np.testing.assert_allclose(gmf(features, training=True).numpy(), [-2.25], rtol=1e-6)

    neumf = NeuralCollaborativeFiltering.from_table(small, variant="neumf", dim=3, gmf_dim=2, layers=[4])
    neumf(features)
    users, items = neumf.lookup(features)
    product = neumf.user_gmf(users) * neumf.item_gmf(items)
    hidden = neumf.tower(tf.concat([neumf.user_mlp(users), neumf.item_mlp(items)], -1))
    kernel, bias = neumf.output_layer.get_weights()
    by_hand = np.concatenate([product.numpy(), hidden.numpy()], -1) @ kernel + bias
    assert kernel.shape == (2 + 4, 1)
    np.testing.assert_allclose(neumf(features, training=True).numpy(), by_hand[:, 0], rtol=1e-5)


def test_ncf_options_are_checked(small):
    with pytest.raises(TfrecError, match="variant must be one of mlp, gmf, neumf"):
        NeuralCollaborativeFiltering.from_table(small, variant="deep")
    with pytest.raises(TfrecError, match="needs at least one hidden layer"):
        NeuralCollaborativeFiltering.from_table(small, variant="neumf", layers=[])
    with pytest.raises(TfrecError, match="dropout must be in"):
        NeuralCollaborativeFiltering.from_table(small, dropout=1.0)


def test_autorec_loss_ignores_unobserved_entries(small):
    model = AutoRec.from_table(small, kind="item", hidden=8)
    model.compile(optimizer="sgd")
    rows = rating_rows(small, "item")
    ratings, mask = dense_rows(rows.row_splits, rows.columns, rows.values, tf.range(6), rows.shape[1])
    noisy = tf.where(mask > 0, ratings, tf.random.stateless_uniform(ratings.shape, [1, 2], 1.0, 5.0))
    assert float(tf.reduce_sum(tf.abs(noisy - ratings))) > 10  # the unobserved entries really changed

    def loss_and_gradients(targets, normalization):
        model.loss_normalization = normalization
        with tf.GradientTape() as tape:
            loss = model.compute_loss({"ratings": targets, "mask": mask}, training=True)
        return loss, tape.gradient(loss, model.trainable_variables)

    for normalization, count in (("observed", float(tf.reduce_sum(mask))), ("entries", float(tf.size(mask)))):
        loss, grads = loss_and_gradients(ratings, normalization)
        noisy_loss, noisy_grads = loss_and_gradients(noisy, normalization)
        assert float(loss) == float(noisy_loss)
        for a, b in zip(grads, noisy_grads):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        by_hand = float(tf.reduce_sum(mask * (model.reconstruct(ratings) - ratings) ** 2)) / count
        np.testing.assert_allclose(float(loss), by_hand, rtol=1e-5)


@pytest.mark.parametrize("kind", ["item", "user"])
def test_autorec_pair_prediction_is_the_reconstructed_entry(small, kind):
    model = AutoRec.from_table(small, kind=kind, hidden=8)
    rows = rating_rows(small, kind)
    pairs = data.random_split(small, 0.5, seed=1).test  # known ids, rated or not by that pair
    users = np.searchsorted(rows.column_ids if kind == "item" else rows.row_ids, pairs.user_id)
    items = np.searchsorted(rows.row_ids if kind == "item" else rows.column_ids, pairs.movie_id)
    row, column = (items, users) if kind == "item" else (users, items)
    dense, _ = dense_rows(rows.row_splits, rows.columns, rows.values, row, rows.shape[1])
    full = model.reconstruct(dense).numpy()[np.arange(len(row)), column]
    expected = np.clip(full, *model.rating_range)
    np.testing.assert_allclose(model(_features(pairs.user_id, pairs.movie_id)).numpy(), expected, rtol=1e-5)


@pytest.fixture(scope="module")
def blocks():
    """200 users and 200 items in 4 blocks; each user rated 20 random items of its own block."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(200), 20)
    items = np.concatenate([(u % 4) * 50 + rng.choice(50, 20, replace=False) for u in range(200)])
    table = data.Ratings.from_arrays(users, items, np.ones(len(users)), rng.permutation(len(users)))
    return table, data.leave_last_out(table)


@pytest.mark.parametrize("model,loss", [("neumf", "bce"), ("ncf", "mse")])
def test_implicit_ncf_learns_the_blocks(blocks, model, loss):
    """Held-out items compete with ~16 same-block negatives among 99: knowing the blocks
    gives HR@10 near 10/17 = 0.59; popularity (flat here) and chance give 0.1."""
    table, parts = blocks
    tf.keras.utils.set_random_seed(0)
    config = TrainConfig(
        model=model, feedback="implicit", implicit_loss=loss, dim=8, layers="16,8", learning_rate=0.01,
        batch_size=256, steps_per_execution=8, seed=0,
    )  # fmt: skip
    net = build(model, parts.train, config)
    net.fit(training_dataset(config, parts.train, net), epochs=10, verbose=0)
    candidates = ranking_candidates(parts.test, table, 99, seed=0)
    learned = ranking_metrics(net, candidates, 10)
    popular = ranking_metrics(most_popular(parts.train), candidates, 10)
    assert learned["hit_rate@10"] >= 0.4 and learned["ndcg@10"] >= 0.2, learned
    assert popular["hit_rate@10"] <= 0.2, popular
    probability = net(_features(["0", "0"], ["0", "199"])).numpy()  # user 0 is in block 0
    assert probability.dtype == np.float32 and 0 <= probability.min() and probability.max() <= 1
    assert net(_features(["nobody"], ["0"])).numpy()[0] == 0.0


def test_autorec_set_ratings_changes_inputs_not_weights(small):
    half = data.random_split(small, 0.5, seed=2)
    model = AutoRec.from_table(half.train, kind="item", hidden=8)
    features = _features(half.test.user_id, half.test.movie_id)
    weights = [w.numpy() for w in model.trainable_variables]
    before = model(features).numpy()
    model.set_ratings(small)  # adds half.test's ratings; ids unknown to the model are left out
    known_users, known_items = set(model.user_vocabulary), set(model.item_vocabulary)
    kept = sum(u in known_users and i in known_items for u, i in zip(small.user_id, small.movie_id))
    assert model.num_ratings == int(model.row_splits[-1]) == kept > len(half.train)
    assert not np.allclose(model(features).numpy(), before)
    for w, v in zip(weights, model.trainable_variables):
        np.testing.assert_array_equal(w, v.numpy())
    model.set_ratings(half.train)
    np.testing.assert_allclose(model(features).numpy(), before, rtol=1e-6)


def test_autorec_without_refit_predicts_from_the_whole_training_part():
    """`--no-refit`: the validation cut was held out of the inputs while fitting; afterwards its
    ratings are known ratings again, so the returned model holds every training rating."""
    from tfrec.train import run

    config = TrainConfig(model="autorec-i", data="synthetic:users=40,items=30,ratings=600", epochs=2, refit=False)
    result = run(config, verbose=0)
    summary = result.report
    whole = data.split(data.load(config.data), config.split, seed=config.seed).train
    assert summary["refit_epochs"] is None
    assert result.model.num_ratings == len(rating_rows(whole, "item").values) == len(whole)
