"""Shared fixtures: MovieLens files written by the tests themselves, no downloads."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TFREC_OFFLINE"] = "1"  # a test never reaches for the network unless it serves it itself

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

#: Test files by how long they take (seconds on two cores, the longest first). `pytest -n 2 --dist
#: loadfile --no-loadscope-reorder` hands files to the two workers in collection order, so starting with
#: the longest lets the short ones fill the gaps and both workers end together; xdist's own order
#: (most tests first) left the two-process distributed test running alone at the end.
LONGEST_FIRST = (
    "test_docs.py", "test_export.py", "test_cli_and_train.py", "test_parity.py", "test_speed.py",
    "test_distributed.py", "test_parameter_server.py", "test_convert.py", "test_tune.py", "test_reliability.py",
    "test_models.py",
    "test_files.py",
)  # fmt: skip


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order stays


#: The environment of every subprocess a test starts: TensorFlow quiet, no network.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFREC_OFFLINE": "1"}


def run_tfrec(*args, env=None, timeout=300):
    """``python -m tfrec ARGS`` in a fresh process; the completed process, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "tfrec", *args], capture_output=True, text=True, env={**ENV, **(env or {})},
        timeout=timeout,
    )  # fmt: skip


# Prepended to a `python -c` script: from then on `import tfrec` (or parity) fails, so only TensorFlow
# can read what the script loads (how the tests show a SavedModel needs no tfrec).
BLOCK_TFREC = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tfrec", "parity"):
            raise ImportError("tfrec is blocked in this process")

sys.meta_path.insert(0, Block())
"""

# (user, item, rating, timestamp): 3 users x 4 items, user 3 has a single rating.
RATINGS = [
    (1, 10, 5, 100), (1, 20, 3, 200), (1, 30, 4, 300),
    (2, 10, 4, 150), (2, 40, 1, 250), (2, 20, 2, 350),
    (3, 30, 5, 400),
]  # fmt: skip


def write(path: Path, text: str, encoding="utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def ml100k_dir(root: Path, ratings=RATINGS) -> Path:
    write(root / "u.data", "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings))
    flags = ["0"] * 19
    genre = lambda *on: "|".join("1" if k in on else "0" for k in range(19))  # noqa: E731
    del flags
    write(
        root / "u.item",
        f"10|Toy Story (1995)|01-Jan-1995||http://x|{genre(3, 4, 5)}\n"
        f"20|GoldenEye (1995)|01-Jan-1995||http://x|{genre(1, 2, 16)}\n"
        f"30|Cafe Ol\xe9 (1996)|01-Jan-1996||http://x|{genre(8)}\n"
        f"40|Unknown (1996)|||http://x|{genre(0)}\n",
        encoding="latin-1",
    )
    write(
        root / "u.user",
        "1|24|M|technician|85711\n2|53|F|other|94043\n3|17|M|none|32067\n",
    )
    return root


def ml1m_dir(root: Path) -> Path:
    write(root / "ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in RATINGS))
    write(
        root / "movies.dat",
        "10::Toy Story (1995)::Animation|Children's|Comedy\n20::GoldenEye (1995)::Action\n"
        "30::Heat (1995)::Crime|Thriller\n40::Sabrina (1995)::Comedy|Romance\n",
    )
    write(root / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::4::55117\n")
    return root


def ml20m_dir(root: Path) -> Path:
    write(
        root / "ratings.csv",
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r}.5,{t}\n" for u, i, r, t in RATINGS),
    )
    write(
        root / "movies.csv",
        'movieId,title,genres\n10,"American President, The (1995)",Comedy|Drama|Romance\n'
        "20,GoldenEye (1995),Action|Adventure|Thriller\n30,Heat (1995),IMAX\n"
        "40,Unknown,(no genres listed)\n",
    )
    return root


def recbole_dir(root: Path) -> Path:
    write(
        root / "tiny.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS),
    )
    write(
        root / "tiny.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Children's Comedy\n20\tGoldenEye\t1995\tAction\n"
        "30\tHeat\t1995\tCrime\n40\tSabrina\t\tunknown\n",
    )
    write(
        root / "tiny.user",
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        "1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\t94043\n3\t17\tM\tnone\t32067\n",
    )
    return root


@pytest.fixture
def ml100k(tmp_path):
    return ml100k_dir(tmp_path / "ml-100k")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory that tfrec uses for this test."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("TFREC_DATA", str(directory))
    return directory
