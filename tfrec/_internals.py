"""Every private part of Keras and TensorFlow that tfrec relies on, named once.

A TensorFlow or tf-keras upgrade may remove any of these without notice; each has one test in
tests/test_internals.py that fails with a plain message naming it, instead of an AttributeError deep
inside a training step. The public API did not offer what each one does:

- ``Model._steps_per_execution`` (a variable Keras' ``compile`` creates untracked): how many steps a
  train or test function runs per call. tfrec reads and swaps it to build its own step loop.
- ``Model._cluster_coordinator``: set when a model trains under ParameterServerStrategy.
- ``Optimizer._index_dict``, ``_var_key`` and the slot lists ``_momentums``, ``_velocities``,
  ``_accumulators``: a variable's optimizer slots, for tfrec's fused update steps.
- ``Optimizer._deduplicate_sparse_grad``: the hook ``apply_gradients`` calls to sum duplicate rows
  of sparse gradients; tfrec's optimizers override it (:data:`DEDUPLICATE_SPARSE_GRAD`).
- ``Model._get_optimizer``: the hook ``compile`` resolves its ``optimizer`` argument with; tfrec's
  models override it to read ``"adam"`` as tfrec's Adam (:data:`GET_OPTIMIZER`). Overriding
  ``compile`` itself would stop Keras from restoring a loaded model's optimizer.
- ``Function._omit_frequent_tracing_warning``: TensorFlow's own switch that keeps a function out of
  the "triggered tf.function retracing" warning.
- ``tf.__internal__.get_enclosing_xla_context``: whether a graph is being compiled by XLA (Keras'
  BatchNormalization asks the same way).
- ``tf.__internal__.tracking.no_automatic_dependency_tracking``: sets an attribute that Keras does
  not track (plain data such as vocabularies, and the steps-per-execution counter).
- ``Initializer._random_generator`` (a ``backend.RandomGenerator`` with ``make_seed_for_stateless_op``):
  where a Keras initializer draws from. ``tfrec.cluster.initialized_as_whole`` reads its seed and
  swaps it for a recorder to learn the draw (and scale) Keras would make for a whole variable.
"""

from __future__ import annotations

import contextlib

from tfrec._keras import tf

#: The name of the Keras optimizer method that sums duplicate rows of sparse gradients.
DEDUPLICATE_SPARSE_GRAD = "_deduplicate_sparse_grad"

#: The name of the Keras model method ``compile`` resolves its optimizer argument with.
GET_OPTIMIZER = "_get_optimizer"

#: Decorator: attributes set inside the decorated method are not tracked by Keras.
untracked = tf.__internal__.tracking.no_automatic_dependency_tracking


def steps_per_execution(model):
    """The model's steps-per-execution variable (None before ``compile``)."""
    return getattr(model, "_steps_per_execution", None)


@untracked
def set_steps_per_execution(model, value) -> None:
    """Sets it untracked, as Keras' compile does: tracked, the counter would become one of the model's weights."""
    model._steps_per_execution = value


def has_cluster_coordinator(model) -> bool:
    """Whether the model trains through a ParameterServerStrategy coordinator."""
    return getattr(model, "_cluster_coordinator", None) is not None


def optimizer_slot(optimizer, slots: str, variable):
    """The optimizer's slot variable of ``variable`` in its slot list ``slots`` (``momentums``, ...)."""
    return getattr(optimizer, f"_{slots}")[optimizer._index_dict[optimizer._var_key(variable)]]


def omit_retracing_warning(function) -> None:
    """Keeps a ``tf.function`` out of TensorFlow's retracing warning (as restored SavedModel functions are)."""
    function._omit_frequent_tracing_warning = True


def in_xla() -> bool:
    """Whether the graph being traced is compiled by XLA."""
    return tf.__internal__.get_enclosing_xla_context() is not None


def initializer_generator(initializer):
    """A Keras initializer's random generator, or None (an initializer that draws no random numbers)."""
    return getattr(initializer, "_random_generator", None)


@contextlib.contextmanager
def generator_swapped(initializer, stand_in):
    """The initializer draws from ``stand_in`` inside the block, from its own generator again after it."""
    own = initializer._random_generator
    initializer._random_generator = stand_in
    try:
        yield
    finally:
        initializer._random_generator = own
