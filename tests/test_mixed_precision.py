"""Mixed precision (`--mixed-precision`): NCF and AutoRec's Dense layers compute in float16 or bfloat16."""

import numpy as np
import pytest

import tfrec  # noqa: F401  (selects Keras 2 before tensorflow below)
import tensorflow as tf
from tfrec import cli, data
from tfrec.config import TrainConfig
from tfrec.errors import TfrecError
from tfrec.export import load_keras, save_keras
from tfrec.train import build, run, training_dataset

DATA = "synthetic:users=120,items=90,ratings=7000,seed=4"
# Where the float16 run would take minutes on a CPU (AutoRec's 120-wide vectors do not), it is left to GPUs.
CASES = [("autorec-i", "bfloat16"), ("neumf", "bfloat16"), ("neumf", "float16")]
# Enough epochs for each to get 0.1 below the mean's RMSE on DATA (1.074): autorec-i 0.957, neumf 0.927.
FIT = {"autorec-i": {"epochs": 30, "learning_rate": 0.01}, "neumf": {"epochs": 12}}


def _config(model, precision=None, **fields):
    fields = {"patience": 99, **FIT[model], **fields}
    return TrainConfig(model=model, data=DATA, mixed_precision=precision, **fields)


@pytest.fixture(scope="module")
def float32_runs():
    return {model: run(_config(model), verbose=0).report for model in {m for m, _ in CASES}}


@pytest.mark.parametrize("model,precision", CASES)
def test_mixed_precision_learns_what_float32_learns(float32_runs, model, precision):
    """Same data, seed and epochs: the test RMSE within 0.01 of float32's, both far below the mean's."""
    reference = float32_runs[model]
    result = run(_config(model, precision), verbose=0)
    mixed = result.report
    parts = data.split(data.load(DATA), "ratio", seed=42)
    train, test = parts.train, parts.test
    mean_rmse = float(np.sqrt(np.mean((test.rating - train.rating.mean()) ** 2)))
    assert reference["test_rmse"] < mean_rmse - 0.1, (reference["test_rmse"], mean_rmse)
    assert abs(mixed["test_rmse"] - reference["test_rmse"]) < 0.01, (mixed["test_rmse"], reference["test_rmse"])
    net = result.model
    dense = [layer for layer in net.submodules if isinstance(layer, tf.keras.layers.Dense)]
    computing = {layer.name: layer.compute_dtype for layer in dense}
    assert sum(dtype == precision for dtype in computing.values()) >= 2, computing
    if model == "neumf":  # the output layer, fusing the GMF branch, stays float32
        assert net.output_layer.compute_dtype == "float32"
    assert {v.dtype for v in net.trainable_variables} == {tf.float32}
    assert net({"user_id": tf.constant(["1", "2"]), "movie_id": tf.constant(["1", "3"])}).dtype == tf.float32
    scaled = isinstance(net.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert scaled == (precision == "float16")


def test_float16_steps_scale_the_loss_and_unscale_the_gradients():
    """With SGD (not scale-invariant like Adam) one float16 step moves the weights as a float32 step does.

    Unscaled gradients would move them by the loss scale (2**15) times more; no scaling at all would lose
    gradients below float16's smallest normal (6e-5), such as the N(0, 0.01) embeddings' products."""
    train = data.split(data.load(DATA), "ratio", seed=42).train
    steps = {}
    for precision in (None, "float16"):
        config = _config("neumf", precision, optimizer="sgd", learning_rate=0.5)
        config.check()
        tf.keras.utils.set_random_seed(3)
        net = build("neumf", train, config)
        batch = next(iter(training_dataset(config, train, model=net)))
        net(batch)  # creates the weights
        before = [v.numpy() for v in net.trainable_variables]
        net.train_step(batch)
        steps[precision] = [v.numpy() - b for v, b in zip(net.trainable_variables, before)]
    assert float(net.optimizer.loss_scale) == 2.0**15
    for variable, full, half in zip(net.trainable_variables, steps[None], steps["float16"]):
        # float16's 10-bit mantissa moves each step a little; a missing (un)scaling moves it by 100% or 2**15x.
        error = np.linalg.norm(half - full) / np.linalg.norm(full)
        assert error < 0.05, (variable.name, error)


def test_a_mixed_precision_model_keeps_its_policy_through_keras_save_and_load(tmp_path):
    train = data.split(data.load(DATA), "ratio", seed=42).train
    config = _config("autorec-i", "bfloat16", epochs=1)
    config.check()
    net = build("autorec-i", train, config)
    net.fit(training_dataset(config, train, model=net), epochs=1, verbose=0)
    save_keras(net, tmp_path / "m.keras")
    loaded = load_keras(tmp_path / "m.keras")
    assert loaded.mixed_precision == "bfloat16" and loaded.encoder.compute_dtype == "bfloat16"
    pairs = {"user_id": tf.constant(["1", "5", "nobody"]), "movie_id": tf.constant(["2", "7", "2"])}
    np.testing.assert_allclose(loaded(pairs).numpy(), net(pairs).numpy(), atol=1e-6)


def test_mixed_precision_is_refused_where_there_is_no_dense_layer(capsys):
    for model in ("mf", "biased-mf", "gmf", "fm", "ffm"):
        with pytest.raises(TfrecError, match="mixed_precision is for the models with Dense layers"):
            TrainConfig(model=model, mixed_precision="bfloat16").check()
    with pytest.raises(TfrecError, match="unknown mixed_precision 'float8'"):
        TrainConfig(model="ncf", mixed_precision="float8").check()
    assert cli.main(["train", "--model", "mf", "--data", DATA, "--mixed-precision", "bfloat16"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mixed-precision is for the models with Dense layers" in err, err
