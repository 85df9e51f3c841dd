"""Several teachers, one target: their softened outputs mixed with given or validation-accuracy weights, specialists
counted only on their classes (the mixing: :mod:`edgekd.distill.multi_teacher`)."""
from __future__ import annotations

from ..loop import DistillResult
from . import Traits

# The teachers' outputs are mixed ahead of training, so they cannot run on augmented batches.
TRAITS = Traits(several_teachers=True, online_teacher=False)


def run(ctx, student) -> DistillResult:
    from ..multi_teacher import accuracy_weights, combine

    classes = [t.classes for t in ctx.teachers]
    # Labelled even when the weights are given: the run reports every teacher's validation accuracy anyway.
    val_logits = [ctx.logits(t, ctx.x_val, ctx.val_fp) for t in ctx.teachers]
    weights = list(ctx.teacher_weights) if ctx.teacher_weights is not None else accuracy_weights(val_logits, ctx.y_val, classes)
    probs = combine([ctx.logits(t, ctx.x, ctx.data_fp) for t in ctx.teachers], weights, ctx.num_classes, ctx.common["temperature"], classes)
    ctx.config["teacher_weights"] = weights
    ctx.config["teacher_weights_from"] = "given" if ctx.teacher_weights is not None else "validation accuracy"
    return ctx.fit(student, "multi", targets={"probs": probs})
