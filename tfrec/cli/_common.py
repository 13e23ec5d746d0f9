"""What every ``tfrec`` command module shares: the parser that exits with a one-line usage error, and
TensorFlow imported without its start-up noise."""

from __future__ import annotations

import argparse
import os
import sys

USAGE_ERROR, DATA_ERROR = 2, 1


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def import_tensorflow_quietly(list_devices: bool = True) -> None:
    """Imports TensorFlow with native stderr muted.

    TensorFlow 2.19+ prints absl INFO lines at import (oneDNN, missing CUDA) that
    ``TF_CPP_MIN_LOG_LEVEL`` no longer silences (tensorflow/tensorflow#100442).
    Python-level errors are raised after stderr is restored, so none is hidden.
    """
    if "tensorflow" in sys.modules:
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: I001

        # Device discovery logs too (e.g. "failed call to cuInit" on a machine without a GPU driver);
        # `tfrec train` prints the devices it used instead. Not for a multi-worker run: collective ops
        # must be configured (by its strategy) before the runtime starts.
        if list_devices:
            tensorflow.config.list_physical_devices()
        # Python-side warnings such as SavedModel's "Skipping full serialization of ... Ranking" (the
        # unbuilt task has nothing to save); errors still show, as with TF_CPP_MIN_LOG_LEVEL=2.
        tensorflow.get_logger().setLevel("ERROR")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def listed(names) -> str:
    return ", ".join(names) or "none"


def set_threads(model: str, asked=None) -> None:
    """TensorFlow's thread pools for training ``model`` (``tfrec.train.configure_threads``), or a note when
    TensorFlow runs in this process already and none was asked for."""
    from tfrec.errors import TfrecError
    from tfrec.train import configure_threads

    try:
        configure_threads(model, asked)
    except TfrecError:
        if asked is not None:  # asked for: a mistake to report
            raise
        # Called from a process whose TensorFlow runs already (a notebook, a test): its threads stay as they are.
        print("tfrec: note: TensorFlow is running in this process already; its thread settings stay", file=sys.stderr)
