"""SavedModel export, top-k recommendation, reload without tfrec, and Keras-native save and resume."""

import json
import subprocess
import sys

import numpy as np
import pytest

import tfrec  # noqa: F401  (selects Keras 2 before tensorflow below)
from conftest import BLOCK_TFREC, ENV
from conftest import run_tfrec as tfrec_cli
import tensorflow as tf
import toy_family
from tfrec import data, export, families
from tfrec.config import TrainConfig
from tfrec.errors import TfrecError
from tfrec.train import build, training_dataset

# Every registered family (the contract: a family gets this by registering; the test's own toy family
# too), plus implicit feedback and an MLP tower in mixed precision.
FAMILIES = {
    **{name: {} for name in (*families.names(), toy_family.NAME)},
    "neumf-implicit": {"model": "neumf", "feedback": "implicit"},
    "neumf-bfloat16": {"model": "neumf", "mixed_precision": "bfloat16"},
}  # fmt: skip
# How close a SavedModel's numbers are to the in-memory model's. A bfloat16 tower (8-bit mantissa) rounds
# differently for different batch shapes, in memory too: 7e-5 apart measured; float32 families agree to 1e-6.
ATOL = {"neumf-bfloat16": 1e-3}
MIXED = (["1", "2", "nobody", "3", "nobody"], ["1", "nothing", "4", "5", "nothing"])  # known and unseen ids
USERS = ["1", "2", "7", "nobody"]
KS = (3, 7)

# Runs in a fresh interpreter in which `import tfrec` fails: only TensorFlow reads the SavedModels.
LOAD_WITHOUT_TFREC = (
    BLOCK_TFREC
    + """
import json
try:
    import tfrec
    sys.exit("tfrec could be imported")
except ImportError:
    pass
import numpy as np
import tensorflow as tf

root, names, mixed, users, ks = json.loads(sys.argv[1])
for name in names:
    loaded = tf.saved_model.load(f"{root}/{name}")
    out = {"predictions": loaded.signatures["serving_default"](
        user_id=tf.constant(mixed[0]), movie_id=tf.constant(mixed[1]))["predictions"].numpy()}
    for signature in ("recommend", "recommend_including_rated"):
        for k in (*ks, 10_000):
            result = loaded.signatures[signature](user_id=tf.constant(users), k=tf.constant(k))
            out[f"{signature}/{k}/movie_id"] = result["movie_id"].numpy().astype(str)
            out[f"{signature}/{k}/scores"] = result["scores"].numpy()
        empty = loaded.signatures[signature](user_id=tf.constant([], tf.string), k=tf.constant(4))
        out[f"{signature}/empty"] = np.array([empty["movie_id"].shape, empty["scores"].shape])
    nothing = tf.constant([], tf.string)
    empty = loaded.signatures["serving_default"](user_id=nothing, movie_id=nothing)
    out["serving_default/empty"] = np.array(empty["predictions"].shape)
    np.savez(f"{root}/{name}.loaded.npz", **out)
"""
)


def _trained(name, train):
    config = _config(name)
    config.check()
    tf.keras.utils.set_random_seed(config.seed)
    model = build(config.model, train, config)
    model.fit(training_dataset(config, train, model), epochs=config.epochs, verbose=0)
    return model


def _config(name: str) -> TrainConfig:
    fields = {"model": name, **FAMILIES[name]}
    return TrainConfig(data="synthetic", epochs=2, seed=5, **fields)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every family trained briefly on small synthetic data, exported, and loaded in a process without tfrec."""
    train = data.split(data.load("synthetic:users=60,items=40,ratings=1500,seed=3"), "ratio", seed=1).train
    root = tmp_path_factory.mktemp("export")
    models = {}
    with toy_family.registered():
        trained = {name: _trained(name, train) for name in FAMILIES}
    for name, model in trained.items():
        export.save(model, root / name, rated=train)
        models[name] = model
    args = json.dumps([str(root), list(FAMILIES), MIXED, USERS, KS])
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_TFREC, args], capture_output=True, text=True, env=ENV, timeout=300,
        cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {name: dict(np.load(root / f"{name}.loaded.npz", allow_pickle=False)) for name in FAMILIES}
    return train, models, loaded


def _features(users, items):
    return {"user_id": tf.constant(users), "movie_id": tf.constant(items)}


@pytest.mark.parametrize("name", FAMILIES)
def test_loaded_without_tfrec_predicts_like_the_model(exported, name):
    _, models, loaded = exported
    expected = models[name](_features(*MIXED)).numpy()
    np.testing.assert_allclose(loaded[name]["predictions"], expected, rtol=0, atol=ATOL.get(name, 1e-6))
    assert loaded[name]["serving_default/empty"].tolist() == [0]


@pytest.mark.parametrize("name", ["biased-mf", "fm"])
def test_the_saved_model_refuses_unequal_lengths_and_a_negative_k_by_name(exported, name, tmp_path):
    """Through tf.saved_model.load: a dropped element is an error naming the input, never a broadcast."""
    _, models, _ = exported
    export.save(models[name], tmp_path / "saved")
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="movie_id must have as many entries as user_id"):
        loaded.signatures["serving_default"](user_id=tf.constant(["1", "2"]), movie_id=tf.constant(["1"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be >= 0"):
        loaded.signatures["recommend"](user_id=tf.constant(["1"]), k=tf.constant(-1))
    ok = loaded.signatures["serving_default"](user_id=tf.constant(["1", "2"]), movie_id=tf.constant(["1", "2"]))
    assert ok["predictions"].shape == (2,)


def test_the_saved_model_holds_no_optimizer_state(exported, tmp_path):
    """Serving needs the weights, not Adam's two slots per weight (which would triple the size)."""
    train, models, _ = exported
    path = export.save(models["neumf"], tmp_path / "neumf", rated=train)
    names = [name for name, _ in tf.train.list_variables(str(path / "variables" / "variables"))]
    assert any(name.startswith("weights/") for name in names)
    assert not [name for name in names if "optimizer" in name], names


