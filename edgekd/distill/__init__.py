"""Distil a teacher into a student.

- :func:`distill` (:mod:`.loop`): the training loop every method shares, on arrays and cached or online targets;
- :func:`run_distillation` (:mod:`.run`): teachers + data + a method name -> a trained student and its record,
  what ``edgekd distill`` calls; each method is one module of :mod:`.methods`.
"""
from __future__ import annotations

from .losses import UNLABELED, kd_loss, soft_target_loss
from .loop import DistillResult, distill
from .record import DistillRun
from .run import run_distillation, run_tuning

__all__ = ["DistillResult", "DistillRun", "distill", "run_distillation", "run_tuning", "kd_loss", "soft_target_loss", "UNLABELED"]
