"""A run's inputs: the data, split and preprocessed for training, and the teachers, loaded and checked against it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data import Dataset, load_dataset, split, validate
from ..errors import DataError, TeacherError
from ..preprocess import label as preprocess_label
from ..preprocess import resolve as resolve_preprocessing
from .losses import UNLABELED

VAL_FRACTION = 0.1  # held out of the training data when no validation set is given


@dataclass
class Prepared:
    x: np.ndarray  # training inputs in the student's range, unlabeled transfer samples appended
    y: np.ndarray  # int64 labels, UNLABELED for the transfer samples
    x_val: np.ndarray
    y_val: np.ndarray
    input_shape: Tuple[int, ...]
    num_classes: int
    preprocessing: Any  # edgekd_runtime.Preprocessing, raw -> the student's range
    val_samples: int
    preprocess_label: str = ""  # how messages name the preprocessing (edgekd.preprocess.label)


def prepare(data, val=None, unlabeled=None, seed: int = 0, preprocess=None) -> Prepared:
    """``data``/``val``/``unlabeled`` (paths, 'digits' or :class:`Dataset`) as float32 arrays mapped by ``preprocess``
    (see :mod:`edgekd.preprocess`; None or "auto": [0, 1] by edgekd's guess); without ``val``, a stratified 10% of
    ``data`` is held out."""
    train, val_set = train_and_val(data, val, seed)
    if val_set.input_shape != train.input_shape:
        raise DataError(f"validation samples are {val_set.input_shape} but training samples {train.input_shape}", "both sets must have the same sample shape")
    pre = resolve_preprocessing(preprocess, train)
    x = pre.apply(train.x).astype(np.float32)
    y = train.y.astype(np.int64)
    if unlabeled is not None:
        extra = dataset(unlabeled, "unlabeled", labeled=False)
        if extra.input_shape != train.input_shape:
            raise DataError(f"unlabeled samples are {extra.input_shape} but training samples {train.input_shape}", "both sets must have the same sample shape")
        x = np.concatenate([x, pre.apply(extra.x).astype(np.float32)])
        y = np.concatenate([y, np.full(len(extra), UNLABELED, np.int64)])
    return Prepared(x, y, pre.apply(val_set.x).astype(np.float32), val_set.y, train.input_shape,
                    max(train.num_classes, val_set.num_classes), pre, len(val_set), preprocess_label(preprocess, pre))


def train_and_val(data, val, seed):
    """The training set and a validation set: ``val`` when given, else a stratified hold-out of ``data``."""
    train = dataset(data, "data")
    if val is not None:
        return train, dataset(val, "val")
    if len(train) < 20:
        raise DataError(f"{train.source}: {len(train)} samples are too few to hold out a validation split", "pass --val")
    return split(train, VAL_FRACTION, seed=seed)


def dataset(source, what: str, labeled: bool = True) -> Dataset:
    if isinstance(source, Dataset):
        validate(source, labeled)
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"--{what} must be a path, 'digits' or a Dataset (got {type(source).__name__})")
    return load_dataset(str(source), labeled=labeled)


def load_teachers(teachers, x: np.ndarray, num_classes: int, classes: Optional[Sequence] = None, weights: Optional[Sequence[float]] = None) -> List:
    """Each teacher loaded (with the classes it covers, for specialists) and probed on ``x`` before any training."""
    from ..teachers import check_teachers, load_teacher

    classes = list(classes) if classes is not None else [None] * len(teachers)
    if len(classes) != len(teachers):
        raise TeacherError(f"{len(teachers)} teachers but {len(classes)} class lists", "give one class list per teacher (or none)")
    loaded = [load_teacher(t, classes=c) for t, c in zip(teachers, classes)]
    check_teachers(loaded, x, num_classes)
    if weights is not None and len(weights) != len(loaded):
        raise TeacherError(f"{len(loaded)} teachers but {len(weights)} weights", "give one weight per teacher")
    return loaded


def describe_teachers(teachers, x_val: np.ndarray, y_val: np.ndarray, val_fp: str, cache: bool) -> List[Dict[str, Any]]:
    """What the run records of each teacher, with its accuracy on the validation samples of its classes."""
    from ..teachers import soft_labels

    out = []
    for t in teachers:
        z = soft_labels(t, x_val, val_fp, cache=cache)
        pred = np.asarray(t.classes)[z.argmax(1)] if t.classes is not None else z.argmax(1)
        keep = np.isin(y_val, t.classes) if t.classes is not None else np.ones(len(y_val), bool)
        out.append({**t.describe(), "val_accuracy": float(np.mean(pred[keep] == y_val[keep])) if keep.any() else None,
                    "params": int(t.keras_model.count_params()) if t.keras_model is not None else None})
    return out


def check_teacher_accuracy(teachers, described: List[Dict[str, Any]], d: Prepared, say: bool) -> None:
    """Before training: each teacher's validation accuracy under the run's preprocessing, printed when ``say``, and
    a stop when one is near chance (see :func:`edgekd.preprocess.check_teacher`)."""
    import sys

    from ..preprocess import check_teacher

    for t, row in zip(teachers, described):
        classes = len(t.classes) if t.classes is not None else d.num_classes
        samples = int(np.sum(np.isin(d.y_val, t.classes))) if t.classes is not None else len(d.y_val)
        acc = row.get("val_accuracy")
        if say and acc is not None:
            print(f"teacher {t.name}: {100 * acc:.2f}% on {samples} validation samples, inputs preprocessed as {d.preprocess_label}",
                  file=sys.stderr)
        check_teacher(t.name, acc, classes, samples, "the validation data", d.preprocess_label)
