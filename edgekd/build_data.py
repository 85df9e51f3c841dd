"""The build's data: the validation split held out of the training data, every set preprocessed once, and the
teacher checked and scored on them before anything is trained."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from edgekd_runtime import Preprocessing

from .bundle_assembly import EVAL_SAMPLES
from .data import Dataset
from .errors import TeacherError
from .preprocess import check_teacher
from .preprocess import label as preprocess_label
from .preprocess import resolve as resolve_preprocessing
from .search_setup import validation_split
from .selection import TrainingSet
from .teachers import Teacher


@dataclass
class BuildData:
    train_all: Dataset
    test: Dataset
    train: Dataset  # train_all less the validation split
    val: Dataset
    val_note: Optional[str]  # why the validation split is too small to rank students on, else None
    pre: Preprocessing
    pre_label: str  # how messages name it (edgekd.preprocess.label)
    x_train: np.ndarray  # preprocessed
    x_val: np.ndarray
    x_test: np.ndarray
    num_classes: int
    n_eval: int  # eval samples the bundle carries

    @property
    def input_shape(self):
        return self.train.input_shape


def prepare_data(train_all: Dataset, test: Dataset, seed: int, say: Callable[[str], None], preprocess=None) -> BuildData:
    """The validation split for choosing the student and stopping its training (the eval set only measures), and
    every set preprocessed once (by ``preprocess``; auto derives the map from the training data)."""
    num_classes = max(train_all.num_classes, test.num_classes)
    train, val, val_note = validation_split(train_all, num_classes, seed)
    if val_note:
        say(f"warning: {val_note}")
    pre = resolve_preprocessing(preprocess, train_all)
    x_train, x_val, x_test = (pre.apply(s.x).astype(np.float32) for s in (train, val, test))
    return BuildData(train_all, test, train, val, val_note, pre, preprocess_label(preprocess, pre), x_train, x_val, x_test, num_classes, min(len(test), EVAL_SAMPLES))


def check_teacher_on_eval(teacher: Teacher, d: BuildData, say: Callable[[str], None]) -> np.ndarray:
    """Before anything is priced or trained: the teacher's logits on the eval data, its accuracy there under the
    build's preprocessing said, and a stop when it is near chance (the preprocessing is then almost surely not the
    teacher's)."""
    t_test = teacher.logits(d.x_test)
    if t_test.shape[1] != d.num_classes:
        raise TeacherError(f"teacher {teacher.name} outputs {t_test.shape[1]} classes but the data has {d.num_classes}", "pass the teacher trained for these labels")
    acc = float(np.mean(t_test.argmax(1) == d.test.y))
    say(f"teacher {teacher.name}: {100 * acc:.2f}% on the eval data ({len(d.test)} samples), inputs preprocessed as {d.pre_label}")
    check_teacher(teacher.name, acc, d.num_classes, len(d.test), "the eval data", d.pre_label)
    return t_test


def score_teacher(teacher: Teacher, d: BuildData, t_train: np.ndarray, t_val: np.ndarray, t_test: np.ndarray) -> Tuple[TrainingSet, float, float]:
    """(training set with the teacher's labels, teacher accuracy on the eval data, on the eval samples the bundle carries)."""
    if t_train.shape[1] != d.num_classes:
        raise TeacherError(f"teacher {teacher.name} outputs {t_train.shape[1]} classes but the data has {d.num_classes}", "pass the teacher trained for these labels")
    teacher_acc = float(np.mean(t_test.argmax(1) == d.test.y))
    teacher_eval_acc = float(np.mean(t_test[:d.n_eval].argmax(1) == d.test.y[:d.n_eval]))
    tset = TrainingSet(d.x_train, d.train.y, t_train, d.x_val, d.val.y, t_val, tuple(d.input_shape), d.num_classes)
    return tset, teacher_acc, teacher_eval_acc
