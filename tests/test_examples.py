"""The examples run and learn (README.md's Python block is examples/quickstart.py: tests/test_docs.py)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tfrec import data

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_install_and_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    program = re.search(r"awk '([^']+)' README.md", ci).group(1)  # the extraction .ci/run uses
    out = subprocess.run(["awk", program, "README.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    out = out.stdout.strip()
    assert out.startswith("python -m pip install -e") and out.endswith("python -m pytest -q")


@pytest.mark.skipif(data.recbole_directory() is None, reason="recbole not installed (README install command adds it)")
def test_quickstart_runs_and_learns():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rmse = float(re.search(r"test RMSE (\d\.\d+)", result.stdout).group(1))
    assert rmse < 0.95, result.stdout


@pytest.mark.skipif(data.recbole_directory() is None, reason="recbole not installed (README install command adds it)")
def test_tfrs_basic_ranking_tutorial_runs_and_beats_the_mean():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tfrs_basic_ranking.py")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("Epoch ") == 3  # the tutorial's 3 epochs
    rmse = float(re.search(r"test RMSE (\d\.\d+)", result.stdout).group(1))
    baseline = float(re.search(r"training-mean baseline RMSE (\d\.\d+)", result.stdout).group(1))
    assert rmse < baseline - 0.01, result.stdout
