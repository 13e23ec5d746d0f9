"""GroupLens downloads into a cache directory, verified by sha256, written atomically.

The cache is ``$TFREC_DATA`` or ``~/.cache/tfrec``; each dataset lives in a
sub-directory named after it (``ml-100k/u.data`` ...). The checksums are the
ones TensorFlow Datasets publishes in ``url_checksums/movielens.txt``, read
from the installed package. A download is written to a temporary file and
extracted into a temporary directory inside the cache; only a verified,
complete extraction is renamed into place, so a failure leaves nothing behind.
Processes that resolve the same dataset at once take turns on a lock file
(``.NAME.lock``, ``fcntl.flock``): the first downloads, the others find it
in place. Each extraction carries ``MANIFEST.sha256`` (every file's sha256),
which :func:`verify` checks.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

from tfrec.errors import DataError, DataNotFoundError

_CHECKSUMS = "tensorflow_datasets/url_checksums/movielens.txt"


class Archive(NamedTuple):
    url: str
    size: int
    sha256: str


def cache_dir() -> Path:
    """``$TFREC_DATA`` if set, else ``~/.cache/tfrec``."""
    return Path(os.environ.get("TFREC_DATA") or Path.home() / ".cache" / "tfrec")


def known_archives() -> dict[str, Archive]:
    """Dataset name (``ml-100k``...) -> URL, size and sha256, from TFDS's checksum file."""
    try:
        path = Path(importlib.metadata.distribution("tensorflow-datasets").locate_file(_CHECKSUMS))
        text = path.read_text()
    except (importlib.metadata.PackageNotFoundError, OSError):
        return {}
    archives = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0].endswith(".zip"):
            name = fields[0].rsplit("/", 1)[-1][: -len(".zip")]
            archives[name] = Archive(fields[0], int(fields[1]), fields[2])
    return archives


def download(name: str, archive: Archive | None = None, timeout: float = 30.0) -> Path:
    """Downloads, verifies and extracts a MovieLens archive into the cache.

    Args:
      name: Dataset name; the cache sub-directory it lands in.
      archive: URL and checksum; default: TFDS's entry for ``name``.
      timeout: Seconds to wait for the server.

    Returns:
      The dataset's directory in the cache.

    Raises:
      DataNotFoundError: no checksum is known for ``name``, or the download failed.
      DataError: the size or sha256 does not match, or the zip is unsafe or broken.
    """
    archive = archive or known_archives().get(name)
    if archive is None:
        raise DataNotFoundError(f"{name}: no verified download is known (TFDS lists none)")
    target = cache_dir() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if target.is_dir():  # another process finished it while this one waited
            return target
        for stale in target.parent.glob(f".{name}.*"):  # left by a process killed mid-download
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.") as tmp:
            zip_path = Path(tmp) / "archive.zip"
            _fetch(archive, zip_path, timeout)
            extracted = Path(tmp) / "extracted"
            _extract(zip_path, extracted)
            root = _single_root(extracted)
            _write_manifest(root)
            os.rename(root, target)
    return target


def verify(name: str) -> Path:
    """Checks a cached dataset against the manifest written when it was extracted.

    Raises:
      DataError: no manifest, or a file that is missing, extra or changed (named).
    """
    root = cache_dir() / name
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DataError(f"{root}: no {MANIFEST}; remove it and download again")
    expected = dict(line.split("  ", 1)[::-1] for line in manifest.read_text().splitlines() if line)
    actual = _digests(root)
    for path in sorted(set(expected) | set(actual)):
        if expected.get(path) != actual.get(path):
            state = "missing" if path not in actual else "not in the manifest" if path not in expected else "changed"
            raise DataError(f"{root / path}: {state} since the download was verified")
    return root


MANIFEST = "MANIFEST.sha256"


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _write_manifest(root: Path) -> None:
    lines = [f"{digest}  {path}" for path, digest in _digests(root).items()]
    (root / MANIFEST).write_text("\n".join(lines) + "\n")


def _fetch(archive: Archive, dest: Path, timeout: float) -> None:
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(archive.url, timeout=timeout) as response, open(dest, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DataNotFoundError(f"download of {archive.url} failed: {getattr(e, 'reason', e)}") from None
    if size != archive.size or digest.hexdigest() != archive.sha256:
        raise DataError(
            f"download of {archive.url} is corrupt: got {size} bytes with sha256 "
            f"{digest.hexdigest()}, expected {archive.size} bytes with sha256 {archive.sha256}"
        )


def _extract(zip_path: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as z:
            for member in z.namelist():
                if member.startswith(("/", "\\")) or ".." in Path(member).parts:
                    raise DataError(f"{zip_path}: unsafe path in archive: {member!r}")
            z.extractall(dest)
    except zipfile.BadZipFile as e:
        raise DataError(f"{zip_path}: not a valid zip archive: {e}") from None


def _single_root(extracted: Path) -> Path:
    """GroupLens zips hold one top folder (``ml-100k/``); use it, else the whole tree."""
    entries = list(extracted.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else extracted


def remove(name: str) -> None:
    """Deletes a dataset from the cache."""
    shutil.rmtree(cache_dir() / name, ignore_errors=True)
