"""Optimizer steps on embedding tables and dense variables in tfrec's native kernels (``rows.cc``), or TF's."""

from __future__ import annotations

from tfrec._keras import tf
from tfrec.ops._library import _native_for, in_xla


def sparse_apply_adagrad(var, accum, lr, epsilon, grad: tf.IndexedSlices, allow_native: bool = True) -> None:
    """PyTorch's Adagrad on the rows of ``grad``: ``accum += g*g; var -= lr*g / (sqrt(accum) + epsilon)``.

    ``grad``'s indices must be unique (``apply_gradients`` sums duplicates first).
    ``allow_native=False`` takes TensorFlow's fused kernel; inside XLA, which compiles neither
    kernel, the same arithmetic runs as a gather and two scatters.
    """
    if in_xla():
        rows, g = grad.indices, grad.values
        accum_rows = tf.gather(accum, rows) + g * g
        accum.scatter_update(tf.IndexedSlices(accum_rows, rows))
        var.scatter_sub(tf.IndexedSlices(lr * g / (tf.sqrt(accum_rows) + epsilon), rows))
        return
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
