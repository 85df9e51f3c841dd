"""When training stops: early stopping on validation accuracy (best weights restored) and a wall-clock deadline.

Epochs are a cap, not a plan: training ends when validation accuracy has not improved for ``patience`` epochs,
when the next epoch would not finish before ``deadline`` (``time.monotonic()`` seconds, or a callable giving them
when the deadline moves while training runs), or at the cap. The
reason and the epoch whose weights were kept are recorded in distill.json.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Optional, Union

PATIENCE = 3  # epochs without a better validation accuracy before stopping


def stopper(student, patience: Optional[int], deadline: Union[None, float, Callable[[], float]], monitor: str = "val_acc"):
    """A tf_keras callback on the Distiller; ``student`` is the model whose best weights are kept."""
    import tf_keras as keras

    def past(seconds_ahead: float = 0.0) -> bool:
        if deadline is None:
            return False
        return time.monotonic() + seconds_ahead > (deadline() if callable(deadline) else deadline)

    class Stopper(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = -1.0
            self.best_epoch = 0
            self.best_weights = None
            self.wait = 0
            self.reason = "max epochs"
            self.epoch_seconds = []
            self.epochs_run = 0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            # An epoch slower than planned (a loaded machine, a wrong estimate) must not carry the run past its budget.
            if past():
                self.reason = "time budget (mid-epoch)"
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.epochs_run = epoch + 1
            self.epoch_seconds.append(time.monotonic() - self._start)
            score = logs.get(monitor)
            if score is not None:
                if score > self.best:
                    self.best, self.best_epoch, self.wait = float(score), epoch + 1, 0
                    if patience is not None:
                        self.best_weights = student.get_weights()
                else:
                    self.wait += 1
                    if patience is not None and self.wait >= patience:
                        self.reason = f"no better {monitor} for {patience} epochs"
                        self.model.stop_training = True
                        return
            if not self.model.stop_training:
                # The next epoch costs about what the slowest recent one did; do not start one that would overrun.
                if past(max(self.epoch_seconds[-2:])):
                    self.reason = "time budget"
                    self.model.stop_training = True

        def on_train_end(self, logs=None):
            # Without patience the caller asked for a fixed number of epochs: keep the last weights.
            if patience is not None and self.best_weights is not None and self.best_epoch != self.epochs_run:
                student.set_weights(self.best_weights)

        def record(self):
            kept = self.best_epoch if patience is not None and self.best_epoch else self.epochs_run
            return {"epochs_run": self.epochs_run, "stopped": self.reason, "kept_epoch": kept,
                    "best_val_acc": self.best if self.best >= 0 and patience is not None else None, "patience": patience}

    return Stopper()


def teacher_release(teacher_val_accuracy: float, n_val: int, monitor: str = "val_acc"):
    """A tf_keras callback on the Distiller: early-stopped distillation (Cho & Hariharan, 2019).

    Once the student's validation accuracy is within two standard errors of its teacher's, the teacher has nothing
    left to teach, and matching its softened outputs would hold the student at the teacher's accuracy (a weak
    teacher's, too): from the next epoch on the student trains on labels alone (alpha 0).
    """
    import tf_keras as keras

    p = min(max(teacher_val_accuracy, 0.0), 1.0)
    caught_up = teacher_val_accuracy - 2 * math.sqrt(max(p * (1 - p), 1e-4) / max(1, n_val))

    class Release(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.released_after = None

        def on_epoch_end(self, epoch, logs=None):
            score = (logs or {}).get(monitor)
            if self.released_after is None and score is not None and score >= caught_up:
                self.model.alpha_weight.assign(0.0)
                self.released_after = epoch + 1

    return Release()