@pytest.mark.parametrize("name", FAMILIES)
def test_recommend_is_the_brute_force_top_k(exported, name):
    """Top-k at two k chosen per call (and a k above the vocabulary) agrees with a numpy ranking of the
    in-memory model's scores of every item; `recommend` leaves out exactly the training ratings."""
    train, models, loaded = exported
    model, out, atol = models[name], loaded[name], ATOL.get(name, 1e-6)
    items = np.array(model.item_vocabulary)
    rated = {(u, i) for u, i in zip(train.user_id, train.movie_id)}
    for row, user in enumerate(USERS):
        scores = model.score(_features([user] * len(items), items.tolist())).numpy()
        seen = np.array([(user, i) in rated for i in items])
        for signature, excluded in (("recommend", seen), ("recommend_including_rated", np.zeros_like(seen))):
            brute = np.where(excluded, -np.inf, scores)
            for k in (*KS, 10_000):
                ids, got = out[f"{signature}/{k}/movie_id"][row], out[f"{signature}/{k}/scores"][row]
                assert len(ids) == min(k, len(items))
                np.testing.assert_allclose(got, -np.sort(-brute)[: len(ids)], rtol=1e-5, atol=atol)
                listed = ids != ""
                assert listed.sum() == min(len(ids), (~excluded).sum())
                by_id = dict(zip(items, brute))
                np.testing.assert_allclose([by_id[i] for i in ids[listed]], got[listed], rtol=1e-5, atol=atol)
                assert np.all(np.isneginf(got[~listed]))
                assert not any((user, i) in rated for i in ids[listed]) or signature != "recommend"
        assert seen.any() == (user != "nobody")
        for signature in ("recommend", "recommend_including_rated"):
            assert out[f"{signature}/empty"].tolist() == [[0, 4], [0, 4]]


def test_recommend_works_in_blocks_of_users(exported, tmp_path):
    """A memory bound of one user per block gives the same answers as the default blocks."""
    train, models, _ = exported
    model = models["neumf"]
    small = tf.saved_model.load(str(export.save(model, tmp_path / "one-per-block", rated=train, pairs_per_step=1)))
    users = tf.constant(USERS * 3)
    got = small.signatures["recommend"](user_id=users, k=tf.constant(5))
    in_memory = export._Serving(model, export.rated_rows(model, train), True, users_per_step=1000)
    want = in_memory.recommend(users, tf.constant(5))
    np.testing.assert_array_equal(got["movie_id"].numpy(), want["movie_id"].numpy())
    np.testing.assert_allclose(got["scores"].numpy(), want["scores"].numpy(), rtol=1e-6)


def test_save_refuses_a_directory_with_something_in_it_and_leaves_nothing_behind(exported, tmp_path):
    _, models, _ = exported
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(TfrecError, match="already exists"):
        export.save(models["mf"], tmp_path / "taken")
    with pytest.raises(TfrecError, match="not a SavedModel"):
        export.load(tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_save_makes_missing_parents_and_fills_an_empty_directory(exported, tmp_path):
    """TensorFlow Serving's NAME/VERSION layout in one call; an empty directory (made by a deploy script) is filled."""
    _, models, _ = exported
    export.save(models["mf"], tmp_path / "models" / "mf" / "1")
    (tmp_path / "empty").mkdir()
    export.save(models["mf"], tmp_path / "empty")
    for target in (tmp_path / "models" / "mf" / "1", tmp_path / "empty"):
        assert "serving_default" in export.load(target).signatures
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "models"]  # no staging left


