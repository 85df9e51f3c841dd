"""Progressive distillation through teacher assistants (Mirzadeh et al., 2020): when the student is far smaller
than the teacher, the teacher first distils into an assistant sized between them, which then teaches the student.

The chain is automatic: assistants are added until no step shrinks the model by more than ``max_gap`` times in
parameters, and their sizes are spaced geometrically (each step shrinks by the same factor).
"""
from __future__ import annotations

import math
from typing import List

from ..errors import EdgekdError
from ..students import StudentSpec, build_student

DEFAULT_MAX_GAP = 10.0


def assistant_params(teacher_params: int, student_params: int, max_gap: float = DEFAULT_MAX_GAP) -> List[int]:
    """Target parameter counts of the assistants, largest first (empty when one step is small enough)."""
    if max_gap <= 1:
        raise EdgekdError(f"max_gap must be above 1 (got {max_gap})")
    ratio = teacher_params / max(1, student_params)
    if ratio <= max_gap:
        return []
    steps = math.ceil(math.log(ratio) / math.log(max_gap))
    return [int(round(teacher_params * ratio ** (-k / steps))) for k in range(1, steps)]


def build_assistant(spec: StudentSpec, input_shape, num_classes: int, target_params: int, seed: int = 0):
    """The student's family widened until its parameter count is closest to ``target_params`` (bisection on width)."""
    lo, hi = spec.width, spec.width
    count = lambda w: build_student(spec.with_(width=w), input_shape, num_classes, seed=seed).count_params()  # noqa: E731
    while count(hi) < target_params and hi < 64 * spec.width:
        lo, hi = hi, hi * 2
    for _ in range(8):
        mid = (lo + hi) / 2
        if count(mid) < target_params:
            lo = mid
        else:
            hi = mid
    width = hi if abs(count(hi) - target_params) < abs(count(lo) - target_params) else lo
    assistant_spec = spec.with_(width=round(width, 3))
    return assistant_spec, build_student(assistant_spec, input_shape, num_classes, seed=seed)
