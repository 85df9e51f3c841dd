"""Several teachers, one target: their softened outputs mixed with given or accuracy-derived weights.

Specialists may cover only some classes. Each class's target probability is the weighted mean over the teachers
that know that class (a specialist's softened distribution is over its own classes), and the result is
renormalised over all classes. With generalists only, this is the plain weighted mean of their distributions.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from edgekd_runtime.drift import softmax

from ..errors import TeacherError


def combine(logits: List[np.ndarray], weights: Sequence[float], num_classes: int, temperature: float,
            classes: Optional[List[Optional[Sequence[int]]]] = None) -> np.ndarray:
    """Mixed soft targets (N, num_classes) at ``temperature`` from each teacher's logits."""
    if len(logits) != len(weights):
        raise TeacherError(f"{len(logits)} teachers but {len(weights)} weights", "give one weight per teacher")
    w = np.asarray(weights, np.float64)
    if np.any(w < 0) or w.sum() <= 0:
        raise TeacherError(f"teacher weights must be non-negative and not all zero (got {list(weights)})")
    classes = classes or [None] * len(logits)
    n = logits[0].shape[0]
    mass = np.zeros((n, num_classes))
    cover = np.zeros(num_classes)
    for z, wi, cls in zip(logits, w, classes):
        cls = list(range(num_classes)) if cls is None else list(cls)
        mass[:, cls] += wi * softmax(np.asarray(z, np.float64) / temperature)
        cover[cls] += wi
    if np.any(cover == 0):
        missing = [int(c) for c in np.flatnonzero(cover == 0)]
        raise TeacherError(f"no teacher covers classes {missing}", "add a teacher (or a specialist) for them")
    probs = mass / cover
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def accuracy_weights(logits: List[np.ndarray], labels: np.ndarray, classes: Optional[List[Optional[Sequence[int]]]] = None) -> List[float]:
    """Each teacher's validation accuracy, on the samples of the classes it covers, normalised to sum to 1."""
    classes = classes or [None] * len(logits)
    accs = []
    for z, cls in zip(logits, classes):
        if cls is None:
            acc = float(np.mean(z.argmax(1) == labels))
        else:
            cls = np.asarray(cls)
            keep = np.isin(labels, cls)
            acc = float(np.mean(cls[z[keep].argmax(1)] == labels[keep])) if keep.any() else 0.0
        accs.append(acc)
    total = sum(accs)
    if total <= 0:
        raise TeacherError("every teacher scores 0% on the validation data", "check the teachers and the validation labels")
    return [a / total for a in accs]
