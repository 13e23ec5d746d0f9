"""tfrec's loop of ``steps_per_execution`` steps, in place of Keras' own (``RatingModel.fast_loop``).

Keras writes the loop as ``for _ in tf.range(n): outputs = step(...)``; AutoGraph traces such a
body twice (once to learn what ``outputs`` is). Calling a one-step ``tf.function`` there instead
traces the step once. The loop is a ``tf.while_loop`` whose outputs start as zeros of the step's
shapes, and neither function goes through AutoGraph (Keras' step has no Python control flow on
tensors, and tfrec's train and test steps skip it already). Each step is Keras' own (strategy,
counters, output reduction); only the loop is here, so Keras' loop (``model.fast_loop = False``)
reaches the same weights (tests/test_models.py). Eager runs, one step per execution, Keras'
autotuning and parameter-server coordinators keep Keras' function. The private Keras parts it
touches are named in :mod:`tfrec._internals`.
"""

from __future__ import annotations

from tfrec import _internals
from tfrec._keras import tf


def multi_step_function(model, kind: str, force: bool, make):
    """The model's ``kind`` (``train``/``test``) function; ``make`` is Keras' ``make_<kind>_function``."""
    steps = _internals.steps_per_execution(model)
    if (
        (getattr(model, f"{kind}_function") is not None and not force)
        or steps is None
        or int(steps.numpy()) == 1
        or model.run_eagerly
        or _internals.has_cluster_coordinator(model)
        or getattr(model, "autotune_steps_per_execution", False)
    ):
        return make(force)
    _internals.set_steps_per_execution(model, None)  # Keras then makes its one-step function
    try:
        one_step = make(force=True)
    finally:
        _internals.set_steps_per_execution(model, steps)

    step = tf.function(one_step.python_function, reduce_retracing=True, autograph=False)

    def several_steps(iterator):
        # The loop's outputs start as zeros shaped as the step's (traced here once, then called); AutoGraph's
        # `for` would build the body twice to learn them, and a first step outside the loop would inline twice.
        traced = step.get_concrete_function(iterator).structured_outputs
        shapes = tf.nest.map_structure(lambda t: t.shape, traced)
        zeros = tf.nest.map_structure(lambda t: tf.zeros([n or 0 for n in t.shape], t.dtype), traced)
        _, outputs = tf.while_loop(
            lambda done, _: done < steps,  # read at each call: Keras shortens the last execution of an epoch
            lambda done, _: (done + 1, step(iterator)),
            (tf.constant(0, steps.dtype), zeros),
            shape_invariants=(tf.TensorShape([]), shapes),
        )
        return outputs

    function = tf.function(several_steps, reduce_retracing=True, autograph=False)
    # Each model makes its own loop function, traced once; with one call an epoch, a few models built in
    # one process (a sweep) look to TF's retracing detector like one function retraced, and it warns.
    # TF's own switch for that (restored SavedModel functions set it); without it, no harm.
    _internals.omit_retracing_warning(function)
    setattr(model, f"{kind}_function", function)
    setattr(model, f"{kind}_tf_function", function)
    return function
