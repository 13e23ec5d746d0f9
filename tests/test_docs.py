"""Every runnable block of README.md and docs/ runs as typed, so the documentation cannot drift from the code.

A fenced block right after a ``<!-- runnable -->`` line runs: a page's ``bash`` blocks in order in one
shell (``set -e``), its ``python`` blocks with ``python -c``, all in one empty working directory per page
after the page's setup below has written the files the page's commands name (a user's ratings file, a
PyTorch state dict). ``<!-- runnable: PATH -->`` marks a block that is the code of the file PATH
(below its docstring), which another test runs, or a runnable block of the page PATH, which runs there;
here the block must be in that file. Blocks without a marker are output or sketches.
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ENV

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- runnable(?:: (?P<file>\S+))? -->\n```(?P<lang>\w+)\n(?P<body>.*?)^```$", re.M | re.S)


def blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """``(language, body, file)`` of each runnable block of ``page``, in order."""
    return [(m["lang"], m["body"], m["file"]) for m in MARKER.finditer(page.read_text())]


def _purchases(cwd: Path) -> None:
    """docs/data.md's shop file: planted user and item effects, ids that are not MovieLens ids."""
    rng = np.random.default_rng(0)
    buyers, skus = rng.integers(0, 150, 6000), rng.integers(0, 80, 6000)
    user_effect, item_effect = rng.normal(0, 0.8, 150), rng.normal(0, 0.8, 80)
    stars = np.clip(np.rint(3.5 + user_effect[buyers] + item_effect[skus] + rng.normal(0, 0.5, 6000)), 1, 5)
    lines = ["buyer,sku,stars"] + [f"B{b:04d},SKU-{s},{int(r)}" for b, s, r in zip(buyers, skus, stars)]
    lines.append("B0042,SKU-77,5")
    (cwd / "purchases.csv").write_text("\n".join(lines) + "\n")


def _pytorch_mf(cwd: Path) -> None:
    """What a PyTorch training script leaves: a biased MF's state_dict (tutorial names) and its id maps."""
    torch = pytest.importorskip("torch", reason="the migration page saves a PyTorch model (the parity extra)")
    rng = np.random.default_rng(1)
    users, items = [str(u) for u in range(1, 944)], [str(i) for i in range(1, 1683)]
    state = {
        "user_factors.weight": rng.normal(0, 0.1, (len(users), 16)),
        "item_factors.weight": rng.normal(0, 0.1, (len(items), 16)),
        "user_biases.weight": rng.normal(0, 0.2, (len(users), 1)),
        "item_biases.weight": rng.normal(0, 0.2, (len(items), 1)),
        "global_bias": np.array([3.5]),
    }
    torch.save({k: torch.tensor(v, dtype=torch.float32) for k, v in state.items()}, cwd / "mf.pt")
    (cwd / "users.txt").write_text("\n".join(users) + "\n")
    (cwd / "items.txt").write_text("\n".join(items) + "\n")


SETUP = {"data.md": _purchases, "export.md": _pytorch_mf}


def test_every_page_has_a_runnable_example_first():
    """Each docs page opens with something to run; README's blocks include the install command."""
    for page in PAGES[1:]:
        text = page.read_text()
        first = text.find("```")
        assert first > 0 and "<!-- runnable" in text[:first], f"{page.name}: its first code block is not runnable"
    assert len(PAGES) >= 9, [p.name for p in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_runnable_blocks_run_as_typed(page, tmp_path):
    found = blocks(page)
    if not found:
        pytest.skip(f"{page.name} has no runnable block")
    if page.name in SETUP:
        SETUP[page.name](tmp_path)
    for lang, body, file in found:
        if file:
            if file.endswith(".md"):  # a block that page runs
                ran = [b for _, b, f in blocks(ROOT / file) if f is None]
                assert body in ran, f"{page.name}: the block is not a runnable block of {file}"
            else:
                text = (ROOT / file).read_text()
                assert body.strip() in text and len(body.strip()) > 200, f"{page.name}: the block is not {file}'s code"
            continue
        if lang == "bash":
            command = ["bash", "-e", "-o", "pipefail", "-c", body]
        elif lang == "python":
            command = [sys.executable, "-c", body]
        else:
            raise AssertionError(f"{page.name}: a runnable block in {lang!r}: only bash and python run")
        env = {**ENV, "PATH": f"{Path(sys.executable).parent}:{ENV.get('PATH', '')}"}
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        output = f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
        assert result.returncode == 0, f"{page.name}:\n{body}\n{output}"
