"""tfrec.ops: the native kernels, built on first use, and TensorFlow's kernels or dense products as their fallback."""

import shutil

import numpy as np
import pytest

import tfrec  # noqa: F401  (selects Keras 2 before tensorflow below)
import tensorflow as tf
from tfrec import data, ops
from tfrec.models import AutoRec
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
@pytest.mark.parametrize("adaptive_epsilon", [False, True])
def test_adam_takes_keras_dense_steps_in_one_native_op(adaptive_epsilon, fresh_ops):
    rng = np.random.default_rng(2)
    start = [rng.normal(size=shape).astype(np.float32) for shape in ([30, 20], [20])]
    inputs = rng.normal(size=(20, 64, 30)).astype(np.float32)

    def train(optimizer):
        kernel, bias = (tf.Variable(x) for x in start)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.tanh(x @ kernel + bias) - 0.5))
            optimizer.apply_gradients(zip(tape.gradient(loss, [kernel, bias]), [kernel, bias]))

        for x in inputs:
            step(x)
        return (
            kernel.numpy(),
            bias.numpy(),
            {op.type for op in step.get_concrete_function(inputs[0]).graph.get_operations()},
        )

    native = train(Adam(0.01, epsilon=1e-3, adaptive_epsilon=adaptive_epsilon))
    keras = train(tf.keras.optimizers.Adam(0.01, epsilon=1e-3, adaptive_epsilon=adaptive_epsilon))
    assert "TfrecApplyAdam" in native[2] and "TfrecApplyAdam" not in keras[2]
    for got, want, first in zip(native[:2], keras[:2], start):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        assert np.abs(got - first).max() > 0.05  # the weights moved


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
    with pytest.warns(RuntimeWarning, match=r"native kernels are not available \(false exited with 1"):
        factors, _, types = _train("adagrad", table)
    assert "ResourceSparseApplyAdagradV2" in types and "TfrecSparseApplyAdagrad" not in types
    assert np.abs(factors - table).max() > 0.01
    assert not list(tmp_path.rglob("*.so"))  # the failed build left no library behind


def test_tables_the_native_kernels_do_not_cover_take_tensorflows(fresh_ops):
    """float64 tables (and tables on a GPU, not testable here) keep TF's kernels, whatever is built."""
    table = np.random.default_rng(0).normal(size=(50, 4))
    _, _, types = _train("adagrad", table, tf.float64)
    assert "ResourceSparseApplyAdagradV2" in types and "TfrecSparseApplyAdagrad" not in types


def _products(kernels, rows, cols, values, dense, a, b):
    """observed_matmul and sampled_matmul (kernels) or their dense TF equivalents (None), with gradients."""
    values, dense, a, b = (tf.constant(x) for x in (values, dense, a, b))
    weights = np.random.default_rng(9).normal(size=(len(a), dense.shape[1]))  # an upstream gradient
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([values, dense, a, b])
        if kernels is None:
            entries = tf.stack([rows, cols], 1)
            matrix = tf.scatter_nd(entries, values, [len(a), len(dense)])  # duplicates add up
            product, sampled = matrix @ dense, tf.gather_nd(a @ b, entries)
        else:
            product = ops.observed_matmul(kernels, rows, cols, values, dense, len(a))
            sampled = ops.sampled_matmul(kernels, rows, cols, a, b)
        first = tf.reduce_sum(product * weights)
        second = tf.reduce_sum(sampled * tf.range(1.0, len(rows) + 1.0))
    return [product, sampled, *tape.gradient(first, [values, dense]), *tape.gradient(second, [a, b])]


@pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler (c++) to build the native kernels with")
@pytest.mark.parametrize("width", [37, 300])
def test_observed_entry_products_equal_dense_products_and_so_do_their_gradients(width, fresh_ops):
    kernels = ops.product_kernels()
    rng = np.random.default_rng(width)
    p, q, n = 40, 60, 500  # entries in random order, some repeated: the products add repeats up
    rows, cols = tf.constant(rng.integers(0, p, n)), tf.constant(rng.integers(0, q, n))
    values = rng.integers(1, 6, n).astype(np.float32)
    dense, a, b = (rng.normal(size=shape).astype(np.float32) for shape in ([q, width], [p, width], [width, q]))
    native = _products(kernels, rows, cols, values, dense, a, b)
    reference = _products(None, rows, cols, values, dense, a, b)
    names = ["product", "sampled", "d values", "d dense", "d a", "d b"]
    for name, got, want in zip(names, native, reference):
        scale = np.abs(want.numpy()).max()  # float32 sums of hundreds of terms: compare at the result's scale
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6 * scale, err_msg=name)
        assert scale > 1.0, name  # nothing compared is trivially zero


@pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler (c++) to build the native kernels with")
def test_observed_entry_kernels_refuse_bad_indices_and_shapes(fresh_ops):
    kernels = ops.product_kernels()
    rows, cols, values, dense = (
        tf.constant([0, 5], tf.int64),
        tf.constant([1, 1], tf.int64),
        tf.ones([2]),
        tf.ones([3, 4]),
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"out_index\[1\] = 5 is not in \[0, 3\)"):
        kernels.tfrec_scatter_product(rows, cols, values, dense, tf.constant(3, tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"in_index\[1\] = 5 is not in \[0, 3\)"):
        kernels.tfrec_scatter_product(cols, rows, values, dense, tf.constant(6, tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"a \[3,4\] and b \[6,2\] differ in width"):
        kernels.tfrec_sampled_dot(cols, cols, dense, tf.ones([6, 2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"b_index must be \[2\], got \[3\]"):
        kernels.tfrec_sampled_dot(cols, tf.constant([0, 1, 2], tf.int64), dense, dense)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x must be 2-D, got \[3\]"):
        kernels.tfrec_transpose(tf.ones([3]))


@pytest.fixture(scope="module")
def vectors():
    """A 300 x 200 synthetic table's training part and its first item-vector batches."""
    parts = data.split(data.load("synthetic:users=300,items=200,ratings=9000,seed=3"), "ratio", seed=1)
    return parts, list(data.vector_dataset(parts.train, "item", 64).take(2))


@pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler (c++) to build the native kernels with")
@pytest.mark.parametrize("normalization", ["observed", "entries"])
def test_autorec_reads_ragged_and_dense_vectors_alike_on_both_paths(vectors, normalization, fresh_ops):
    parts, _ = vectors
    dense = next(iter(data.vector_dataset(parts.train, "item", 64)))
    ragged = next(iter(data.vector_dataset(parts.train, "item", 64, ragged=True)))
    model = AutoRec.from_table(parts.train, kind="item", hidden=16, l2=0.01, loss_normalization=normalization)
    results = {}
    for path in ("observed", "dense"):
        if path == "dense":
            model._product_kernels = lambda: None  # noqa: SLF001
        for form, features in (("dense", dense), ("ragged", ragged)):
            with tf.GradientTape() as tape:
                loss = model.compute_loss(features, training=True)
            results[path, form] = [loss, *tape.gradient(loss, model.trainable_variables)]
    assert float(results["dense", "dense"][0]) > 0.1  # a real loss, not an empty batch's
    for key, values in results.items():
        for got, want in zip(values, results["dense", "dense"]):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-5, atol=1e-7, err_msg=str(key))


def _autorec_steps(parts, batches, dense: bool, normalization: str):
    """Per-epoch loss and metrics, and the weights, of AutoRec (dropout, L2) trained four epochs of two batches."""
    tf.keras.utils.set_random_seed(5)
    model = AutoRec.from_table(
        parts.train, kind="item", hidden=40, input_dropout=0.3, l2=0.01, loss_normalization=normalization
    )
    if dense:
        model._product_kernels = lambda: None  # noqa: SLF001  (the path of a GPU, XLA or no compiler)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    graph = tf.function(lambda f: model.compute_loss(f, training=True)).get_concrete_function(batches[0]).graph
    two = tf.data.Dataset.from_tensors(batches[0]).concatenate(tf.data.Dataset.from_tensors(batches[1]))
    logs = model.fit(two, epochs=4, verbose=0).history
    types = {op.type for op in graph.get_operations()}
    return logs, [w.numpy() for w in model.weights], types


@pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler (c++) to build the native kernels with")
@pytest.mark.parametrize("normalization", ["observed", "entries"])
def test_autorec_observed_entry_path_trains_as_the_dense_path(vectors, normalization, fresh_ops):
    parts, batches = vectors
    observed = _autorec_steps(parts, batches, False, normalization)
    dense = _autorec_steps(parts, batches, True, normalization)
    assert {"TfrecScatterProduct", "TfrecSampledDot"} <= observed[2] and "TfrecSampledDot" not in dense[2]
    assert "MatMul" in dense[2] and "MatMul" not in observed[2]
    assert observed[0].keys() == dense[0].keys() == {"loss", "regularization_loss", "rmse", "mae"}
    for name in observed[0]:
        np.testing.assert_allclose(observed[0][name], dense[0][name], rtol=1e-5, err_msg=name)
    for got, want in zip(observed[1], dense[1]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert observed[0]["rmse"][-1] < observed[0]["rmse"][0] - 0.05  # it learned: the same steps, not the same nothing
