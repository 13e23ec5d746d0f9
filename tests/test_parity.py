"""The parity harness: every trajectory case passes, the checks can fail, fixtures are fresh."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfrec  # noqa: F401  (Keras 2 before TensorFlow)
from parity import check, fixtures_io
from parity.cases import ALL_CASES, CASES, METRIC_CASES
from tfrec import data

HAS_ML100K = data.recbole_directory() is not None
needs_ml100k = pytest.mark.skipif(not HAS_ML100K, reason="recbole not installed (README install command adds it)")

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.parametrize("name", list(CASES))
def test_trajectory_case_matches_the_reference(name):
    result = check.check(name)
    assert result["passed"], result
    assert result["steps"] >= 20


def test_the_adagrad_trap_is_caught_without_the_port_s_fix(monkeypatch):
    """Keras' own Adagrad (epsilon inside the square root) drifts by percent on NeuMF's tiny gradients."""
    import tensorflow as tf

    plain = lambda case: tf.keras.optimizers.Adagrad(case.learning_rate, 0.0, 1e-10)  # noqa: E731
    monkeypatch.setattr(check, "keras_optimizer", plain)
    result = check.check("neumf-adagrad")
    assert not result["passed"] and result["max_rel_loss_diff"] > 1e-3, result


def test_the_adam_epsilon_trap_is_caught(monkeypatch):
    """Keras' default Adam (epsilon 1e-7 before bias correction) is not PyTorch's Adam."""
    import tensorflow as tf

    monkeypatch.setattr(check, "keras_optimizer", lambda case: tf.keras.optimizers.Adam(case.learning_rate))
    result = check.check("mf-adam")
    assert not result["passed"], result


def test_a_port_that_drops_a_bias_term_fails(monkeypatch):
    from tfrec.models import BiasedMatrixFactorization

    def without_item_bias(self, features, training=False):
        users, items = self.lookup(features)
        dropped = 0.0 * self.item_bias(items)[:, 0]  # the table exists, the term is gone
        return self.global_mean + self.user_bias(users)[:, 0] + dropped + self.interaction(users, items)

    monkeypatch.setattr(BiasedMatrixFactorization, "score", without_item_bias)
    result = check.check("biased-mf-sgd")
    assert not result["passed"] and result["max_rel_loss_diff"] > 1e-3, result


def test_a_fixture_for_another_split_is_refused(monkeypatch):
    record, arrays = fixtures_io.read("mf-sgd")
    record = {**record, "split_fingerprint": "0" * 16}
    with pytest.raises(ValueError, match="split fingerprint"):
        check.trajectory(CASES["mf-sgd"], record, arrays)


SLOW_CASES = {"mf-per-sample-sgd"}  # 80K steps an epoch at one rating per step: minutes per seed
# The suite's time budget (~10 min on 2 cores) keeps one metric case per model family in the default run;
# these run with `pytest -m slow`, `tfrec parity` and `python -m parity report` (parity/report/REPORT.md).
SLOW_CASES |= {"mf-ml100k-u1", "biased-mf-ml100k-u1", "gmf-ml100k-ratio", "neumf-ml100k-ratio",
               "autorec-u-ml100k-ratio", "ffm-ml100k-ratio"}  # fmt: skip


@needs_ml100k
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in METRIC_CASES]
)
def test_metric_case_matches_the_reference(name):
    result = check.check(name)
    assert result["passed"], {k: result[k] for k in ("test_rmse", "test_mae")}
    assert len(result["runs"]) == len(METRIC_CASES[name].seeds) >= 3


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (the README install command adds the parity extra)")
@pytest.mark.parametrize(
    # The metric fixture trains the reference three times on ML-100K (about 20 s); the loop and models it runs
    # are the ones the trajectory fixtures prove fresh, so it runs with the slow marker.
    "name",
    ["mf-adagrad", "autorec-u-sgd", pytest.param("biased-mf-ml100k-ratio", marks=[needs_ml100k, pytest.mark.slow])],
)
def test_regenerated_fixture_matches_the_stored_one(name, tmp_path):
    """The stored fixture is what the current reference code generates: configs, fingerprints, batches and
    integer arrays exactly, float results to a relative 1e-6 (loss values) or 1e-5 (arrays).

    Not byte for byte: torch's float32 kernels differ in the last bits between CPUs (AVX2 and AVX-512
    builds round differently), so bytes repeat only on the machine that wrote them (they do here).
    """
    from parity.generate import generate

    generate(ALL_CASES[name], root=tmp_path)
    stale = f"{name} is stale: run python -m parity generate {name}"
    stored_record, stored_arrays = fixtures_io.read(name)
    fresh_record, fresh_arrays = fixtures_io.read(name, tmp_path)
    _assert_same_record(stored_record, fresh_record, stale)
    assert sorted(stored_arrays) == sorted(fresh_arrays), stale
    for key, stored in stored_arrays.items():
        fresh = fresh_arrays[key]
        assert stored.dtype == fresh.dtype and stored.shape == fresh.shape, f"{stale} ({key})"
        if stored.dtype.kind == "f":
            np.testing.assert_allclose(fresh, stored, rtol=1e-5, atol=1e-6, err_msg=f"{stale} ({key})")
        else:
            np.testing.assert_array_equal(fresh, stored, err_msg=f"{stale} ({key})")


def _assert_same_record(stored, fresh, stale, where="record"):
    if isinstance(stored, dict):
        assert isinstance(fresh, dict) and sorted(stored) == sorted(fresh), f"{stale} ({where})"
        for key in stored:
            _assert_same_record(stored[key], fresh[key], stale, f"{where}.{key}")
    elif isinstance(stored, list):
        assert isinstance(fresh, list) and len(stored) == len(fresh), f"{stale} ({where})"
        for k, (a, b) in enumerate(zip(stored, fresh)):
            _assert_same_record(a, b, stale, f"{where}[{k}]")
    elif isinstance(stored, float) and not isinstance(fresh, bool):
        assert fresh == pytest.approx(stored, rel=1e-6, abs=1e-9), f"{stale} ({where}: {fresh} != {stored})"
    else:
        assert fresh == stored, f"{stale} ({where}: {fresh!r} != {stored!r})"


def test_checking_works_without_torch():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import parity, parity.check
        result = parity.check.check("biased-mf-sgd")
        assert result["passed"], result
        print("ok")
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_fixtures_hold_configs_versions_and_losses():
    for name, case in ALL_CASES.items():
        record, arrays = fixtures_io.read(name)
        assert record["case"] == case.config()
        assert set(record["versions"]) == {"torch", "numpy", "python"}
        if case.tier == "metric":
            assert [r["seed"] for r in record["runs"]] == list(case.seeds)
            rmses = [r["test_rmse"] for r in record["runs"]]
            assert record["test_rmse"]["mean"] == pytest.approx(np.mean(rmses)) and 0.85 < np.mean(rmses) < 1.2
            assert all(len(r["epoch_losses"]) == case.epochs for r in record["runs"])
            continue
        assert len(record["step_losses"]) == len(arrays["batch_sizes"]) and len(record["epoch_losses"]) == case.epochs
        assert np.isfinite(record["step_losses"]).all() and record["epoch_losses"][-1] < record["epoch_losses"][0]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed (parity extra)")
def test_report_writes_a_table_and_learning_curves(tmp_path):
    from parity.report import main as report

    assert report(["mf-sgd", "gmf-sgd"], out=tmp_path) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "2 of 2 cases pass" in text and text.count("| pass |") == 2
    for model in ("mf", "gmf"):
        assert (tmp_path / f"curves-{model}.png").read_bytes().startswith(b"\x89PNG")
        assert f"(curves-{model}.png)" in text


def test_tfrec_parity_command():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "tfrec", "parity", *a], capture_output=True, text=True,  # noqa: E731
                                    env=env, timeout=300)  # fmt: skip
    ok = run("gmf-sgd")
    assert ok.returncode == 0 and ok.stdout.startswith("PASS  gmf-sgd"), ok.stdout + ok.stderr[-2000:]
    bad = run("nope")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        f"tfrec: error: unknown parity case(s) nope; known: {', '.join(ALL_CASES)}"
    ]
