"""Do no harm: the teacher's weight in the loss (alpha, and the temperature T) chosen on the validation split.

The chosen student is trained afresh under each setting, from the same initial weights on the same samples, and the
most accurate on the validation split wins; alpha 0 (the student trained from labels alone) is among the settings and
wins unless a teacher setting beats it by more than the split's noise, so distillation is used only where it
measurably helps.
"""
from __future__ import annotations

import math
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
        # Annealed over the duel, as the final training is over its epochs: at a constant rate the soft labels' early
        # head start decides the duel, and a weak teacher wins it only to lose once the rate comes down.
        trainee = Trainee(report, data, alpha, temperature, seed=seed, anneal_steps=math.ceil(samples / batch_size))
        trainee.train(idx, batch_size)
        acc = trainee.val_accuracy()
        rows.append({"alpha": alpha, "temperature": temperature, "samples": int(samples), "val_acc": acc, "seconds": round(time.monotonic() - start, 2)})
        if advance is not None:
            advance((i + 1) / len(settings), f"alpha={alpha:g} T={temperature:g} val_acc {acc:.4f}")
    return rows


def best_setting(rows: List[Dict[str, Any]], n_val: int) -> Dict[str, Any]:
    """Labels alone, unless a teacher setting beats it on the ``n_val`` validation samples by more than two standard
    errors of the difference between two accuracies: then the most accurate such setting.

    The duel's horizon is short, and soft labels speed up the first steps even from a weak teacher; a lead within the
    validation split's noise is no evidence that the teacher will help over the whole training (on MNIST with a 94.9%
    teacher, alpha 0.9 led labels alone by 0.6 points after one pass and ended 0.5 points below it after three)."""
    alone = next((r for r in rows if r["alpha"] == 0.0), None)
    if alone is None:
        return max(rows, key=lambda r: (r["val_acc"], -rows.index(r)))
    p = min(max(alone["val_acc"], 0.01), 0.99)
    margin = 2.0 * math.sqrt(2.0 * p * (1.0 - p) / max(1, n_val))
    better = [r for r in rows if r["val_acc"] > alone["val_acc"] + margin]
    return max(better, key=lambda r: (r["val_acc"], -rows.index(r))) if better else alone
