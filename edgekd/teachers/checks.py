"""The checks run on teachers before any training: they must take the data's samples and score its classes."""
from __future__ import annotations

from typing import List

import numpy as np

from ..errors import TeacherError
from .teacher import Teacher


def check_teachers(teachers: List[Teacher], x: np.ndarray, num_classes: int) -> None:
    """Refuse, before any training, teachers that disagree with the data or with each other."""
    if len(x) == 0:
        raise TeacherError("the data set is empty", "pass training data with at least one sample")
    sample_shape = tuple(int(v) for v in x.shape[1:])
    for t in teachers:
        if t.input_shape is not None and tuple(t.input_shape) != sample_shape:
            others = [u for u in teachers if u is not t and u.input_shape is not None and tuple(u.input_shape) != tuple(t.input_shape)]
            if others:
                raise TeacherError(f"teachers disagree on input shape: {t.name} takes {t.input_shape}, {others[0].name} takes {others[0].input_shape}",
                                   "all teachers must take the same inputs as the student")
            raise TeacherError(f"teacher {t.name} takes inputs of shape {t.input_shape} but the data's samples are {sample_shape}",
                               "resize the data to the teacher's input, or pass the matching teacher")
        try:
            outputs = t.probe(x)
        except TeacherError:
            raise
        except Exception as exc:
            raise TeacherError(f"teacher {t.name} fails on the data: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
                               "check the teacher's expected input shape and preprocessing")
        expected = len(t.classes) if t.classes is not None else num_classes
        if outputs != expected:
            what = f"its {len(t.classes)} classes" if t.classes is not None else f"the data's {num_classes} classes"
            raise TeacherError(f"teacher {t.name} outputs {outputs} scores but {what} need {expected}",
                               "pass the teacher trained for these labels (or --classes for a specialist)")
        if t.classes is not None and (min(t.classes) < 0 or max(t.classes) >= num_classes):
            raise TeacherError(f"specialist {t.name} names classes outside 0..{num_classes - 1}: {t.classes}")
