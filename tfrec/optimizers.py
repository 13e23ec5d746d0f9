"""Optimizers that take PyTorch's steps where Keras' differ, one that touches only the batch's rows, and Keras' Adam.

Keras Adam takes PyTorch's steps with ``adaptive_epsilon=True``; SGD needs
nothing. Adagrad differs in where epsilon goes: Keras divides by
``sqrt(acc + eps)``, PyTorch by ``sqrt(acc) + eps``. With tiny gradients (NCF's
N(0, 0.01) embeddings) the two differ by percent, not by rounding.

All three apply an embedding's sparse gradient in tfrec's native CPU kernels
where they are built (``tfrec.ops``), with TensorFlow's kernels as the fallback:
the same arithmetic, faster at large vocabularies. Adam applies dense gradients
there too, one op per variable instead of eleven.
"""

from __future__ import annotations

from tfrec import _internals, ops
from tfrec._keras import tf


SGD = tf.keras.optimizers.SGD  # ``--optimizer sgd`` (``tfrec.registry.optimizers``)


class SharedRowDedup:
    """Sums duplicate rows once per id tensor, not once per table (a mixin for Keras optimizers).

    Keras' ``apply_gradients`` sums the duplicate rows of each ``tf.IndexedSlices``
    gradient with its own ``tf.unique``. Tables looked up with the same ids (a
    user's factors and bias; NeuMF's two user tables) get gradients whose
    indices are each a reshape of that one id tensor, so their ``tf.unique``
    is the same: it is computed once here and shared. Other gradients (eager
    ones, or all-reduced ones under a strategy) take Keras' path.
    """

    def _deduplicate_sparse_grad(self, grads):  # _internals.DEDUPLICATE_SPARSE_GRAD
        shared, processed = {}, []
        for grad in grads:
            source = _reshaped_source(grad.indices) if isinstance(grad, tf.IndexedSlices) else None
            if source is None:
                processed.extend(super()._deduplicate_sparse_grad([grad]))
                continue
            if source.ref() not in shared:
                shared[source.ref()] = tf.unique(grad.indices)
            rows, position = shared[source.ref()]
            summed = tf.math.unsorted_segment_sum(grad.values, position, tf.shape(rows)[0])
            processed.append(tf.IndexedSlices(summed, rows, grad.dense_shape))
        return processed


def _reshaped_source(indices):
    """The tensor a gradient's indices flatten (``tf.gather``'s gradient reshapes its ids), or None."""
    if tf.executing_eagerly() or not hasattr(indices, "op") or indices.op.type != "Reshape":
        return None
    return indices.op.inputs[0]


@tf.keras.utils.register_keras_serializable(package="tfrec")
class TorchAdagrad(SharedRowDedup, tf.keras.optimizers.Adagrad):
    """``torch.optim.Adagrad``: accumulator from 0, update ``lr * g / (sqrt(acc) + eps)``, eps 1e-10."""

    def __init__(self, learning_rate=0.01, initial_accumulator_value=0.0, epsilon=1e-10, name="TorchAdagrad", **kw):
        super().__init__(learning_rate, initial_accumulator_value, epsilon, name=name, **kw)

    def update_step(self, grad, variable):
        # One pass over the touched rows, dividing as PyTorch does (the base class has summed duplicate
        # rows already): tfrec's native kernel on CPU tables (tfrec.ops), else TF's fused Adagrad V2 kernel.
        lr = tf.cast(self.learning_rate, variable.dtype)
        epsilon = tf.cast(self.epsilon, variable.dtype)
        accumulator = _internals.optimizer_slot(self, "accumulators", variable)
        if isinstance(grad, tf.IndexedSlices):
            ops.sparse_apply_adagrad(variable, accumulator, lr, epsilon, grad, allow_native=not self.jit_compile)
        else:
            tf.raw_ops.ResourceApplyAdagradV2(
                var=variable.handle, accum=accumulator.handle, lr=lr, epsilon=epsilon, grad=grad
            )


