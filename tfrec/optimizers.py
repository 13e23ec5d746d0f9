"""Optimizers that take PyTorch's steps where Keras' differ (for parity with PyTorch code).

Keras Adam takes PyTorch's steps with ``adaptive_epsilon=True``; SGD needs
nothing. Adagrad differs in where epsilon goes: Keras divides by
``sqrt(acc + eps)``, PyTorch by ``sqrt(acc) + eps``. With tiny gradients (NCF's
N(0, 0.01) embeddings) the two differ by percent, not by rounding.
"""

from __future__ import annotations

from tfrec._keras import tf


@tf.keras.utils.register_keras_serializable(package="tfrec")
class TorchAdagrad(tf.keras.optimizers.Adagrad):
    """``torch.optim.Adagrad``: accumulator from 0, update ``lr * g / (sqrt(acc) + eps)``, eps 1e-10."""

    def __init__(self, learning_rate=0.01, initial_accumulator_value=0.0, epsilon=1e-10, name="TorchAdagrad", **kw):
        super().__init__(learning_rate, initial_accumulator_value, epsilon, name=name, **kw)

    def update_step(self, grad, variable):
        lr = tf.cast(self.learning_rate, variable.dtype)
        accumulator = self._accumulators[self._index_dict[self._var_key(variable)]]
        if isinstance(grad, tf.IndexedSlices):
            accumulator.scatter_add(tf.IndexedSlices(grad.values * grad.values, grad.indices))
            denominator = tf.sqrt(tf.gather(accumulator, grad.indices)) + self.epsilon
            variable.scatter_add(tf.IndexedSlices(-lr * grad.values / denominator, grad.indices))
        else:
            accumulator.assign_add(grad * grad)
            variable.assign_sub(lr * grad / (tf.sqrt(accumulator) + self.epsilon))


def torch_adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8) -> tf.keras.optimizers.Adam:
    """``torch.optim.Adam``'s steps: epsilon added after bias correction (``adaptive_epsilon``)."""
    return tf.keras.optimizers.Adam(learning_rate, beta_1, beta_2, epsilon, adaptive_epsilon=True)
