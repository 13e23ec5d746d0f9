"""One test per private Keras/TensorFlow part tfrec relies on (tfrec/_internals.py): an upgrade that removes
one fails here, with its name, before it fails inside a training step."""

import inspect

import numpy as np
import pytest

import tfrec  # noqa: F401  (selects Keras 2 before tensorflow below)
import tensorflow as tf
from tfrec import _internals


def _compiled_model(steps=4):
    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=steps)
    return model


def test_steps_per_execution_variable():
    model = _compiled_model()
    steps = _internals.steps_per_execution(model)
    assert isinstance(steps, tf.Variable) and int(steps.numpy()) == 4, "Model._steps_per_execution is gone"
    _internals.set_steps_per_execution(model, None)
    assert _internals.steps_per_execution(model) is None
    _internals.set_steps_per_execution(model, steps)
    model.build((None, 2))
    assert steps.ref() not in {w.ref() for w in model.weights}, "the counter became a tracked weight"


def test_cluster_coordinator_attribute():
    model = _compiled_model()
    source = inspect.getsource(tf.keras.Model)
    assert "_cluster_coordinator" in source, "tf.keras.Model no longer keeps _cluster_coordinator"
    assert _internals.has_cluster_coordinator(model) is False


@pytest.mark.parametrize(
    "optimizer, slots",
    [(tf.keras.optimizers.Adam, ("momentums", "velocities")), (tf.keras.optimizers.Adagrad, ("accumulators",))],
)
def test_optimizer_slot_lists(optimizer, slots):
    variable = tf.Variable(np.ones((3, 2), np.float32))
    opt = optimizer(0.1)
    opt.build([variable])
    for name in slots:
        slot = _internals.optimizer_slot(opt, name, variable)
        assert slot.shape == variable.shape, f"{optimizer.__name__}._{name} / _index_dict / _var_key changed"


def test_sparse_duplicate_hook_is_what_apply_gradients_calls():
    calls = []

    class Recording(tf.keras.optimizers.SGD):
        pass

    def hook(self, grads):
        calls.append(len(grads))
        return getattr(tf.keras.optimizers.SGD, _internals.DEDUPLICATE_SPARSE_GRAD)(self, grads)

    assert hasattr(tf.keras.optimizers.SGD, _internals.DEDUPLICATE_SPARSE_GRAD), "_deduplicate_sparse_grad is gone"
    setattr(Recording, _internals.DEDUPLICATE_SPARSE_GRAD, hook)
    table = tf.Variable(np.zeros((4, 2), np.float32))
    grad = tf.IndexedSlices(tf.ones((3, 2)), tf.constant([1, 1, 2]), tf.constant([4, 2]))
    Recording(1.0).apply_gradients([(grad, table)])
    assert calls, "apply_gradients no longer calls Optimizer._deduplicate_sparse_grad"
    np.testing.assert_allclose(table.numpy()[:, 0], [0, -2, -1, 0])


def test_retracing_warning_switch_is_read_by_tensorflow():
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    assert "_omit_frequent_tracing_warning" in inspect.getsource(polymorphic_function), (
        "TensorFlow no longer reads Function._omit_frequent_tracing_warning"
    )
    function = tf.function(lambda x: x + 1)
    _internals.omit_retracing_warning(function)
    assert function(tf.constant(1)).numpy() == 2


def test_xla_context_probe():
    assert _internals.in_xla() is False
    seen = []

    @tf.function(jit_compile=True)
    def compiled(x):
        seen.append(_internals.in_xla())
        return x * 2

    assert compiled(tf.constant(2.0)).numpy() == 4.0
    assert seen == [True], "tf.__internal__.get_enclosing_xla_context no longer sees jit_compile"


def test_untracked_attributes_stay_out_of_keras_tracking():
    class Holder(tf.keras.layers.Layer):
        @_internals.untracked
        def keep(self, value):
            self.kept = value

    holder = Holder()
    holder.keep([tf.Variable(1.0)])
    assert type(holder.kept) is list and not holder.variables, "no_automatic_dependency_tracking stopped working"


def test_compile_resolves_its_optimizer_through_the_hook_tfrec_overrides():
    seen = []

    class Recording(tf.keras.Sequential):
        pass

    def hook(self, optimizer):
        seen.append(optimizer)
        return getattr(tf.keras.Sequential, _internals.GET_OPTIMIZER)(self, optimizer)

    assert hasattr(tf.keras.Model, _internals.GET_OPTIMIZER), "Model._get_optimizer is gone"
    setattr(Recording, _internals.GET_OPTIMIZER, hook)
    Recording([tf.keras.layers.Dense(1)]).compile(optimizer="sgd", loss="mse")
    assert seen == ["sgd"], "Model.compile no longer resolves its optimizer through _get_optimizer"


def test_an_initializer_draws_from_a_swappable_stateless_generator():
    """``Initializer._random_generator`` (tfrec.cluster.initialized_as_whole reads its seed and swaps it)."""
    initializer = tf.keras.initializers.RandomNormal(seed=3)
    generator = _internals.initializer_generator(initializer)
    assert generator is not None and hasattr(generator, "make_seed_for_stateless_op"), (
        "Keras initializers no longer keep a _random_generator with make_seed_for_stateless_op: "
        "tfrec.cluster.initialized_as_whole cannot cut a split variable's pieces from the whole's draw"
    )

    class Recorder:
        def random_normal(self, shape, mean=0.0, stddev=1.0, dtype=None, nonce=None):
            return ("normal", mean, stddev)

    with _internals.generator_swapped(initializer, Recorder()):
        assert initializer([2, 2]) == ("normal", 0.0, 0.05), "a Keras initializer no longer draws from its generator"
    assert _internals.initializer_generator(initializer) is generator
