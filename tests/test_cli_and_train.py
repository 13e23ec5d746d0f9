"""The `tfrec` command, the import order of tensorflow and tfrec, and the default runs."""

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ENV, ml100k_dir
from conftest import run_tfrec as tfrec

from tfrec import data


def python(code):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=ENV, timeout=300
    )


@pytest.fixture(scope="module")
def trained_json(tmp_path_factory):
    """One small `tfrec train` run (synthetic data) in a fresh kernel cache, with TensorBoard logs."""
    root = tmp_path_factory.mktemp("cli")
    out = root / "summary.json"
    spec = "synthetic:users=200,items=100,ratings=8000,sigma=0.5,seed=1"
    args = ["train", "--data", spec, "--epochs", "5", "--json", str(out), "--tensorboard", str(root / "board")]
    result = tfrec(*args, env={"TFREC_OPS_CACHE": str(root / "ops")})
    return result, out


def test_train_prints_summary_table_and_json(trained_json):
    result, out = trained_json
    assert result.returncode == 0, result.stderr
    for label in ("test RMSE", "test MAE", "epochs", "fit seconds"):
        assert label in result.stdout
    summary = json.loads(out.read_text())
    assert set(summary) >= {"test_rmse", "test_mae", "mean_test_rmse", "epochs", "fit_seconds", "config"}
    assert summary["config"]["model"] == "biased-mf" and summary["config"]["epochs"] == 5
    parts = data.split(data.load(summary["config"]["data"]), "ratio", seed=42)  # the baseline, worked in numpy
    mean = np.sqrt(np.mean((parts.test.rating.astype(np.float64) - parts.train.rating.astype(np.float64).mean()) ** 2))
    assert summary["mean_test_rmse"] == pytest.approx(mean, abs=1e-12)
    assert f"test RMSE   {summary['test_rmse']:.4f}  (the training mean: {mean:.4f})" in result.stdout
    assert summary["test_rmse"] < mean - 0.05, (summary["test_rmse"], mean)  # 5 epochs: 1.004 against 1.081
    assert summary["epochs"] <= 5 and 0 < summary["test_rmse"] < 1.5
    assert "Epoch 1/5" in result.stdout  # Keras progress is shown
    assert summary["devices"] and all(d.startswith(("CPU:", "GPU:")) for d in summary["devices"])
    assert summary["threads"] == {"intra_op": 1, "inter_op": 0}  # one thread per op (train.configure_threads)
    assert "threads     TensorFlow: 1 per op, one per core inter-op" in result.stdout
    assert "\noptions     bias_l2 0.01\n" in result.stdout  # the model's own options, beside the settings
    assert "cuInit" not in result.stderr and "oneDNN" not in result.stderr, result.stderr  # TF's start-up noise


def test_a_first_run_says_it_builds_the_kernels_and_does_not_time_the_build(trained_json):
    result, out = trained_json
    summary = json.loads(out.read_text())
    building = [line for line in result.stderr.splitlines() if "building tfrec's native kernels" in line]
    assert len(building) == 1, result.stderr[-2000:]
    assert list((out.parent / "ops").glob("*/tfrec_ops.so"))
    assert summary["kernel_build_seconds"] > summary["fit_seconds"] > 0  # a build in fit time would be longer