@tf.keras.utils.register_keras_serializable(package="tfrec")
class Adam(SharedRowDedup, tf.keras.optimizers.Adam):
    """Keras' Adam, the same steps, each variable's step in one native op.

    Keras' Adam applies a dense gradient with eleven whole-variable ops, and a
    ``tf.IndexedSlices`` gradient with a duplicate sum (``tf.unique`` and a
    segment sum) and eight whole-table ops (decay both moments, scatter-add the
    rows, move every row). On float32 variables on the CPU this class does the
    same arithmetic, in Keras' order, in one sweep (``tfrec.ops``), duplicate
    sum included. ``amsgrad``, XLA (``jit_compile``, on GPUs) and machines where
    the kernels cannot be built take Keras' own step, with duplicate rows summed
    once per id tensor (:class:`SharedRowDedup`).
    """

    def _deduplicate_sparse_grad(self, grads):  # _internals.DEDUPLICATE_SPARSE_GRAD
        if self._native_step():  # the native sweep sums a table's duplicate rows itself, in the same order
            return list(grads)
        return super()._deduplicate_sparse_grad(grads)

    def _native_step(self) -> bool:
        # Inside XLA (a model compiled with jit_compile=True) no custom op compiles: Keras' step, with its
        # duplicate sum, from the start.
        return not (self.amsgrad or self.jit_compile or ops.in_xla()) and ops.native() is not None

    def update_step(self, gradient, variable):
        if not self._native_step():
            return super().update_step(gradient, variable)
        sparse = isinstance(gradient, tf.IndexedSlices)
        dtype = variable.dtype
        # Keras' Adam.update_step's scalars, computed as it computes them.
        lr = tf.cast(self.learning_rate, dtype)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1_power = tf.pow(tf.cast(self.beta_1, dtype), local_step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, dtype), local_step)
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        epsilon = self.epsilon * tf.sqrt(1 - beta_2_power) if self.adaptive_epsilon else self.epsilon
        m, v = (_internals.optimizer_slot(self, slots, variable) for slots in ("momentums", "velocities"))
        one_minus = [tf.cast(1 - beta, dtype) for beta in (self.beta_1, self.beta_2)]
        apply = ops.sparse_grad_apply_adam if sparse else ops.apply_adam
        if not apply(variable, m, v, alpha, *one_minus, tf.cast(epsilon, dtype), gradient):
            if sparse:  # a table the kernels do not cover (on a GPU): Keras' step, on summed duplicates
                (gradient,) = tf.keras.optimizers.Adam._deduplicate_sparse_grad(self, [gradient])
            super().update_step(gradient, variable)


def torch_adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8) -> Adam:
    """``torch.optim.Adam``'s steps: epsilon added after bias correction (``adaptive_epsilon``)."""
    return Adam(learning_rate, beta_1, beta_2, epsilon, adaptive_epsilon=True)


@tf.keras.utils.register_keras_serializable(package="tfrec")
class LazyAdam(SharedRowDedup, tf.keras.optimizers.Adam):
    """Adam that updates only the embedding rows a batch looks up (``torch.optim.SparseAdam``'s rule).

    An embedding's gradient is a ``tf.IndexedSlices`` over the batch's rows.
    Keras' Adam still decays both moments of every row and moves every row each
    step (the moments of an unseen row are not zero), so a step costs the whole
    table: at ML-20M's 138K users that is most of the step. Here the moments and
    the weights change only at the rows in the batch (duplicates summed first, by ``apply_gradients``);
    a row outside the batch keeps its moments and does not move. Bias
    correction uses the global step, as ``torch.optim.SparseAdam`` and TF
    Addons' ``LazyAdam`` do. Dense gradients (MLP kernels) take Keras' Adam step.

    The trajectory differs from Adam's wherever a row's momentum would have
    carried it on between its batches, so results are close to Adam's, not
    equal; the parity fixtures use plain Adam.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="LazyAdam", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name=name, **kwargs)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        epsilon = self.epsilon * tf.sqrt(1 - beta_2**step) if self.adaptive_epsilon else self.epsilon
        m, v = (_internals.optimizer_slot(self, slots, variable) for slots in ("momentums", "velocities"))
        # apply_gradients has summed duplicate rows; under XLA (jit_compile, on GPUs) TF's kernels
        ops.sparse_apply_lazy_adam(variable, m, v, alpha, beta_1, beta_2, epsilon, gradient, not self.jit_compile)
