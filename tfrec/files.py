"""Writing files so that a crash leaves the old file or the new one, never half of one (no TensorFlow)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tfrec.errors import TfrecError


def write_json_atomic(path: str | Path, obj) -> None:
    """Writes JSON to a temporary file beside ``path`` and renames it into place."""
    path = Path(path)
    try:
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(f.name, 0o666 & ~umask)  # as open() would make it, not the temporary file's 0600
        os.replace(f.name, path)
    except OSError as e:
        raise TfrecError(f"{path}: cannot write: {e.strerror or e}") from None
