"""Distil a teacher into a student: the loss, the Distiller, and ``distill()`` that runs them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import EdgekdError
from .losses import UNLABELED, kd_loss, soft_target_loss

__all__ = ["DistillResult", "distill", "kd_loss", "soft_target_loss", "UNLABELED"]


@dataclass
class DistillResult:
    student: Any
    history: List[Dict[str, float]]
    val_accuracy: Optional[float]
    seconds_per_epoch: float
    teacher_seconds: float
    config: Dict[str, Any] = field(default_factory=dict)


def distill(
    student,
    x,
    y,
    teacher_logits,
    *,
    temperature: float = 4.0,
    alpha: float = 0.7,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    val=None,
    progress: bool = True,
    teacher_seconds: float = 0.0,
    seed: int = 0,
) -> DistillResult:
    """Train ``student`` (a tf_keras model emitting logits) on preprocessed ``x`` against labels ``y``
    (``UNLABELED`` where unknown) and precomputed ``teacher_logits``.

    >>> import tf_keras as keras, numpy as np                      # doctest: +SKIP
    >>> result = distill(student, x, y, teacher.logits(x), epochs=5)
    >>> result.student.predict(x).argmax(1)
    """
    import tensorflow as tf
    import tf_keras as keras

    from ..progress import ProgressBar
    from .distiller import Distiller

    if not 0.0 <= alpha <= 1.0:
        raise EdgekdError(f"alpha must be within [0, 1] (got {alpha})", "alpha weighs the teacher term; 0 trains on labels only")
    if temperature <= 0:
        raise EdgekdError(f"temperature must be positive (got {temperature})")
    if teacher_logits.shape[1] != student.output_shape[-1]:
        raise EdgekdError(f"teacher gives {teacher_logits.shape[1]} classes but the student {student.output_shape[-1]}")
    keras.utils.set_random_seed(seed)
    n = len(x)
    steps = int(np.ceil(n / batch_size))
    ds = (
        tf.data.Dataset.from_tensor_slices((x.astype(np.float32), (y.astype(np.int32), teacher_logits.astype(np.float32))))
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps))
    distiller = Distiller(student, temperature=temperature, alpha=alpha)
    distiller.compile(optimizer=keras.optimizers.Adam(schedule))
    timer = _EpochTimer()
    callbacks = [timer, ProgressBar(epochs, steps, desc=f"distill T={temperature:g} a={alpha:g}", enabled=progress)]
    fit = distiller.fit(ds, epochs=epochs, validation_data=val, callbacks=callbacks, verbose=0)
    history = [{k: float(v[i]) for k, v in fit.history.items()} for i in range(epochs)]
    for i, row in enumerate(history):
        row["epoch"] = i + 1
        row["seconds"] = timer.seconds[i]
    val_acc = history[-1].get("val_acc") if history else None
    # The first epoch carries graph tracing: report the steady-state cost.
    steady = timer.seconds[1:] or timer.seconds
    return DistillResult(
        student=student,
        history=history,
        val_accuracy=val_acc,
        seconds_per_epoch=float(np.median(steady)),
        teacher_seconds=teacher_seconds,
        config={"method": "kd", "temperature": temperature, "alpha": alpha, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed},
    )


class _EpochTimer:
    """Wall time of each epoch (a tf_keras Callback built lazily to keep this module import-light)."""

    def __new__(cls):
        import tf_keras as keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return Timer()
