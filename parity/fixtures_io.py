"""Reading and writing fixtures: one JSON and one ``.npz`` per case, byte-for-byte repeatable.

``numpy.savez`` stamps each member with the current time, so the same arrays
give a different file every run; :func:`write_npz` fixes the stamp. Arrays are
read with ``allow_pickle=False``: nothing executes from a fixture.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def paths(name: str, root: Path = FIXTURES) -> tuple[Path, Path]:
    return root / f"{name}.json", root / f"{name}.npz"


def write_npz(path: Path, arrays: dict) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue())


def write(name: str, record: dict, arrays: dict | None = None, root: Path = FIXTURES) -> None:
    """Writes ``NAME.json`` and, when there are arrays, ``NAME.npz``."""
    root.mkdir(parents=True, exist_ok=True)
    json_path, npz_path = paths(name, root)
    json_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    if arrays:
        write_npz(npz_path, arrays)


def read(name: str, root: Path = FIXTURES) -> tuple[dict, dict]:
    json_path, npz_path = paths(name, root)
    if not json_path.exists():
        raise FileNotFoundError(f"{json_path}: no fixture; run `python -m parity generate {name}` (needs torch)")
    record = json.loads(json_path.read_text())
    if not npz_path.exists():
        return record, {}
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return record, arrays
