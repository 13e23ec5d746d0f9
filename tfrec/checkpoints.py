"""Crash-safe training: ``tfrec train --checkpoint-dir DIR`` resumes a killed run where it was.

At every epoch end the directory gets, in this order:

1. a TensorFlow checkpoint ``ckpt-<phase>-<epoch>`` of the model and its optimizer
   (weights, Adam's moments, the step count, ``SeededDropout``'s draw count);
2. the early-stopping state and its best weights (``best-<phase>.npz``);
3. ``state.json``, replaced atomically: the phase (``fit`` or ``refit``), the
   epochs done, every epoch's logs and the config. It names the checkpoint to
   resume from, so a kill at any point leaves the last complete epoch.

A restarted run with the same command reads ``state.json``, restores the
checkpoint (Keras restores each variable as it is created), and fits the
remaining epochs from the next epoch's batch order (the pipelines draw epoch
``e``'s order from ``(seed, e)``). With ``--deterministic`` it then ends with
the weights and test metrics of a run that was never killed. The partial epoch
that was running at the kill is trained again from its start.

When the run ends, ``finished.json`` holds its summary; starting it again
raises :class:`RunFinished` instead of training. A config that differs from the
checkpoint's is refused, naming the fields.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tfrec._keras import tf

from tfrec.errors import TfrecError
from tfrec.files import write_json_atomic

STATE, FINISHED = "state.json", "finished.json"
# Config fields a resumed run may change without changing what it trains.
_FREE = {"strategy", "steps_per_execution"}


class RunFinished(TfrecError):
    """The checkpoint directory holds a finished run; ``summary`` is what it reported."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


class RunDirectory:
    """One training run's checkpoint directory (see the module docstring)."""

    def __init__(self, path, config: dict):
        self.path = Path(path)
        self.config = config
        if self.path.exists() and not self.path.is_dir():
            raise TfrecError(f"--checkpoint-dir {self.path}: exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        finished = self.path / FINISHED
        if finished.exists():
            summary = json.loads(finished.read_text())
            scores = ", ".join(f"{k} {v:.4f}" for k, v in summary.items() if k.startswith("test_") and v is not None)
            raise RunFinished(
                f"{self.path}: this run already finished ({scores or 'no test metrics'}); "
                "remove the directory to train again",
                summary,
            )
        self.state = self._read_state()

    def _read_state(self) -> dict | None:
        path = self.path / STATE
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_text())
        except ValueError as e:
            raise TfrecError(
                f"{path}: not a tfrec checkpoint state ({e}); remove the directory to start over"
            ) from None
        changed = sorted(
            k for k in set(state.get("config", {})) | set(self.config)
            if k not in _FREE and state.get("config", {}).get(k) != self.config.get(k)
        )  # fmt: skip
        if changed:
            raise TfrecError(
                f"{self.path}: holds a run with other settings ({', '.join(changed)}); "
                "resume with the same command or use another --checkpoint-dir"
            )
        return state

    def resume(self, phase: str):
        """``(epochs_done, logs, stopper_state)`` of ``phase`` (0, [], None when it has not begun)."""
        if not self.state or self.state["phase"] != phase:
            return 0, [], None
        return self.state["epochs"], self.state["logs"], self.state.get("stopper")

    def restore(self, model, phase: str) -> None:
        """Restores the model and optimizer of ``phase``'s last checkpoint (deferred to variable creation)."""
        if self.state and self.state["phase"] == phase:
            tf.train.Checkpoint(model=model, optimizer=model.optimizer).read(
                str(self.path / self.state["checkpoint"])
            ).expect_partial()

    def best_weights(self, phase: str):
        path = self.path / f"best-{phase}.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as arrays:
            return [arrays[f"w{k}"] for k in range(len(arrays.files))]

    def callback(self, phase: str, logs: list, stopper=None, extra: dict | None = None):
        return _Saver(self, phase, logs, stopper, extra or {})

    def finish(self, summary: dict) -> None:
        write_json_atomic(self.path / FINISHED, summary)


class _Saver(tf.keras.callbacks.Callback):
    def __init__(self, run: RunDirectory, phase: str, logs: list, stopper, extra: dict):
        super().__init__()
        self.run, self.phase, self.logs, self.stopper, self.extra = run, phase, logs, stopper, extra

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append({k: float(v) for k, v in (logs or {}).items()})
        name = f"ckpt-{self.phase}-{epoch + 1}"
        tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer).write(str(self.run.path / name))
        stopper = None
        if self.stopper is not None:
            stopper = {"wait": self.stopper.wait, "best": _number(self.stopper.best),
                       "best_epoch": self.stopper.best_epoch, "stopped": bool(self.model.stop_training)}  # fmt: skip
            if self.stopper.best_weights is not None and self.stopper.best_epoch == epoch:
                best = self.run.path / f"best-{self.phase}.npz"
                temporary = best.with_name(f".{best.name}.tmp.npz")
                np.savez(temporary, **{f"w{k}": w for k, w in enumerate(self.stopper.best_weights)})
                os.replace(temporary, best)
        previous = (self.run.state or {}).get("checkpoint")
        state = {"phase": self.phase, "epochs": epoch + 1, "logs": self.logs, "checkpoint": name,
                 "stopper": stopper, "config": self.run.config, **self.extra}  # fmt: skip
        write_json_atomic(self.run.path / STATE, state)
        self.run.state = state
        if previous and previous != name:  # the older checkpoint is no longer named by the state
            for stale in self.run.path.glob(f"{previous}.*"):
                stale.unlink(missing_ok=True)


def _number(value) -> float:
    return float(np.asarray(value))


class ResumableEarlyStopping(tf.keras.callbacks.EarlyStopping):
    """Keras' ``EarlyStopping`` that can start from a saved state (counter, best score, best weights)."""

    def __init__(self, *args, resume_state: dict | None = None, resume_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_state, self.resume_weights = resume_state, resume_weights

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resume_state:
            self.wait = self.resume_state["wait"]
            self.best = self.resume_state["best"]
            self.best_epoch = self.resume_state["best_epoch"]
            self.best_weights = self.resume_weights
