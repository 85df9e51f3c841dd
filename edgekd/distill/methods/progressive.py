"""Progressive distillation through teacher assistants (Mirzadeh et al., 2020): the teacher distils into assistants
of the student's family, each smaller than the last, and the last assistant teaches the student (the sizing of the
chain: :mod:`edgekd.distill.progressive`)."""
from __future__ import annotations

import os

from ...errors import TeacherError
from ..loop import DistillResult
from . import Traits, kd

# Each stage trains from its teacher's cached logits; fixed views augment the final student.
TRAITS = Traits(online_teacher=False, fixed_views=True)


def run(ctx, student) -> DistillResult:
    from ...students import StudentSpec
    from ...teachers import load_teacher
    from ..progressive import assistant_params, build_assistant

    teacher = ctx.teacher
    if teacher.keras_model is None:
        raise TeacherError(f"progressive distillation sizes assistants from the teacher's parameter count, unknown for a {teacher.kind} teacher",
                           "pass a Keras teacher, or use --method kd")
    spec = ctx.student if isinstance(ctx.student, StudentSpec) else None
    if spec is None and isinstance(ctx.student, str) and not ctx.student.endswith((".keras", ".h5")) and not os.path.isdir(ctx.student):
        spec = StudentSpec.parse(ctx.student)
    # A student without a family spec (a model, a model file, one sized for a profile): the assistants are MobileNetV3s.
    spec = spec or StudentSpec("mobilenetv3", width=1.0, depth=3)
    sizes = assistant_params(teacher.keras_model.count_params(), student.count_params(), ctx.max_gap)
    current = teacher
    chain = []
    for i, target in enumerate(sizes):
        a_spec, assistant = build_assistant(spec, ctx.input_shape, ctx.num_classes, target, seed=ctx.seed)
        res = kd.train(ctx, current, assistant, False, f"assistant {i + 1}/{len(sizes)}")
        chain.append({"spec": str(a_spec), "params": int(res.student.count_params()), "val_accuracy": ctx.val_accuracy(res.student),
                      "seconds_per_epoch": res.seconds_per_epoch})
        current = load_teacher(res.student, name=f"assistant{i + 1}")
    ctx.extra["assistants"] = chain
    ctx.extra["max_gap"] = ctx.max_gap
    return kd.train(ctx, current, student, True, "student")
