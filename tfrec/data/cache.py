"""GroupLens downloads into a cache directory, verified by sha256, written atomically.

The cache is ``$TFREC_DATA`` or ``~/.cache/tfrec``; each dataset lives in a
sub-directory named after it (``ml-100k/u.data`` ...). The checksums are the
ones TensorFlow Datasets publishes in ``url_checksums/movielens.txt``, read
from the installed package. A download is written to a temporary file and
extracted into a temporary directory inside the cache; only a verified,
complete extraction is renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

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
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.") as tmp:
        zip_path = Path(tmp) / "archive.zip"
        _fetch(archive, zip_path, timeout)
        extracted = Path(tmp) / "extracted"
        _extract(zip_path, extracted)
        try:
            os.rename(_single_root(extracted), target)
        except OSError:
            if not target.is_dir():  # not another process winning the race
                raise
    return target


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
