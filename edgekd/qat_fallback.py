"""The build's int8 fallback fine-tune: when an int8 artifact misses the parity bounds, ``convert_verified`` calls
the function made here once, and gets a quantization-aware copy of the student fine-tuned within the time the
budget has left (or None when that is not enough to help)."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .budget import Budget
from .distill import distill
from .errors import EdgekdError
from .selection import TrainingSet

QAT_EPOCHS = 2  # passes over the training data the fine-tune takes at most, as time allows
MIN_QAT_SAMPLES = 2048  # fewer samples (or one pass over a smaller set) do not move int8 parity


def qat_fine_tune(model, tset: TrainingSet, alpha: float, temperature: float, batch_size: int, seed: int, clock: Budget,
                  convert_seconds: float, epoch_seconds: float, say: Callable[[str], None]) -> Callable[[], Optional[object]]:
    """A callable for convert_verified: a short quantization-aware fine-tune of ``model`` when the budget still holds
    one epoch of it (with conversion after), else None. ``epoch_seconds``: one float epoch of ``model``."""
    def run():
        from .distill.qat import quantize_student

        room = clock.remaining() - convert_seconds
        # Samples that fit the time left (quantization-aware steps cost about 1.5 float ones), up to QAT_EPOCHS passes.
        n = min(QAT_EPOCHS * len(tset.x), int(room / max(1e-9, 1.5 * epoch_seconds) * len(tset.x)))
        if n < min(len(tset.x), MIN_QAT_SAMPLES):
            return None
        say(f"int8 missed the parity bounds: quantization-aware fine-tune on {n:,} samples")
        try:
            qat_model = quantize_student(model)
        except EdgekdError as exc:
            say(f"warning: {exc}")
            return None
        idx = np.resize(np.random.default_rng(seed).permutation(len(tset.x)), n)
        distill(qat_model, tset.x[idx], tset.y[idx], tset.logits[idx], temperature=temperature, alpha=alpha, epochs=1, batch_size=batch_size,
                learning_rate=3e-4, progress=False, seed=seed, deadline=clock.deadline - convert_seconds)
        return qat_model

    return run
