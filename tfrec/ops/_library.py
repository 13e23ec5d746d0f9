"""Builds and loads tfrec's native kernels (``rows.cc``, ``products.cc``); see :mod:`tfrec.ops`."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from tfrec import _internals
from tfrec._keras import tf

SOURCES = tuple(Path(__file__).with_name(name) for name in ("rows.cc", "products.cc"))
HEADERS = (Path(__file__).with_name("groups.h"),)  # included by the sources: part of the cache key
LIBRARY = "tfrec_ops.so"
# -ffp-contract=off: no fused multiply-adds, so the kernels round as TensorFlow's do. -fno-math-errno: sqrt
# vectorizes (errno is all it changes, and the kernels take roots of non-negative moments only).
_FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC", "-w"]


def cache_dir() -> Path:
    """``$TFREC_OPS_CACHE`` if set, else ``~/.cache/tfrec/ops``."""
    return Path(os.environ.get("TFREC_OPS_CACHE") or Path.home() / ".cache" / "tfrec" / "ops")


def enabled() -> bool:
    """False when ``TFREC_NATIVE_OPS`` is ``0`` (or ``false``, ``no``, ``off``)."""
    return os.environ.get("TFREC_NATIVE_OPS", "1").strip().lower() not in ("0", "false", "no", "off")


def _command(output: Path) -> list[str]:
    compiler = shlex.split(os.environ.get("CXX") or "c++")
    return [*compiler, *_FLAGS, *map(str, SOURCES), "-o", str(output), *tf.sysconfig.get_compile_flags(),
            *tf.sysconfig.get_link_flags()]  # fmt: skip


def _key() -> str:
    """The cache key: the sources, TensorFlow's version and build, the platform and the compile flags.

    Paths (the sources', TensorFlow's headers and library in one environment) are left out, so
    virtual environments with the same TensorFlow share one build: the library links to
    ``libtensorflow_framework.so.2`` by name, which the process has loaded before it loads the kernels.
    """
    texts = [source.read_text() for source in (*SOURCES, *HEADERS)]
    tf_flags = [*tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    flags = [arg[:2] if arg.startswith(("-I", "-L")) else arg for arg in tf_flags]
    compiler = [os.path.basename(arg) for arg in shlex.split(os.environ.get("CXX") or "c++")]
    version = [tf.__version__, tf.__git_version__, sys.platform, sys.implementation.cache_tag]
    return hashlib.sha256("\0".join([*texts, *version, *compiler, *_FLAGS, *flags]).encode()).hexdigest()[:16]


def library_path() -> Path:
    """Where the kernels of this TensorFlow and these sources are (or will be) in the cache."""
    return cache_dir() / _key() / LIBRARY


def build(announce: bool = True) -> Path:
    """Compiles ``rows.cc`` and ``products.cc`` into the cache (once per key) and returns the library's path.

    Args:
      announce: Print one line on stderr when a build starts (it takes tens of seconds).

    Raises:
      RuntimeError: the compiler is missing or failed; the message has its last lines of output.
    """
    command = _command(Path(LIBRARY))
    target = library_path()
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if target.is_file():  # another process built it while this one waited
            return target
        if announce:
            print(
                f"tfrec: building tfrec's native kernels into {target.parent}, once per TensorFlow install "
                "(a compile of its own, which takes a while; `tfrec build-kernels` does it ahead)",
                file=sys.stderr,
                flush=True,
            )
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build.") as tmp:
            output = Path(tmp) / LIBRARY
            try:
                done = subprocess.run(_command(output), capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise RuntimeError(f"{command[0]}: {e}") from None
            if done.returncode != 0 or not output.is_file():
                tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
                raise RuntimeError(f"{command[0]} exited with {done.returncode}: {tail}")
            os.replace(output, target)
    return target


@functools.cache
def native():
    """The loaded kernels (a module with one function per op of ``rows.cc``), or None.

    Builds them on the first call; a failed build or load warns once and returns None.
    """
    if not enabled():
        return None
    try:
        return tf.load_op_library(str(build()))
    except (RuntimeError, OSError, tf.errors.NotFoundError) as e:
        warnings.warn(
            f"tfrec: the native kernels are not available ({e}); using TensorFlow's kernels and dense "
            "products, which give the same results more slowly. Set TFREC_NATIVE_OPS=0 to skip the build.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


in_xla = _internals.in_xla  # whether the graph being traced is compiled by XLA


def _native_for(allow, *variables):
    """The kernels if allowed, outside XLA, and every variable is a float32 table on a CPU, else None.

    XLA cannot compile a custom op: a step traced inside ``jit_compile`` (a model compiled with
    ``jit_compile=True``, or the optimizer's own XLA function on a GPU) takes TensorFlow's kernels,
    and so does a variable on a ``ps`` task of ``ParameterServerStrategy`` (``tfrec.cluster``).
    """
    if not allow or in_xla():
        return None
    for variable in variables:
        device = tf.DeviceSpec.from_string(variable.device or "")
        # A parameter server's variable takes TensorFlow's kernels: the op runs where the variable lives,
        # and a ps process need not have loaded tfrec's library.
        if variable.dtype != tf.float32 or device.device_type not in (None, "CPU") or device.job == "ps":
            return None
    return native()
