"""The end of a build: the bundle's accuracy set beside the teacher's on the same eval samples, and the check that
it keeps enough of it (a warning, an error with ``strict``, always an error at chance)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .convert.verified import VerifiedSet
from .errors import FitError


def build_summary(verified: VerifiedSet, n_eval: int, teacher_eval_acc: float) -> Dict[str, Any]:
    """The bundle's accuracy against the teacher's on the same eval samples, and the conversion's notes."""
    bundle_acc = verified.converted[0].artifact.host_metrics.get("accuracy")
    return {"eval_samples": n_eval, "teacher_accuracy": teacher_eval_acc, "bundle_accuracy": bundle_acc,
            "percent_of_teacher": 100.0 * bundle_acc / teacher_eval_acc if bundle_acc is not None and teacher_eval_acc else None,
            "notes": verified.notes}


def check_bundle_accuracy(bundle_acc: Optional[float], teacher_acc: float, *, retain: float, num_classes: int, n_eval: int,
                          strict: bool, bundle, say: Callable[[str], None]) -> None:
    """A bundle below ``retain`` of the teacher is a warning (an error when ``strict``); one no better than chance
    is always an error: the bundle is complete on disk, but nothing in it should ship."""
    if bundle_acc is None or bundle_acc >= retain * teacher_acc:
        return
    message = (f"the bundle reaches {100 * bundle_acc:.2f}% on {n_eval} eval samples, {100 * bundle_acc / teacher_acc:.1f}% of the "
               f"teacher's {100 * teacher_acc:.2f}% on the same samples (target {100 * retain:g}%)")
    chance = 1.0 / num_classes
    at_chance = bundle_acc < 1.5 * chance < teacher_acc
    if at_chance:
        message += f"; that is no better than chance ({100 * chance:.1f}%), so the bundle at {bundle} must not ship"
    if strict or at_chance:
        raise FitError(message, "give it more --time-budget, a larger --max-student-ratio, or check the data")
    say(f"warning: {message}")
