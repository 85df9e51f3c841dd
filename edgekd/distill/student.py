"""The student a run trains: from a family spec, a model file (its architecture, trained afresh), a model object,
a device profile (the build's tournament, :func:`choose_for_profile`), or the teacher's own architecture for ``self``."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Tuple

from ..errors import EdgekdError

# A run given a profile but no student spends this share of its time budget choosing one (the rest trains it), or
# TOURNAMENT_SECONDS when it has no budget.
TOURNAMENT_SHARE = 1 / 3
TOURNAMENT_SECONDS = 300.0


def choose_for_profile(profile: str, teacher, d, clock, batch_size: int, seed: int, say: Callable[[str], None],
                       cache: bool = True) -> Tuple[Any, Dict[str, Any]]:
    """(StudentSpec, record): the smallest student that fits ``profile`` and keeps 97% of ``teacher``'s validation
    accuracy, by the build's tournament on the run's own split ``d`` (:class:`edgekd.distill.inputs.Prepared`).
    A validation split too small to rank on falls back to the largest fitting student, with a warning."""
    from ..budget import Budget, format_seconds
    from ..errors import BudgetError
    from ..profiles import load_profile
    from ..ranking import rank_students, training_set
    from ..selection import MIN_VAL_SAMPLES
    from ..sizing import MAX_STUDENT_RATIO
    from .losses import UNLABELED

    prof = load_profile(profile)
    # The tournament's clock starts before the teacher labels the data: on large data that pass is part of its share.
    tournament_clock = Budget(clock.remaining() * TOURNAMENT_SHARE if clock is not None else TOURNAMENT_SECONDS)
    seconds = tournament_clock.total
    labelled = d.y != UNLABELED
    note = ""
    if teacher is None:
        note = "every teacher covers only some classes, so none can rank students on accuracy: the largest fitting student instead"
    elif len(d.x_val) < MIN_VAL_SAMPLES:
        note = (f"a validation split of {len(d.x_val)} samples is too small to rank students on accuracy (needs {MIN_VAL_SAMPLES}): "
                f"the largest fitting student instead (pass a larger --val)")
    if not note:
        tset = training_set(teacher, d.x[labelled], d.y[labelled], d.x_val, d.y_val, d.num_classes, cache=cache)
        try:
            ranked = rank_students(prof, teacher, tset, tournament_clock, batch_size=batch_size, seed=seed, max_student_ratio=MAX_STUDENT_RATIO)
        except BudgetError:
            note = (f"{format_seconds(seconds)} ({100 * TOURNAMENT_SHARE:.0f}% of the time budget) is too short to rank students on "
                    f"accuracy: the largest fitting student instead (raise --time-budget for a tournament)")
        else:
            say(ranked.table())
            return ranked.winner.report.spec, {"how": "tournament", **ranked.to_dict()}
    say(f"warning: {note}")
    fit = largest_fitting(prof, teacher, d.input_shape, d.num_classes)
    return fit.spec, {"how": "largest fitting", "chosen": str(fit.spec), "note": note}


def largest_fitting(prof, teacher, input_shape, num_classes: int):
    """The largest student that fits ``prof`` within `edgekd build`'s cap on the teacher's parameters."""
    from ..sizing import MAX_STUDENT_RATIO, size_student

    cap = int(teacher.keras_model.count_params() * MAX_STUDENT_RATIO) if teacher is not None and teacher.keras_model is not None else None
    return size_student(prof, input_shape, num_classes, max_params=cap)


def resolve(student, profile, method: str, teacher, input_shape, num_classes: int, seed: int):
    """A fresh tf_keras model emitting logits for ``input_shape`` -> ``num_classes``."""
    import tf_keras as keras

    from ..students import StudentSpec, build_student

    if student is None and profile is None:
        if method == "self":
            from .self_distill import teacher_architecture

            return teacher_architecture(teacher.keras_model, seed=seed)
        raise EdgekdError("no student given", "pass --student SPEC (e.g. mobilenetv3:width=0.5) or --profile DEVICE")
    if student is None:
        from ..profiles import load_profile

        return build_student(largest_fitting(load_profile(profile), teacher, input_shape, num_classes).spec, input_shape, num_classes, seed=seed)
    if isinstance(student, keras.Model):
        return student
    if isinstance(student, StudentSpec):
        return build_student(student, input_shape, num_classes, seed=seed)
    text = str(student)
    if text.endswith((".keras", ".h5")) or os.path.isdir(text):
        if not os.path.exists(text):
            raise EdgekdError(f"student model file not found: {text}", "pass a family spec such as mobilenetv3:width=0.5, or an existing .keras/.h5 file")
        try:
            template = keras.models.load_model(text, compile=False)
        except Exception as exc:
            raise EdgekdError(f"cannot load student architecture from {text}: {type(exc).__name__}", "save it with tf_keras model.save()")
        from ..students.head import without_softmax

        template = without_softmax(template, f"student {text}", input_shape=input_shape)
        keras.utils.set_random_seed(seed)
        model = keras.models.clone_model(template)  # same architecture, fresh weights
        if tuple(model.input_shape[1:]) != tuple(input_shape) or model.output_shape[-1] != num_classes:
            raise EdgekdError(f"student {text} maps {model.input_shape[1:]} -> {model.output_shape[-1]} classes but the data is {input_shape} with {num_classes}",
                              "build the student for this data's input and classes")
        return model
    return build_student(StudentSpec.parse(text), input_shape, num_classes, seed=seed)


def describe(student, profile) -> Dict[str, Any]:
    """How the student was chosen, for the run's record."""
    if student is None:
        return {"profile": profile} if profile else {"from": "teacher architecture"}
    from ..students import StudentSpec

    if isinstance(student, (str, os.PathLike, StudentSpec)):
        return {"spec": str(student)}
    return {"model": getattr(student, "name", type(student).__name__)}
