"""Do no harm: the teacher's weight in the loss (alpha, and the temperature T) chosen on the validation split.

The chosen student is trained afresh under each setting, from the same initial weights on the same samples, and the
most accurate on the validation split wins; alpha 0 (the student trained from labels alone) is among the settings and
wins ties, so distillation is used only where it measurably helps.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .selection import TrainingSet, Trainee
from .sizing import FitReport

# (alpha, temperature) settings compared; alpha 0 is the student trained from labels alone.
TEACHER_SETTINGS = ((0.0, 4.0), (0.5, 4.0), (0.9, 2.0))


def teacher_weight(report: FitReport, data: TrainingSet, samples: int, batch_size: int, seed: int = 0,
                   settings: Sequence[Tuple[float, float]] = TEACHER_SETTINGS, advance: Optional[Callable[[float, str], None]] = None) -> List[Dict[str, Any]]:
    """Train ``report``'s student afresh (same initial weights, same samples) under each (alpha, T) for one pass
    over ``samples`` samples and score it on the validation split; rows in the order of ``settings``."""
    idx = np.random.default_rng(seed + 1).permutation(len(data.x))
    idx = np.resize(idx, samples) if samples > len(idx) else idx[:samples]
    rows = []
    for i, (alpha, temperature) in enumerate(settings):
        start = time.monotonic()
        trainee = Trainee(report, data, alpha, temperature, seed=seed)
        trainee.train(idx, batch_size)
        acc = trainee.val_accuracy()
        rows.append({"alpha": alpha, "temperature": temperature, "samples": int(samples), "val_acc": acc, "seconds": round(time.monotonic() - start, 2)})
        if advance is not None:
            advance((i + 1) / len(settings), f"alpha={alpha:g} T={temperature:g} val_acc {acc:.4f}")
    return rows


def best_setting(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The most accurate setting; on a tie, the first listed (labels alone come first: no teacher, no risk)."""
    return max(rows, key=lambda r: (r["val_acc"], -rows.index(r)))
