"""Reliability: a SIGKILLed training resumes to the uninterrupted result; deterministic runs repeat bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tfrec import export

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFREC_OFFLINE": "1"}
# 1350 steps an epoch at batch 32 (about 0.8 s here): long enough to land a kill inside an epoch.
DATA = "synthetic:users=300,items=200,ratings=60000,sigma=0.5,seed=2"


def _train_command(tmp_path, name, *extra):
    return [
        sys.executable, "-m", "tfrec", "train", "--model", "biased-mf", "--data", DATA, "--batch-size", "32",
        "--epochs", "6", "--patience", "2", "--deterministic", "--quiet", "--json", str(tmp_path / f"{name}.json"),
        "--save", str(tmp_path / f"{name}.run"), *extra,
    ]  # fmt: skip


def _weights(path):
    return export.load_keras(path / "model.keras").get_weights()


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path):
    # The uninterrupted run goes alongside (deterministic: sharing the cores changes nothing but time).
    whole = subprocess.Popen(_train_command(tmp_path, "whole"), env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    checkpoints = tmp_path / "checkpoints"
    command = _train_command(tmp_path, "resumed", "--checkpoint-dir", str(checkpoints))
    first = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state = checkpoints / "state.json"
    deadline = time.monotonic() + 240
    seen = 0
    while time.monotonic() < deadline and first.poll() is None:
        seen = json.loads(state.read_text())["epochs"] if state.exists() else 0
        if seen >= 2:
            break
        time.sleep(0.02)
    assert first.poll() is None, "the run ended before it could be killed: " + first.stderr.read()[-2000:]
    time.sleep(0.3)  # into the next epoch
    first.send_signal(signal.SIGKILL)
    first.wait()
    saved = json.loads(state.read_text())
    # Killed 0.3 s after an epoch end and before the next one: inside an epoch.
    assert first.returncode == -signal.SIGKILL and saved["epochs"] == seen
    assert not (checkpoints / "finished.json").exists() and not (tmp_path / "resumed.json").exists()
    assert whole.wait() == 0, whole.stderr.read()[-2000:]

    again = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert again.returncode == 0, again.stderr[-2000:]
    expected, got = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("whole", "resumed"))
    for key in ("test_rmse", "test_mae", "epochs", "best_epoch", "validation"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    for a, b in zip(_weights(tmp_path / "whole.run"), _weights(tmp_path / "resumed.run")):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)

    # Started once more, a finished run says so and trains nothing.
    done = subprocess.run(command[:-4] + command[-2:], capture_output=True, text=True, env=ENV)  # without --save
    assert done.returncode == 0 and "already finished" in done.stderr and "test_rmse" in done.stderr


def test_resuming_with_other_settings_is_refused(tmp_path):
    checkpoints = tmp_path / "c"
    checkpoints.mkdir()
    (checkpoints / "state.json").write_text(json.dumps({"phase": "fit", "epochs": 1, "config": {"model": "mf"}}))
    done = subprocess.run(
        [sys.executable, "-m", "tfrec", "train", "--model", "biased-mf", "--data", DATA, "--checkpoint-dir",
         str(checkpoints)], capture_output=True, text=True, env=ENV,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "holds a run with other settings" in done.stderr and "model" in done.stderr


def test_the_same_deterministic_command_twice_gives_bit_identical_weights(tmp_path):
    """NeuMF with tower dropout: gathers, scatters, matmuls and stateless dropout masks, all repeated exactly."""
    runs = {}
    for name in ("a", "b"):  # side by side: determinism must not depend on having the machine alone
        command = [
            sys.executable, "-m", "tfrec", "train", "--model", "neumf", "--data", "synthetic:users=120,items=80,"
            "ratings=6000,seed=4", "--epochs", "3", "--dropout", "0.2", "--deterministic", "--quiet",
            "--save", str(tmp_path / name), "--json", str(tmp_path / f"{name}.json"),
        ]  # fmt: skip
        runs[name] = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    outputs = []
    for name, process in runs.items():
        assert process.wait() == 0, process.stderr.read()[-2000:]
        outputs.append((_weights(tmp_path / name), json.loads((tmp_path / f"{name}.json").read_text())))
    (weights_a, summary_a), (weights_b, summary_b) = outputs
    assert len(weights_a) == len(weights_b) > 4
    for a, b in zip(weights_a, weights_b):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert summary_a["test_rmse"] == summary_b["test_rmse"] and summary_a["validation"] == summary_b["validation"]
