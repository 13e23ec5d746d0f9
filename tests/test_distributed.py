"""Placement: the default and mirrored strategies in one process, multi-worker training over local processes.

Apart from tests/test_cli_and_train.py so that pytest-xdist (one module per worker) runs them beside it.
"""

import json
import subprocess
import sys
import textwrap

from conftest import ENV
from conftest import run_tfrec as tfrec


def python(code):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=ENV, timeout=300
    )


def test_strategy_auto_on_cpu_and_mirrored_over_two_logical_devices():
    result = python(
        """
        import tfrec, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfrec import data
        from tfrec.config import TrainConfig
        from tfrec.train import build, strategy
        assert strategy("auto") is tf.distribute.get_strategy()  # no GPU here
        mirrored = strategy("mirrored")
        assert mirrored.num_replicas_in_sync == 2, mirrored.extended.worker_devices
        from tfrec.train import training_dataset
        g = data.generate(users=100, items=80, ratings=6000, sigma=0.3, seed=0)
        split = data.random_split(g.ratings, 0.2, seed=0)
        settings = {
            "biased-mf": (TrainConfig(model="biased-mf", dim=8, l2=0.01, batch_size=256, steps_per_execution=4), 25),
            "neumf": (TrainConfig(model="neumf", dim=8, layers="16,8", batch_size=256, learning_rate=0.005), 10),
            # No input dropout: its random draws differ per replica by design.
            "autorec-i": (
                TrainConfig(model="autorec-i", hidden=32, batch_size=16, learning_rate=0.01, input_dropout=0), 20
            ),
        }
        for model_name, (config, epochs) in settings.items():
            results = {}
            for name, s in (("single", strategy("default")), ("mirrored", mirrored)):
                tf.keras.utils.set_random_seed(0)
                model = build(model_name, split.train, config, s)
                # Both drop each epoch's partial batch (mirrored must), so both see the same batches.
                model.fit(training_dataset(config, split.train, model, drop_remainder=True), epochs=epochs, verbose=0)
                results[name] = model.evaluate(data.dataset(split.test, 4096), return_dict=True, verbose=0)["rmse"]
                if name == "mirrored":
                    assert type(model.trainable_variables[0]).__name__ == "MirroredVariable"
            print(model_name, results, flush=True)  # pytest -s shows them
            assert abs(results["single"] - results["mirrored"]) < 0.002, (model_name, results)
            assert results["single"] < 0.75, (model_name, results)  # learned: the global mean scores about 1.0
        # A field-aware FM with side features (a planted FM: the global mean scores 1.25; measured 0.1366 both).
        fm_split = data.split(data.generate_fm(users=100, items=50, seed=0).ratings, "ratio:0.25", seed=0)
        config = TrainConfig(model="ffm", features="user_id,movie_id,user_occupation_label,movie_genres", dim=4,
                             l2=0.0, learning_rate=0.05, batch_size=512, steps_per_execution=4)
        results = {}
        for name, s in (("single", strategy("default")), ("mirrored", mirrored)):
            tf.keras.utils.set_random_seed(0)
            model = build("ffm", fm_split.train, config, s)
            model.fit(training_dataset(config, fm_split.train, model, drop_remainder=True), epochs=10, verbose=0)
            results[name] = model.evaluate(data.dataset(fm_split.test, 4096), return_dict=True, verbose=0)["rmse"]
        print("ffm", results, flush=True)
        assert abs(results["single"] - results["mirrored"]) < 0.002 and results["single"] < 0.3, results
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_multi_worker_run_of_two_local_processes_matches_one_device(tmp_path):
    """`tfrec train --strategy multi-worker`: two processes on 127.0.0.1 (TF_CONFIG), collectives over gRPC.

    Each worker takes half of every global batch; the test RMSE must be within 0.01 of the one-device
    run's, and only the chief writes the JSON."""
    spec = "synthetic:users=150,items=100,ratings=8000,sigma=0.4,seed=3"
    # No refit: it would only repeat the fit under the same strategy.
    common = ["train", "--model", "biased-mf", "--data", spec, "--epochs", "40", "--batch-size", "1024", "--lr", "0.05",
              "--no-refit", "--quiet"]  # fmt: skip
    single = tfrec(*common, "--json", str(tmp_path / "single.json"))
    assert single.returncode == 0, single.stderr[-3000:]
    from tfrec.cluster import local_cluster

    cluster = local_cluster(workers=2, ps=0, chief=False)
    processes = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tfrec",
                    *common,
                    "--strategy",
                    "multi-worker",
                    "--json",
                    str(tmp_path / f"worker{index}.json"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**ENV, "TF_CONFIG": config},
            )  # fmt: skip
        )
    outputs = [p.communicate(timeout=300) for p in processes]
    for p, (out, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]
        assert "on each of 2 workers" in out, out
    one = json.loads((tmp_path / "single.json").read_text())
    chief = json.loads((tmp_path / "worker0.json").read_text())
    assert not (tmp_path / "worker1.json").exists()
    assert chief["workers"] == 2 and one["workers"] == 1
    print({k: (one[k], chief[k]) for k in ("test_rmse", "epochs", "best_epoch")})  # pytest -s shows them
    assert abs(one["test_rmse"] - chief["test_rmse"]) < 0.01, (one["test_rmse"], chief["test_rmse"])
    assert chief["test_rmse"] < 0.65  # learned: sigma 0.4 is the floor; the global mean scores about 0.9
    rmse_lines = [line for out, _ in outputs for line in out.splitlines() if line.startswith("test RMSE")]
    assert len(set(rmse_lines)) == 1, rmse_lines  # both workers hold the same model
