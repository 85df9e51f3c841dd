"""What a method's entry point receives: the prepared data, the checked teachers, the settings of every training
stage, and the run's record, which the method adds to."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .loop import DistillResult, accuracy, distill


@dataclass
class Context:
    x: np.ndarray  # preprocessed training inputs, unlabeled transfer samples included
    y: np.ndarray  # their labels, UNLABELED for the transfer samples
    x_val: np.ndarray
    y_val: np.ndarray
    data_fp: str  # fingerprints of x and x_val: the keys of the teachers' target caches
    val_fp: str
    input_shape: Tuple[int, ...]
    num_classes: int
    teachers: List[Any]  # loaded and checked Teacher objects; one unless the method is multi
    common: Dict[str, Any]  # distill() settings every stage shares
    final: Dict[str, Any]  # distill() settings only the stage training the final student takes (QAT/pruning, augmentation)
    config: Dict[str, Any]  # the run's recorded settings; methods add what they chose
    extra: Dict[str, Any]  # method-specific results recorded beside the history (assistants, generations...)
    online: bool  # the teacher runs on every batch (augmentation without fixed views)
    augment: str
    views: Optional[int]  # fixed augmented views the teacher labels ahead of training, None when not so
    student: Any  # the student as the caller named it (progressive builds its assistants from its family)
    feature_layers: Optional[Sequence[Tuple[str, str]]]
    beta: Optional[float]
    teacher_weights: Optional[Sequence[float]]
    generations: int
    max_gap: float
    crd_negatives: int
    cache: bool
    progress: bool
    seed: int
    teacher_seconds: float = 0.0  # teacher inference spent on targets, what the run reports

    @property
    def teacher(self):
        return self.teachers[0]

    def logits(self, teacher, xs: np.ndarray, fp: str) -> np.ndarray:
        """The teacher's soft labels on ``xs`` (fingerprint ``fp``), from the cache when there, timed."""
        from ..teachers import soft_labels

        start = time.perf_counter()
        out = soft_labels(teacher, xs, fp, cache=self.cache)
        self.teacher_seconds += time.perf_counter() - start
        return out

    def feature_targets(self, outputs, tag: str):
        """``(targets, None)`` with the teacher's logits and its ``outputs`` (see
        :func:`edgekd.distill.features.teacher_targets`) cached, or ``(None, online function)``."""
        from .features import teacher_targets

        arrays, online_fn, mode, seconds = teacher_targets(self.teacher, outputs, self.x, self.data_fp, tag, online=self.online, cache=self.cache)
        self.teacher_seconds += seconds
        self.config["teacher_targets"] = mode
        if arrays is None:
            return None, online_fn
        return {**arrays, "logits": self.logits(self.teacher, self.x, self.data_fp)}, None

    def beta_or(self, default: float) -> float:
        """The feature term's weight: the one given, else the method's default; recorded."""
        beta = float(self.beta) if self.beta is not None else default
        self.config["beta"] = beta
        return beta

    def fit(self, model, desc: str, **given) -> DistillResult:
        """Train the run's final student on the training set; ``given``: what :func:`distill` learns from
        (``teacher_logits``, ``targets``, ``online_teacher``, ``terms``)."""
        return distill(model, self.x, self.y, desc=desc, **given, **self.common, **self.final)

    def val_accuracy(self, model) -> float:
        return accuracy(model, self.x_val, self.y_val)
