"""A tqdm progress bar for tf_keras training: one bar over all batches, loss and accuracy as it goes."""
from __future__ import annotations

import sys

import tf_keras as keras
from tqdm.auto import tqdm


class ProgressBar(keras.callbacks.Callback):
    def __init__(self, epochs: int, steps_per_epoch: int, desc: str = "distill", enabled: bool = True):
        super().__init__()
        self.epochs = epochs
        self.total = epochs * steps_per_epoch
        self.desc = desc
        self.enabled = enabled
        self.bar = None
        self.epoch = 0

    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.total, desc=self.desc, unit="step", disable=not self.enabled, file=sys.stderr, leave=False, dynamic_ncols=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.bar.update(1)
        if batch % 5 == 0:
            self.bar.set_postfix_str(f"epoch {self.epoch}/{self.epochs} loss {logs.get('loss', 0):.3f} acc {logs.get('acc', 0):.3f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        val = f" val_acc {logs['val_acc']:.3f}" if "val_acc" in logs else ""
        self.bar.set_postfix_str(f"epoch {epoch + 1}/{self.epochs} loss {logs.get('loss', 0):.3f} acc {logs.get('acc', 0):.3f}{val}")

    def on_train_end(self, logs=None):
        self.bar.close()

