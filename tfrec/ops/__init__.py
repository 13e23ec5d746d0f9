"""Native CPU kernels for tfrec's optimizers and AutoRec, built on first use, with TensorFlow's as the fallback.

Row updates (``rows.cc``). At ML-20M's 138K users a sparse optimizer step is
mostly cache misses: each of the batch's rows of the factor table and its slots
is read and written once, in the batch's random order. TensorFlow's
``ResourceSparseApplyAdagradV2`` (and a gather/scatter Adam) take them one miss
after another. ``rows.cc`` does the same arithmetic but prefetches a few rows
ahead and splits the rows between the CPU worker threads: about 4x faster on the
user table. Keras' Adam is one sweep per variable there: with a sparse gradient
(every row decays and moves) instead of a duplicate sum and eight whole-table
ops, with a dense one instead of eleven ops.

Observed-entry products (``products.cc``). AutoRec's loss reads only the
observed entries of its rating vectors (about 5% on MovieLens), so
:func:`observed_matmul` and :func:`sampled_matmul` compute its encoder, its
decoder at those entries and their gradients from the entries alone, where
dense products multiply zeros. TensorFlow's ``SparseTensorDenseMatMul`` runs
too slowly for that to pay (benchmarks/RESULTS.md); where these kernels are
missing AutoRec takes its dense products.

The kernels are compiled against the installed TensorFlow the first time a
process needs them (a C++17 compiler, ``$CXX`` or ``c++``, about 10 s) into
``$TFREC_OPS_CACHE`` or ``~/.cache/tfrec/ops``, under a key of the sources,
the TensorFlow version and the compile command, and loaded from there afterwards.
Processes building the same key take turns on a lock file; a build is renamed
into place only when complete. Where the build fails (no compiler, no
TensorFlow headers), tfrec warns once and uses TensorFlow's kernels: the same
results, slower. ``TFREC_NATIVE_OPS=0`` turns the native kernels off. They
exist for float32 on the CPU outside XLA; a variable on a GPU, of another
dtype, or under ``jit_compile`` takes TensorFlow's kernels.
"""

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


def build() -> Path:
    """Compiles ``rows.cc`` and ``products.cc`` into the cache (once per key) and returns the library's path.

    Raises:
      RuntimeError: the compiler is missing or failed; the message has its last lines of output.
    """
    command = _command(Path(LIBRARY))
    texts = [source.read_text() for source in (*SOURCES, *HEADERS)]
    key = hashlib.sha256("\0".join([*texts, tf.__version__, sys.platform, *command]).encode())
    target = cache_dir() / key.hexdigest()[:16] / LIBRARY
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if target.is_file():  # another process built it while this one waited
            return target
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


def _native_for(allow, *variables):
    """The kernels if allowed and every variable is a float32 table on a CPU, else None."""
    if not allow:
        return None
    for variable in variables:
        device = tf.DeviceSpec.from_string(variable.device or "")
        if variable.dtype != tf.float32 or device.device_type not in (None, "CPU"):
            return None
    return native()


def sparse_apply_adagrad(var, accum, lr, epsilon, grad: tf.IndexedSlices, allow_native: bool = True) -> None:
    """PyTorch's Adagrad on the rows of ``grad``: ``accum += g*g; var -= lr*g / (sqrt(accum) + epsilon)``.

    ``grad``'s indices must be unique (``apply_gradients`` sums duplicates first).
    ``allow_native=False`` takes TensorFlow's kernel (inside XLA, which has no native kernel).
    """
    ops = _native_for(allow_native, var, accum)
    if ops is None:
        tf.raw_ops.ResourceSparseApplyAdagradV2(
            var=var.handle, accum=accum.handle, lr=lr, epsilon=epsilon, grad=grad.values, indices=grad.indices
        )
    else:
        ops.tfrec_sparse_apply_adagrad(var.handle, accum.handle, lr, epsilon, grad.values, grad.indices)


def sparse_apply_lazy_adam(
    var, m, v, alpha, beta_1, beta_2, epsilon, grad: tf.IndexedSlices, allow_native: bool = True
) -> None:
    """Adam on the rows of ``grad`` only; ``alpha`` and ``epsilon`` already carry the bias correction.

    ``m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; var -= alpha*m / (sqrt(v) + epsilon)``, on the
    rows of ``grad``, whose indices must be unique. ``allow_native``: as in :func:`sparse_apply_adagrad`.
    """
    ops = _native_for(allow_native, var, m, v)
    if ops is not None:
        ops.tfrec_sparse_apply_lazy_adam(var.handle, m.handle, v.handle, alpha, beta_1, beta_2, epsilon,
                                         grad.values, grad.indices)  # fmt: skip
        return
    rows, g = grad.indices, grad.values
    m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * g
    v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(g)
    m.scatter_update(tf.IndexedSlices(m_rows, rows))
    v.scatter_update(tf.IndexedSlices(v_rows, rows))
    var.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + epsilon), rows))


