"""Every runnable block of README.md and docs/ runs as typed, so the documentation cannot drift from the code.

A fenced block right after a ``<!-- runnable -->`` line runs: each ``bash`` block in its own shell
(``set -e``), each ``python`` block with ``python -c``, in the page's order, in one empty working
directory per page with nothing written before them: a file the page's commands read (a user's
ratings file, a PyTorch state dict) is made by a block the reader sees. ``<!-- runnable: PATH -->``
marks a block that is the code of the file PATH (below its docstring), which another test runs, or a
runnable block of the page PATH, which runs there; here the block must be in that file.
Blocks without a marker are output or sketches.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- runnable(?:: (?P<file>\S+))? -->\n```(?P<lang>\w+)\n(?P<body>.*?)^```$", re.M | re.S)


def blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """``(language, body, file)`` of each runnable block of ``page``, in order."""
    return [(m["lang"], m["body"], m["file"]) for m in MARKER.finditer(page.read_text())]


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
    if any("import torch" in body for _, body, file in found if file is None):
        pytest.importorskip("torch", reason=f"{page.name} trains a PyTorch model (the parity extra installs torch)")
    assert not any(tmp_path.iterdir())  # the page starts from an empty directory
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
