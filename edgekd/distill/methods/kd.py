"""Knowledge distillation (Hinton et al., 2015): the student learns the teacher's softened logits beside the labels.

:func:`train` is also the stage of the multi-stage methods (progressive, self). The teacher's logits come from the
soft-label cache, from the teacher run on every batch (augmentation), or from fixed augmented views it labelled once.
"""
from __future__ import annotations

import hashlib

import numpy as np
from tqdm.auto import tqdm

from ..augment import fixed_views
from ..loop import DistillResult, distill
from . import Traits

TRAITS = Traits(fixed_views=True)


def run(ctx, student) -> DistillResult:
    return train(ctx, ctx.teacher, student, last=True, desc="kd")


def train(ctx, teacher, student, last: bool, desc: str) -> DistillResult:
    """Distil ``teacher`` into ``student``; ``last`` marks the stage that trains the run's final student, the only
    one that is augmented, quantization-aware or pruned."""
    x, y = ctx.x, ctx.y
    if ctx.common["alpha"] == 0.0 and last:
        # Labels only: the teacher term weighs nothing, so the teacher is not run at all.
        ctx.config["teacher_online"], ctx.config["views"] = False, None
        return ctx.fit(student, f"{desc} labels only", teacher_logits=np.zeros((len(x), ctx.num_classes), np.float32))
    if ctx.online and last:
        return ctx.fit(student, desc, online_teacher=teacher.tf_logits)
    if ctx.views is not None and last:
        fixed = fixed_views(ctx.augment, len(x), ctx.input_shape, ctx.views, ctx.seed)
        labels = np.stack([ctx.logits(teacher, fixed.images(x, k), _view_fingerprint(ctx.data_fp, fixed.key(k)))
                           for k in tqdm(range(fixed.count), desc="teacher labels views", unit="view", disable=not ctx.progress, leave=False)])
        # The views are the augmentation: the online augmenter in ctx.final stays out.
        return distill(student, x, y, views=(fixed, labels), desc=f"{desc} {ctx.views} views", **ctx.common, wrap=ctx.final["wrap"])
    if last:
        return ctx.fit(student, desc, teacher_logits=ctx.logits(teacher, x, ctx.data_fp))
    return distill(student, x, y, ctx.logits(teacher, x, ctx.data_fp), desc=desc, **ctx.common)


def _view_fingerprint(data_fp: str, key: str) -> str:
    return hashlib.sha256(f"{data_fp}:{key}".encode()).hexdigest()