def test_tensorboard_logs_hold_every_epochs_training_and_validation_metrics(trained_json):
    """Read back with TensorBoard's own event reader."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, out = trained_json
    summary = json.loads(out.read_text())
    logged = {}
    for part, names in (("train", ("loss", "regularization_loss", "rmse", "mae")), ("validation", ("rmse", "mae"))):
        events = EventAccumulator(str(out.parent / "board" / part), size_guidance={"tensors": 0})
        events.Reload()
        for name in names:
            logged[part, name] = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(f"epoch_{name}")]
            assert len(logged[part, name]) == summary["epochs"], (part, name, logged[part, name])
    assert logged["train", "rmse"][-1] < logged["train", "rmse"][0]  # it learned, epoch by epoch
    assert min(logged["validation", "rmse"]) == pytest.approx(summary["validation"]["val_rmse"], rel=1e-6)


@pytest.mark.parametrize(
    "model, extra",
    [
        ("autorec-i", ["--hidden", "16", "--batch-size", "16"]),
        ("neumf", ["--layers", "16,8", "--dim", "8", "--intra-op-threads", "2"]),
    ],
)
def test_train_runs_the_neural_models(model, extra, tmp_path):
    """The command's plumbing for the neural models: their own options and the thread flags reach the run
    (two epochs learn little here: that the defaults learn is test_default_neural_models_on_ml100k's)."""
    out = tmp_path / "summary.json"
    spec = "synthetic:users=120,items=80,ratings=4000,sigma=0.5,seed=1"
    result = tfrec("train", "--model", model, "--data", spec, "--epochs", "2", "--quiet", "--json", str(out), *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["config"]["model"] == model and summary["epochs"] <= 2
    given = {"autorec-i": {"hidden": 16, "batch_size": 16}, "neumf": {"layers": [16, 8], "dim": 8}}[model]
    assert {k: summary["config"][k] for k in given} == given
    assert f"test RMSE   {summary['test_rmse']:.4f}  (the training mean: " in result.stdout
    shown = {"autorec-i": r"^options +hidden 16, ", "neumf": r"^options +layers 16,8, dropout 0$"}[model]
    assert re.search(shown, result.stdout, re.M), result.stdout  # an explicit run shows no implicit-only option
    settings = re.search(r"^settings +(.*)$", result.stdout, re.M).group(1)
    assert (", dim 8," in settings) == (model == "neumf"), settings  # AutoRec has no embedding dim to show
    # AutoRec's matrix products keep TF's pool of one thread per core; --intra-op-threads overrides the default
    assert summary["threads"]["intra_op"] == {"autorec-i": 0, "neumf": 2}[model]


def test_train_implicit_reports_ranking_metrics_beside_most_popular(tmp_path):
    out = tmp_path / "summary.json"
    spec = "synthetic:users=120,items=80,ratings=3000,seed=1"
    args = ["--model", "gmf", "--feedback", "implicit", "--data", spec, "--epochs", "2", "--dim", "8"]
    result = tfrec("train", *args, "--quiet", "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["config"]["split"] == "leave-last-out" and summary["test_rmse"] is None
    assert "val_ndcg@10" in summary["validation"]
    for name in ("hit_rate@10", "ndcg@10"):
        assert 0 <= summary["test_" + name] <= 1 and 0 <= summary["popular_" + name] <= 1
        line = re.search(rf"^test {name} +(\S+)  \(most popular: (\S+)\)$", result.stdout, re.M)
        assert line and line.groups() == (f"{summary['test_' + name]:.4f}", f"{summary['popular_' + name]:.4f}")


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
        (["train", "--model", "svd"], "argument --model: invalid choice: 'svd'"),
        (["train", "--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["train", "--lr", "-1"], "--lr must be positive, got -1.0"),
        (["train", "--seed", "-5"], "--seed must be from 0 to 2**32 - 1, got -5"),
        (["train", "--split", "ratio:1.5"], "--split 'ratio:1.5': the test fraction must be a number in (0, 1)"),
        (
            ["train", "--model", "ncf", "--negatives", "8", "--data", "synthetic:users=30,items=20,ratings=300"],
            "--negatives is for implicit feedback, and this run on synthetic:users=30,items=20,ratings=300 learns "
            "ratings (explicit feedback): leave negatives out, or give --feedback implicit",
        ),
        (["train", "--data", "ml-7m"], "unknown dataset 'ml-7m'"),
        (["train", "--split", "u9"], "unknown split 'u9'"),
        (["train", "--model", "mf", "--feedback", "implicit"], "feedback 'implicit' is for ncf, gmf, neumf, not mf"),
        (
            ["train", "--model", "ncf", "--layers", "64,x"],
            "layers must be comma-separated positive integers like 256,64",
        ),
        (["train", "--model", "ncf", "--dropout", "1.5"], "dropout must be in [0, 1), got 1.5"),
        (["train", "--model", "autorec-i", "--hidden", "0"], "hidden must be at least 1, got 0"),
        (["train", "--model", "autorec-u", "--encoder-activation", "soft"], "invalid choice: 'soft'"),
        (["data", "info", "/no/such/dir/ml-1m"], "no such file or directory '/no/such/dir/ml-1m'"),
        (["train", "--data", "no/ratings.csv"], "no/ratings.csv: no such file"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["bench", "--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
        (["bench", "--threads", "two"], "argument --threads: must be a positive integer, got 'two'"),
        (["bench", "--target", "-1"], "argument --target: must be a positive number, got -1"),
        (["bench", "--steps-per-execution", "0"], "argument --steps-per-execution: must be a positive integer"),
        (["bench", "--optimizer", "sgd"], "--optimizer sgd: the torch side runs adam, lazy-adam or adagrad"),
        (["bench", "--models", "mf", "--dim", "3"], "unrecognized arguments: --dim 3"),
        (["bench", "--models", "mf", "--mixed-precision", "bfloat16"], "mixed_precision is for the models with Dense"),
    ],
)
def test_user_mistakes_are_an_error_line_and_nonzero(args, message, capsys):
    """In-process (`cli.main`), so each mistake costs no interpreter start: the exit status and the message."""
    from tfrec import cli

    try:
        status = cli.main(args)
    except SystemExit as e:  # argparse's usage errors
        status = e.code
    err = capsys.readouterr().err
    assert status in (1, 2), (status, err)
    last = err.strip().splitlines()[-1]
    assert message in last and last.startswith("tfrec") and "error:" in last, err
    assert "Traceback" not in err


def test_a_config_file_s_mistake_names_the_file(tmp_path, monkeypatch, capsys):
    """A field of a --config file is named as the file names it, and a relative data path says where it came from."""
    from tfrec import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"model": "biased-mf", "learning_rate": -1}))
    (tmp_path / "moved.json").write_text(json.dumps({"model": "biased-mf", "data": "ratings.csv"}))
    (tmp_path / "typed.json").write_text(json.dumps({"model": "biased-mf", "epochs": "5", "refit": "no"}))
    (tmp_path / "named.json").write_text(json.dumps({"model": "biased-mf", "lr": 0.1}))
    for name, message in (
        ("bad.json", "--config bad.json: learning_rate must be positive, got -1"),
        ("typed.json", "--config typed.json: epochs must be a whole number, got '5'"),
        (
            "named.json",
            "--config named.json: unknown option 'lr' for biased-mf (its options: bias_l2; did you "
            "mean learning_rate?)",
        ),
        ("moved.json", "--config moved.json names data 'ratings.csv': ratings.csv: no such file (give --data)"),
    ):
        assert cli.main(["train", "--config", name]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"tfrec: error: {message}"]
    # a flag's value is named by the flag, even with a file
    assert cli.main(["train", "--config", "bad.json", "--lr", "0"]) == 1
    assert capsys.readouterr().err.strip() == "tfrec: error: --lr must be positive, got 0.0"


@pytest.mark.parametrize(
    "args", [["train", "--model", "svd"], ["train", "--epochs", "0"], ["train", "--data", "ml-7m"]]
)
def test_user_mistakes_are_one_line_from_a_fresh_process(args):
    """One mistake found by each stage (the parser, the config check, the data), in a real process: one line."""
    result = tfrec(*args)
    assert result.returncode in (1, 2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfrec") and "error:" in lines[0], result.stderr


@pytest.mark.parametrize("spec", ["no/ratings.csv", "ml-7m", "/no/such/dir", "synthetic:users=x"])
def test_data_mistakes_answer_before_tensorflow_is_imported(spec):
    """A wrong --data is known from its name: the answer takes no TensorFlow import and fits one short line."""
    result = python(f"""
        import sys
        from tfrec import cli
        status = cli.main(["train", "--data", {spec!r}])
        print(status, "tensorflow" in sys.modules)
    """)
    assert result.stdout.split() == ["1", "False"], result.stdout + result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and len(result.stderr) < 200, result.stderr


def test_missing_dataset_is_one_line(tmp_path):
    result = tfrec("data", "info", "ml-1m", env={"TFREC_DATA": str(tmp_path)})
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "ml-1m: not in the cache" in result.stderr


def test_data_info_counts(tmp_path):
    result = tfrec("data", "info", str(ml100k_dir(tmp_path / "ml-100k")))
    assert result.returncode == 0, result.stderr
    assert "users" in result.stdout and "ratings" in result.stdout and "density" in result.stdout
    result = tfrec("data", "info", str(tmp_path / "ml-100k"), "--json")
    summary = json.loads(result.stdout)
    assert (summary["users"], summary["items"], summary["ratings"]) == (3, 4, 7)
    assert summary["rating_histogram"] == {"1": 1, "2": 1, "3": 1, "4": 2, "5": 2}
    assert summary["density"] == pytest.approx(7 / 12)


def test_malformed_file_from_cli_names_file_and_line(tmp_path):
    (tmp_path / "u.data").write_text("1\t2\t3\t4\n1\t2\n")
    result = tfrec("data", "info", str(tmp_path))
    assert result.returncode == 1 and "u.data: line 2: expected 4 fields" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("first", ["tensorflow", "tfrec"])
def test_either_import_order_gives_keras_2(first):
    second = "tfrec" if first == "tensorflow" else "tensorflow"
    result = python(
        f"""
        import {first}, {second}
        import tensorflow as tf, tensorflow_recommenders as tfrs
        from tfrec.models import BiasedMatrixFactorization
        assert tf.keras.__name__.startswith("tf_keras"), tf.keras.__name__
        assert isinstance(BiasedMatrixFactorization(["a"], ["b"]), tfrs.Model)
        print("ok")
        """
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_keras_3_already_bound_is_a_clear_error():
    result = python(
        """
        import os
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
        import tensorflow as tf
        tf.keras.layers  # binds tf.keras to Keras 3
        import tfrec
        """
    )
    assert result.returncode != 0
    assert "tfrec needs Keras 2 (the tf-keras package), but tf.keras is already bound" in result.stderr


@pytest.mark.skipif(data.recbole_directory() is None, reason="recbole not installed (README install command adds it)")
def test_default_biased_mf_on_ml100k_reaches_091():
    """The headline number: `tfrec train --model biased-mf --data ml-100k` defaults, 80/20 seed 42: lazy
    Adam, L2 0.1 (what the data's ratings per user and item give) and the refit reach under 0.91."""
    from tfrec.config import TrainConfig
    from tfrec.train import run

    summary = run(TrainConfig(model="biased-mf", data="ml-100k"), verbose=0).report
    assert summary["split_fingerprint"] == data.split(data.load("ml-100k")).fingerprint
    assert (summary["config"]["l2"], summary["config"]["optimizer"]) == (0.1, "lazy-adam"), summary["config"]
    assert summary["refit_epochs"] == summary["best_epoch"]
    assert summary["test_rmse"] <= 0.91, summary["test_rmse"]


def test_default_biased_mf_travels_to_denser_data_because_its_l2_follows_the_data():
    """With no flags, biased MF on planted ratings (rank 8, noise sigma 0.5) as dense as ML-1M's (139
    ratings per user and item, ML-100K's 58) ends within 1.15 sigma (1.11 measured): its L2 follows the
    data (0.042 here). ML-100K's fixed 0.1, all else the same, ends near 1.20 sigma. (ML-1M's own shape,
    1M ratings, is benchmarks/defaults.py's: 1.11 sigma.)"""
    from tfrec.config import TrainConfig
    from tfrec.train import run

    spec = "synthetic:users=1000,items=600,ratings=150000,sigma=0.5,seed=1"
    followed, fixed = (
        run(TrainConfig(model="biased-mf", data=spec, **kw), verbose=0).report for kw in ({}, {"l2": 0.1})
    )
    assert (followed["config"]["l2"], followed["scaled"]["l2"]["ratings_per_id"]) == (0.042, 139.4), followed
    assert followed["test_rmse"] <= 1.15 * 0.5 < fixed["test_rmse"], (followed["test_rmse"], fixed["test_rmse"])


@pytest.mark.skipif(data.recbole_directory() is None, reason="recbole not installed (README install command adds it)")
@pytest.mark.parametrize("model, bound", [("ncf", 0.95), ("autorec-i", 0.90)])
def test_default_neural_models_on_ml100k(model, bound):
    """The defaults' numbers: `tfrec train --model M --data ml-100k` defaults, 80/20 seed 42."""
    from tfrec.config import TrainConfig
    from tfrec.train import run

    summary = run(TrainConfig(model=model, data="ml-100k"), verbose=0).report
    assert summary["test_rmse"] <= bound, summary["test_rmse"]


@pytest.mark.skipif(data.recbole_directory() is None, reason="recbole not installed (README install command adds it)")
def test_implicit_ncf_on_ml100k_beats_most_popular():
    """NCF protocol on ML-100K (leave-last-out, 99 sampled negatives); the MLP variant capped at
    5 epochs to keep the suite short (benchmarks/RESULTS.md has the full default runs)."""
    from tfrec.config import TrainConfig
    from tfrec.train import run

    summary = run(TrainConfig(model="ncf", feedback="implicit", data="ml-100k", epochs=5), verbose=0).report
    for name in ("hit_rate@10", "ndcg@10"):
        assert summary["test_" + name] > summary["popular_" + name] + 0.05, summary