def sparse_grad_apply_adam(var, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, grad) -> bool:
    """Keras' Adam step for a sparse gradient in one native sweep of the table; False if not available here.

    Every row decays (``m += -m*(1-b1)``, ``v += -v*(1-b2)``), the gradient's rows add
    ``g*(1-b1)`` and ``g*g*(1-b2)``, and every row moves by ``m*alpha / (sqrt(v) + epsilon)``:
    Keras' ``Adam.update_step`` in its own order of operations. ``grad``'s indices may repeat: a
    row's gradient is the sum of its rows in order, as Keras' duplicate sum adds them. On False
    the caller takes Keras' own ops (which need the duplicates summed first).
    """
    kernels = _native_for(True, var, m, v)
    if kernels is None:
        return False
    kernels.tfrec_sparse_grad_apply_adam(var.handle, m.handle, v.handle, alpha, one_minus_beta_1, one_minus_beta_2,
                                         epsilon, grad.values, grad.indices)  # fmt: skip
    return True


def product_kernels(*variables, allow: bool = True):
    """The kernels of :func:`observed_matmul` and :func:`sampled_matmul` for float32 ``variables`` on a CPU.

    None where they do not apply (``allow`` False, say under XLA; a variable on a GPU or not
    float32; the build failed or is turned off): the caller then takes its dense products.
    """
    return _native_for(allow, *variables)


def observed_matmul(kernels, rows, cols, values, dense, num_rows):
    """``S @ dense`` for the sparse ``[num_rows, len(dense)]`` matrix ``S[rows[j], cols[j]] = values[j]``.

    ``rows``, ``cols``: int64 ``[n]``; ``values``: float32 ``[n]``; ``dense``: float32 ``[m, k]``;
    the result is ``[num_rows, k]``. Each output row sums its entries in the order of ``j``.
    Differentiable in ``values`` and ``dense``. ``kernels``: from :func:`product_kernels`.
    """
    num_rows = tf.cast(num_rows, tf.int64)

    @tf.custom_gradient
    def product(values, dense):
        def grad(upstream):
            d_values = kernels.tfrec_sampled_dot(rows, cols, upstream, dense)
            d_dense = kernels.tfrec_scatter_product(cols, rows, values, upstream, tf.shape(dense, out_type=tf.int64)[0])
            return d_values, d_dense

        return kernels.tfrec_scatter_product(rows, cols, values, dense, num_rows), grad

    return product(values, dense)


def sampled_matmul(kernels, rows, cols, a, b):
    """``(a @ b)[rows[j], cols[j]]`` for every ``j``, without the rest of the product.

    ``a``: float32 ``[p, k]``; ``b``: float32 ``[k, q]`` (a Dense layer's kernel); ``rows``,
    ``cols``: int64 ``[n]``; the result is ``[n]``. Differentiable in ``a`` and ``b``; their
    gradients are :func:`observed_matmul` products, so no ``[p, q]`` matrix is made either way.
    """

    @tf.custom_gradient
    def product(a, b):
        columns = kernels.tfrec_transpose(b)  # [q, k]: b's columns as rows, for this product and the gradient's

        def grad(upstream):
            d_a = kernels.tfrec_scatter_product(rows, cols, upstream, columns, tf.shape(a, out_type=tf.int64)[0])
            q = tf.shape(b, out_type=tf.int64)[1]
            d_b = kernels.tfrec_transpose(kernels.tfrec_scatter_product(cols, rows, upstream, a, q))
            return d_a, d_b

        return kernels.tfrec_sampled_dot(rows, cols, a, columns), grad

    return product(a, b)


def apply_adam(var, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, grad) -> bool:
    """Keras' Adam step for a dense gradient in one native sweep; False if not available here.

    ``m += (g - m)*(1-b1); v += (g*g - v)*(1-b2); var -= m*alpha / (sqrt(v) + epsilon)``: Keras'
    ``Adam.update_step`` in its own order of operations. On False the caller takes Keras' own ops.
    """
    kernels = _native_for(True, var, m, v)
    if kernels is None:
        return False
    kernels.tfrec_apply_adam(var.handle, m.handle, v.handle, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, grad)
    return True
