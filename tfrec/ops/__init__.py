"""Native CPU kernels for tfrec's optimizers and AutoRec, built on first use, with TensorFlow's as the fallback.

Row updates (``rows.cc``). At ML-20M's 138K users a sparse optimizer step is
mostly cache misses: each of the batch's rows of the factor table and its slots
is read and written once, in the batch's random order. TensorFlow's
``ResourceSparseApplyAdagradV2`` (and a gather/scatter Adam) take them one miss
after another. ``rows.cc`` does the same arithmetic but prefetches a few rows
ahead and splits the rows between the CPU worker threads, so the misses overlap.
Keras' Adam is one sweep per variable there: with a sparse gradient
(every row decays and moves) instead of a duplicate sum and eight whole-table
ops, with a dense one instead of eleven ops.

Observed-entry products (``products.cc``). AutoRec's loss reads only the
observed entries of its rating vectors (about 5% on MovieLens), so
:func:`observed_matmul` and :func:`sampled_matmul` compute its encoder, its
decoder at those entries and their gradients from the entries alone, where
dense products multiply zeros. TensorFlow's ``SparseTensorDenseMatMul`` runs
too slowly for that to pay; where these kernels are
missing AutoRec takes its dense products.

The kernels are compiled against the installed TensorFlow the first time a
process needs them (a C++17 compiler, ``$CXX`` or ``c++``;
announced on stderr, as a compile takes a while; ``tfrec build-kernels`` does it ahead)
into ``$TFREC_OPS_CACHE`` or ``~/.cache/tfrec/ops``, under a key of the sources,
the TensorFlow version and build and the compile flags without paths (so virtual
environments with the same TensorFlow share a build), and loaded from there afterwards.
``tfrec.train.run`` builds them before it starts timing the fit.
Processes building the same key take turns on a lock file; a build is renamed
into place only when complete. Where the build fails (no compiler, no
TensorFlow headers), tfrec warns once and uses TensorFlow's kernels: the same
results, slower. ``TFREC_NATIVE_OPS=0`` turns the native kernels off. They
exist for float32 on the CPU outside XLA; a variable on a GPU, of another
dtype, or under ``jit_compile`` takes TensorFlow's kernels.
"""

from tfrec.ops._library import HEADERS, LIBRARY, SOURCES, build, cache_dir, enabled, in_xla, library_path, native
from tfrec.ops.products import observed_matmul, product_kernels, sampled_matmul
from tfrec.ops.rows import apply_adam, sparse_apply_adagrad, sparse_apply_lazy_adam, sparse_grad_apply_adam

__all__ = [
    "HEADERS",
    "LIBRARY",
    "SOURCES",
    "apply_adam",
    "build",
    "cache_dir",
    "enabled",
    "library_path",
    "in_xla",
    "native",
    "observed_matmul",
    "product_kernels",
    "sampled_matmul",
    "sparse_apply_adagrad",
    "sparse_apply_lazy_adam",
    "sparse_grad_apply_adam",
]
