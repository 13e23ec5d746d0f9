"""tfrec.ops: the native row-update kernels, built on first use, and TensorFlow's kernels as their fallback."""

import shutil

import numpy as np
import pytest

import tfrec  # noqa: F401  (selects Keras 2 before tensorflow below)
import tensorflow as tf
from tfrec import ops
from tfrec.optimizers import Adam, LazyAdam, TorchAdagrad

HAS_COMPILER = shutil.which("c++") is not None
OPTIMIZERS = {
    "adagrad": (TorchAdagrad, "TfrecSparseApplyAdagrad"),
    "lazy-adam": (LazyAdam, "TfrecSparseApplyLazyAdam"),
    "adam": (Adam, "TfrecSparseGradApplyAdam"),
}


@pytest.fixture
def fresh_ops(monkeypatch):
    """tfrec.ops.native() forgets what it loaded before and after the test (its result is cached per process)."""
    ops.native.cache_clear()
    yield monkeypatch
    ops.native.cache_clear()


def _train(name, table, dtype=tf.float32):
    """Twenty traced steps of a two-table lookup with duplicate ids; the weights and the step's op types."""
    optimizer_class, _ = OPTIMIZERS[name]
    factors, bias = tf.Variable(tf.cast(table, dtype)), tf.Variable(tf.zeros([len(table), 1], dtype))
    optimizer = optimizer_class(learning_rate=0.05)
    ids = np.random.default_rng(1).integers(0, len(table), (20, 256))

    @tf.function
    def step(rows):
        with tf.GradientTape() as tape:
            predicted = tf.reduce_sum(tf.gather(factors, rows), 1) + tf.gather(bias, rows)[:, 0]
            loss = tf.reduce_sum(tf.square(predicted - 1.0))
        optimizer.apply_gradients(zip(tape.gradient(loss, [factors, bias]), [factors, bias]))

    for rows in ids:
        step(rows)
    types = {op.type for op in step.get_concrete_function(ids[0]).graph.get_operations()}
    return factors.numpy(), bias.numpy(), types


@pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler (c++) to build the native kernels with")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_native_kernels_take_the_same_steps_as_tensorflows(name, fresh_ops):
    table = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32)
    native = _train(name, table)
    fresh_ops.setenv("TFREC_NATIVE_OPS", "0")
    ops.native.cache_clear()
    fallback = _train(name, table)
    assert OPTIMIZERS[name][1] in native[2] and OPTIMIZERS[name][1] not in fallback[2]
    np.testing.assert_allclose(native[0], fallback[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(native[1], fallback[1], rtol=1e-6, atol=1e-7)
    assert np.abs(native[0] - table).max() > 0.01 and np.abs(native[1]).max() > 0.01  # both tables moved


@pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler (c++) to build the native kernels with")
def test_native_kernel_refuses_a_row_outside_the_table_and_changes_nothing(fresh_ops):
    kernels = ops.native()
    var, accum = tf.Variable(tf.ones([4, 2])), tf.Variable(tf.ones([4, 2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1\] = 9 is not in \[0, 4\)"):
        kernels.tfrec_sparse_apply_adagrad(var.handle, accum.handle, 0.1, 1e-10, tf.ones([2, 2]), tf.constant([0, 9]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"grad must be \[2, \.\.\.\] like var"):
        kernels.tfrec_sparse_apply_adagrad(var.handle, accum.handle, 0.1, 1e-10, tf.ones([3, 2]), tf.constant([0, 1]))
    np.testing.assert_array_equal(var.numpy(), np.ones([4, 2]))  # row 0, which was in range, did not move
    np.testing.assert_array_equal(accum.numpy(), np.ones([4, 2]))


def test_without_a_compiler_training_warns_once_and_takes_tensorflows_kernels(fresh_ops, tmp_path):
    fresh_ops.setenv("CXX", "false")  # a "compiler" that fails at once
    fresh_ops.setenv("TFREC_OPS_CACHE", str(tmp_path))
    table = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match=r"native row-update kernels are not available \(false exited with 1"):
        factors, _, types = _train("adagrad", table)
    assert "ResourceSparseApplyAdagradV2" in types and "TfrecSparseApplyAdagrad" not in types
    assert np.abs(factors - table).max() > 0.01
    assert not list(tmp_path.rglob("*.so"))  # the failed build left no library behind


def test_tables_the_native_kernels_do_not_cover_take_tensorflows(fresh_ops):
    """float64 tables (and tables on a GPU, not testable here) keep TF's kernels, whatever is built."""
    table = np.random.default_rng(0).normal(size=(50, 4))
    _, _, types = _train("adagrad", table, tf.float64)
    assert "ResourceSparseApplyAdagradV2" in types and "TfrecSparseApplyAdagrad" not in types