@pytest.mark.parametrize("name", ["biased-mf", "neumf", "autorec-i"])
def test_keras_save_load_and_one_more_epoch_ends_where_an_uninterrupted_run_ends(name, tmp_path):
    """Two epochs, save as .keras (optimizer state included), load, one more epoch == three epochs straight."""
    train = data.load("synthetic:users=60,items=40,ratings=1500,seed=3")
    config = _config(name)
    config.check()

    def fresh():
        tf.keras.utils.set_random_seed(config.seed)
        return build(config.model, train, config)

    straight = fresh()
    straight.fit(training_dataset(config, train, straight), epochs=3, verbose=0)
    interrupted = fresh()
    interrupted.fit(training_dataset(config, train, interrupted), epochs=2, verbose=0)
    export.save_keras(interrupted, tmp_path / "run.keras")
    resumed = export.load_keras(tmp_path / "run.keras")
    assert int(resumed.optimizer.iterations) == int(interrupted.optimizer.iterations) > 0
    resumed.fit(training_dataset(config, train, resumed, first_epoch=3), epochs=1, verbose=0)
    assert len(resumed.weights) == len(straight.weights)
    for a, b in zip(resumed.weights, straight.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5, err_msg=a.name)
    if name == "biased-mf":  # the comparison can fail: resuming with epoch 1's order again ends elsewhere
        again = export.load_keras(tmp_path / "run.keras")
        again.fit(training_dataset(config, train, again, first_epoch=1), epochs=1, verbose=0)
        assert max(np.abs(a.numpy() - b.numpy()).max() for a, b in zip(again.weights, straight.weights)) > 1e-3


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-export")
    spec = "synthetic:users=80,items=50,ratings=2500,seed=2"
    result = tfrec_cli(
        "train", "--model", "biased-mf", "--data", spec, "--epochs", "3", "--quiet",
        "--save", str(root / "run"), "--export", str(root / "direct"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return root, spec


def test_cli_train_export_predict_recommend(cli_run):
    root, spec = cli_run
    assert sorted(p.name for p in (root / "run").iterdir()) == ["model.keras", "run.json"]
    result = tfrec_cli("export", str(root / "run"), "--out", str(root / "from-run"))
    assert result.returncode == 0, result.stderr[-3000:]
    train = data.split(data.load(spec), "ratio", seed=42).train
    user, movie = train.user_id[0], train.movie_id[0]
    answers = []
    for saved in ("direct", "from-run"):
        result = tfrec_cli("predict", str(root / saved), "--user", user, "--movie", movie)
        assert result.returncode == 0, result.stderr[-3000:]
        answers.append(float(result.stdout))
    assert answers[0] == answers[1] and 1.0 <= answers[0] <= 5.0
    result = tfrec_cli("recommend", str(root / "from-run"), "--user", user, "-k", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["rank", "movie_id", "score"] and len(lines) == 5
    listed = [line.split()[1] for line in lines[1:]]
    rated = {i for u, i in zip(train.user_id, train.movie_id) if u == user}
    assert not rated & set(listed)
    scores = [float(line.split()[2]) for line in lines[1:]]
    assert scores == sorted(scores, reverse=True)


def test_saved_model_cli_lists_the_signatures_with_their_dtypes(cli_run):
    root, _ = cli_run
    result = subprocess.run(
        ["saved_model_cli", "show", "--dir", str(root / "direct"), "--all"],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    blocks = {b.split("'")[0]: b for b in text.split("signature_def['")[1:]}
    assert set(export.SIGNATURES) <= set(blocks), text
    expected = {
        "serving_default": (["user_id", "movie_id"], {"predictions": "DT_FLOAT"}),
        "recommend": (["user_id", "k"], {"movie_id": "DT_STRING", "scores": "DT_FLOAT"}),
        "recommend_including_rated": (["user_id", "k"], {"movie_id": "DT_STRING", "scores": "DT_FLOAT"}),
    }
    for name, (inputs, outputs) in expected.items():
        inputs_part, outputs_part = blocks[name].split(
            "The given SavedModel SignatureDef contains the following output"
        )
        for key in inputs:
            dtype = "DT_INT32" if key == "k" else "DT_STRING"
            assert f"inputs['{key}'] tensor_info:\n        dtype: {dtype}" in inputs_part, blocks[name]
        for key, dtype in outputs.items():
            assert f"outputs['{key}'] tensor_info:\n        dtype: {dtype}" in outputs_part, blocks[name]


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "{root}/run", "--user", "1", "--movie", "1"], "not a SavedModel directory"),
        (["export", "{root}/nothing-here", "--out", "{root}/x"], "no such run directory or .keras file"),
        (["export", "{root}/run", "--out", "{root}/direct"], "already exists"),
        (["recommend", "{root}/direct", "--user", "1", "-k", "0"], "must be a positive integer"),
        (["train", "--data", "{root}/x", "--intra-op-threads", "-1"], "--intra-op-threads: must be 0 or more"),
    ],
)
def test_cli_mistakes_are_one_line(cli_run, args, message, capsys):
    """In this process (the command's own processes are tested above): one line, a non-zero status."""
    from tfrec import cli

    root, _ = cli_run
    try:
        status = cli.main([a.format(root=root) for a in args])
    except SystemExit as e:  # argparse's usage errors
        status = e.code
    err = capsys.readouterr().err
    assert status != 0
    assert message in err and len(err.strip().splitlines()) == 1, err
