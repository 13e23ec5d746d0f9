"""Selects Keras 2 (tf-keras) for TensorFlow before anything touches ``tf.keras``.

TensorFlow Recommenders 0.7.x is written against Keras 2. Since TensorFlow 2.16,
``tf.keras`` resolves lazily, on first attribute access, to Keras 3 unless the
environment variable ``TF_USE_LEGACY_KERAS`` is ``1``. Setting it here works
whether or not ``tensorflow`` was imported before ``tfrec``, as long as nobody
has touched ``tf.keras`` yet; if somebody has and got Keras 3, we stop with a
message that says what to do instead of failing deep inside TFRS.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402


def _check_keras2() -> None:
    name = getattr(tf.keras, "__name__", "")
    if not name.startswith("tf_keras"):
        raise ImportError(
            "tfrec needs Keras 2 (the tf-keras package), but tf.keras is already "
            f"bound to {name or 'an unknown module'} (Keras 3) in this process. "
            "Import tfrec before anything uses tf.keras, or set "
            "TF_USE_LEGACY_KERAS=1 in the environment before starting Python, and "
            "make sure tf-keras is installed (pip install tf-keras)."
        )


_check_keras2()
