"""tfrec reads in pieces: no module over 400 lines and no function whose code runs over 60.

A function is counted whole, signature and docstring included. Declarative tables (a ``Family``, a
registry's entries) are module-level assignments, not functions, and count only toward their file.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return function.end_lineno - function.lineno + 1


def offenders(root: Path) -> list[str]:
    """``path: N lines`` of every long module and ``path:line name: N lines`` of every long function."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(root.parent)
        if text.count("\n") > MAX_FILE_LINES:
            found.append(f"{where}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > MAX_FUNCTION_LINES:
                found.append(f"{where}:{node.lineno} {node.name}: {_code_lines(node)} lines")
    return found


def test_no_long_module_or_function_in_tfrec():
    found = offenders(ROOT / "tfrec")
    assert not found, "split these:\n" + "\n".join(found)


def test_the_check_finds_a_long_module_and_a_long_function(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    body = "".join(f"    x{k} = {k}\n" for k in range(MAX_FUNCTION_LINES + 1))
    (package / "long_function.py").write_text(f'def f():\n    """Doc."""\n{body}')
    (package / "long_module.py").write_text("x = 1\n" * (MAX_FILE_LINES + 1))
    (package / "fine.py").write_text("def g():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 2) + "    return x\n")
    found = offenders(package)
    assert found == [
        "pkg/long_function.py:1 f: 63 lines",
        f"pkg/long_module.py: {MAX_FILE_LINES + 1} lines",
    ], found
