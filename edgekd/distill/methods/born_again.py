"""Self-distillation, born-again style (Furlanello et al., 2018), the method ``self``: students of the teacher's own
architecture, each generation taught by the one before (the architecture copy: :mod:`edgekd.distill.self_distill`)."""
from __future__ import annotations

from ...errors import EdgekdError
from ..loop import DistillResult
from . import Traits, kd

# Each generation trains from its teacher's cached logits; fixed views augment the final student.
TRAITS = Traits(online_teacher=False, fixed_views=True)


def run(ctx, student) -> DistillResult:
    from ...teachers import load_teacher
    from ..self_distill import teacher_architecture

    if ctx.generations < 1:
        raise EdgekdError(f"generations must be at least 1 (got {ctx.generations})")
    current = ctx.teacher
    history = []
    for g in range(ctx.generations):
        last = g == ctx.generations - 1
        model = student if last else teacher_architecture(student, seed=ctx.seed + g + 1)
        res = kd.train(ctx, current, model, last, f"generation {g + 1}/{ctx.generations}")
        history.append({"generation": g + 1, "val_accuracy": ctx.val_accuracy(res.student)})
        if not last:
            current = load_teacher(res.student, name=f"generation{g + 1}")
    ctx.extra["generations"] = history
    return res
