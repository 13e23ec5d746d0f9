"""tfrec: the classic PyTorch rating-prediction recommenders, ported to TensorFlow Recommenders.

Importing tfrec selects Keras 2 (tf-keras) for ``tf.keras``, because TensorFlow
Recommenders 0.7.x needs it: it sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow
resolves ``tf.keras``. If TensorFlow is already imported, it checks at once that
``tf.keras`` is still Keras 2 and raises ImportError otherwise (``tfrec/_keras.py``).
Sub-packages load on first use, so ``tfrec --help`` does not wait for TensorFlow.
"""

import importlib
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
if "tensorflow" in sys.modules:
    from tfrec import _keras  # noqa: F401  (raises if tf.keras is already Keras 3)

from tfrec.errors import DataError, DataNotFoundError, TfrecError  # noqa: E402

__version__ = "0.1.0"
# Every public module but cli, the command (importing it quiets TensorFlow's logs for the process).
_SUBMODULES = (
    "arguments", "checkpoints", "cluster", "config", "convert", "data", "errors", "export", "families", "files",
    "metrics", "models", "ops", "optimizers", "registry", "report", "strategies", "train", "tune",
)  # fmt: skip
__all__ = ["DataError", "DataNotFoundError", "TfrecError", "__version__", *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tfrec.{name}")
    raise AttributeError(f"module 'tfrec' has no attribute {name!r}")
