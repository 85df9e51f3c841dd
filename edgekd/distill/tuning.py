"""Temperature/alpha search: a short distillation per grid point on a held-out validation split."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence

DEFAULT_TEMPERATURES = (2.0, 3.0, 4.0, 6.0, 8.0)
DEFAULT_ALPHAS = (0.5, 0.7, 0.9)


@dataclass
class TuneResult:
    rows: List[Dict[str, float]] = field(default_factory=list)  # temperature, alpha, val_accuracy, seconds

    @property
    def best(self) -> Dict[str, float]:
        # Ties go to the earlier grid point (lower T, lower alpha): the gentler setting.
        return max(self.rows, key=lambda r: r["val_accuracy"])

    def table(self) -> str:
        alphas = sorted({r["alpha"] for r in self.rows})
        temps = sorted({r["temperature"] for r in self.rows})
        acc = {(r["temperature"], r["alpha"]): r["val_accuracy"] for r in self.rows}
        lines = ["T \\ alpha " + "".join(f"{a:>9g}" for a in alphas)]
        for t in temps:
            lines.append(f"{t:<10g}" + "".join(f"{100 * acc[(t, a)]:>8.2f}%" for a in alphas))
        b = self.best
        lines.append(f"best: T={b['temperature']:g} alpha={b['alpha']:g} ({100 * b['val_accuracy']:.2f}%)")
        return "\n".join(lines)


def tune(make_student: Callable, x, y, teacher_logits, x_val, y_val, *, temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
         alphas: Sequence[float] = DEFAULT_ALPHAS, epochs: int = 5, batch_size: int = 64, learning_rate: float = 3e-3,
         seed: int = 0, progress: bool = False) -> TuneResult:
    """Distil a fresh ``make_student()`` (same seed each time) at every (T, alpha) and score it on the validation split."""
    from .loop import accuracy, distill

    result = TuneResult()
    for t in temperatures:
        for a in alphas:
            student = make_student()
            run = distill(student, x, y, teacher_logits, temperature=t, alpha=a, epochs=epochs, batch_size=batch_size,
                          learning_rate=learning_rate, progress=progress, seed=seed, desc=f"tune T={t:g} a={a:g}")
            result.rows.append({"temperature": float(t), "alpha": float(a), "val_accuracy": accuracy(run.student, x_val, y_val), "seconds_per_epoch": run.seconds_per_epoch})
    return result
