"""Reliability: a SIGKILLed training resumes to the uninterrupted result; deterministic runs repeat bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ENV
from tfrec import export

# 2700 steps an epoch at batch 32 (about 0.35 s here): the kill lands a third of an epoch into one.
DATA = "synthetic:users=600,items=400,ratings=120000,sigma=0.5,seed=2"


def _train_command(tmp_path, name, *extra):
    return [
        sys.executable, "-m", "tfrec", "train", "--model", "biased-mf", "--data", DATA, "--batch-size", "32",
        "--epochs", "6", "--patience", "2", "--no-refit", "--deterministic", "--quiet",
        "--json", str(tmp_path / f"{name}.json"),
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
    seen, ended = 0, {}  # epochs saved -> when this loop first saw them
    while time.monotonic() < deadline and first.poll() is None:
        seen = json.loads(state.read_text())["epochs"] if state.exists() else 0
        ended.setdefault(seen, time.monotonic())
        if seen >= 2:
            break
        time.sleep(0.005)
    assert first.poll() is None, "the run ended before it could be killed: " + first.stderr.read()[-2000:]
    # A third of an epoch into the next one, whatever this machine's speed (the last epoch's length as seen).
    time.sleep((ended[seen] - ended[seen - 1]) / 3 if seen - 1 in ended else 0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    saved = json.loads(state.read_text())
    # Killed a third of an epoch after an epoch end and before the next one: inside an epoch.
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


# ---- the download cache -----------------------------------------------------------------------

RESOLVE = """
import sys
from tfrec.data.cache import Archive, download
url, size, sha = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(download("ml-100k", Archive(url, size, sha)))
"""


@pytest.fixture
def served(tmp_path):
    """A slow local HTTP server with an ML-100K-shaped zip (u.data, u.item, u.user); counts GETs."""
    import hashlib
    import http.server
    import threading
    import zipfile

    from conftest import ml100k_dir

    source = ml100k_dir(tmp_path / "src" / "ml-100k")
    site = tmp_path / "site"
    site.mkdir()
    with zipfile.ZipFile(site / "ml-100k.zip", "w") as z:
        for f in sorted(source.iterdir()):
            z.write(f, f"ml-100k/{f.name}")
    good = (site / "ml-100k.zip").read_bytes()
    gets = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(site), **kwargs)

        def do_GET(self):
            gets.append(self.path)
            time.sleep(0.3)  # a slow server: the two resolvers overlap
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", len(good), hashlib.sha256(good).hexdigest(), gets, source
    server.shutdown()


def test_two_processes_resolving_at_once_both_succeed_and_the_cache_verifies(served, tmp_path):
    from tfrec.data import cache, load_directory

    url, size, sha, gets, source = served
    env = {**ENV, "TFREC_DATA": str(tmp_path / "cache")}
    args = [sys.executable, "-c", RESOLVE, f"{url}/ml-100k.zip", str(size), sha]
    resolvers = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in resolvers]
    assert [p.returncode for p in resolvers] == [0, 0], [err[-1500:] for _, err in outputs]
    assert len(gets) == 1  # the lock made the second process wait for the first one's download
    os.environ["TFREC_DATA"], saved = str(tmp_path / "cache"), os.environ.get("TFREC_DATA")
    try:
        root = cache.verify("ml-100k")
        assert {out.strip() for out, _ in outputs} == {str(root)}
        assert (root / "u.data").read_bytes() == (source / "u.data").read_bytes()
        assert len(load_directory(root, "ml-100k")) == 7
        assert sorted(p.name for p in root.parent.iterdir()) == [".ml-100k.lock", "ml-100k"]  # nothing left over
        (root / "u.data").write_text("1\t10\t5\t100\n")
        with pytest.raises(Exception, match="u.data: changed since the download was verified"):
            cache.verify("ml-100k")
    finally:
        os.environ.pop("TFREC_DATA") if saved is None else os.environ.__setitem__("TFREC_DATA", saved)


def test_nothing_executes_from_data_no_pickle_anywhere():
    """Fixtures are JSON and .npz read with allow_pickle=False; no module imports pickle or loads with it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sources = [p for d in ("tfrec", "parity", "benchmarks", "examples") for p in (root / d).rglob("*.py")]
    assert len(sources) > 30
    offenders = []
    for path in sources:
        text = path.read_text()
        if re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib|shelve)\b", text, re.M):
            offenders.append(f"{path}: imports a pickle module")
        if "allow_pickle=True" in text or re.search(r"\.load\([^)]*\bpickle", text):
            offenders.append(f"{path}: loads with pickle")
        for call in re.finditer(r"np\.load\(([^)]*)\)", text):
            if "allow_pickle=False" not in call.group(1):
                offenders.append(f"{path}: np.load without allow_pickle=False: {call.group(0)}")
    assert not offenders, offenders
    assert {p.suffix for p in (root / "parity" / "fixtures").iterdir()} == {".json", ".npz"}
