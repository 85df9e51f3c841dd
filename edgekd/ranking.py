"""``edgekd size --data``: the fitting students ranked by accuracy (the build's tournament, without the build).

>>> from edgekd.profiles import load_profile                                     # doctest: +SKIP
>>> ranked = rank_by_accuracy(load_profile("cortex-m4f"), "teacher.keras", "train.npz", time_budget="5m")
>>> print(ranked.table())
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from .budget import Budget, format_seconds, parse_duration
from .data import load_dataset, preprocessing_for
from .errors import BudgetError
from .profiles import DeviceProfile
from .search_setup import student_families, validation_split
from .selection import RETAIN, Entry, TrainingSet, candidate_pool, fit_schedule, probe_speed, tournament
from .teachers import data_fingerprint, load_teacher, soft_labels


@dataclass
class Ranking:
    entries: List[Entry]
    winner: Optional[Entry]
    teacher_val_accuracy: float
    target: float
    seconds: float
    note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"chosen": str(self.winner.report.spec) if self.winner else None, "teacher_val_accuracy": self.teacher_val_accuracy,
                "target": self.target, "seconds": self.seconds, "note": self.note, "candidates": [e.to_dict() for e in self.entries]}

    def table(self) -> str:
        lines = [f"teacher {100 * self.teacher_val_accuracy:.2f}% on the validation split; target {100 * self.target:.2f}%; "
                 f"{format_seconds(self.seconds)}" + (f"; {self.note}" if self.note else "")]
        lines.append(f"{'student':44s} {'params':>9s} {'MACs':>11s}  val accuracy by round")
        for e in sorted(self.entries, key=lambda e: e.size):
            mark = "  <- chosen" if e is self.winner else (f"  (out in round {e.out_in_round + 1})" if e.out_in_round is not None else "")
            accs = " ".join(f"{100 * r['val_acc']:.2f}%" for r in e.rounds) or "-"
            lines.append(f"{str(e.report.spec):44s} {e.report.cost.params:>9,d} {e.report.cost.macs:>11,d}  {accs}{mark}")
        return "\n".join(lines)


def rank_by_accuracy(profile: DeviceProfile, teacher, data, family: Optional[str] = None, upscale: bool = False,
                     time_budget="5m", retain: float = RETAIN, max_student_ratio: float = 0.25, batch_size: int = 64, seed: int = 0) -> Ranking:
    """Train the students that fit ``profile`` on ``teacher``'s soft labels in a successive-halving tournament
    within ``time_budget``; the winner is the smallest that reaches ``retain`` of the teacher's validation accuracy."""
    clock = Budget(parse_duration(time_budget))
    ds = load_dataset(str(data))
    train, val, note = validation_split(ds, ds.num_classes, seed)
    pre = preprocessing_for(ds)
    x, x_val = pre.apply(train.x).astype(np.float32), pre.apply(val.x).astype(np.float32)
    t = load_teacher(teacher)
    tset = training_set(t, x, train.y, x_val, val.y, ds.num_classes)
    return rank_students(profile, t, tset, clock, family=family, upscale=upscale, retain=retain, max_student_ratio=max_student_ratio,
                         batch_size=batch_size, seed=seed, note=note or "")


def training_set(teacher, x, y, x_val, y_val, num_classes: int, cache: bool = True) -> TrainingSet:
    """Preprocessed arrays with ``teacher``'s soft labels (from the label cache when it has them and ``cache``)."""
    return TrainingSet(x, y, soft_labels(teacher, x, data_fingerprint(x), cache=cache), x_val, y_val,
                       soft_labels(teacher, x_val, data_fingerprint(x_val), cache=cache), tuple(x.shape[1:]), num_classes)


def rank_students(profile: DeviceProfile, teacher, tset: TrainingSet, clock: Budget, family: Optional[str] = None, upscale: bool = False,
                  retain: float = RETAIN, max_student_ratio: float = 0.25, batch_size: int = 64, seed: int = 0, note: str = "") -> Ranking:
    """The tournament of :func:`rank_by_accuracy` on arrays already prepared, within what ``clock`` has left. With a
    ``note`` (the validation split is too small to rank on), the pool is returned unranked and ``winner`` is None."""
    input_shape = tset.input_shape
    params = teacher.keras_model.count_params() if teacher.keras_model is not None else None
    families = [family] if family else student_families(profile, input_shape)
    pool = candidate_pool(profile, input_shape, tset.num_classes, families, max_params=int(params * max_student_ratio) if params else None,
                          upscale=upscale, calibration=tset.x[:64])
    speeds, trace = probe_speed(pool, tset, batch_size, seed)
    entries = [Entry(r, s) for r, s in zip(pool, speeds)]
    target = retain * tset.teacher_val_accuracy
    if note:
        return Ranking(entries, None, tset.teacher_val_accuracy, target, clock.elapsed(), note)
    ranked, seconds = fit_schedule(entries, clock.remaining(), trace, len(tset.x_val), len(tset.x))
    if len(pool) < 2:
        return Ranking(entries, entries[0] if entries else None, tset.teacher_val_accuracy, target, clock.elapsed(),
                       "only one student fits: nothing to rank")
    if len(ranked) < 2:
        raise BudgetError(f"a time budget of {format_seconds(clock.total)} is too small to rank these students on accuracy",
                          "raise --time-budget, or leave out --data to rank by cost")
    winner = tournament(ranked, tset, seconds, retain, 0.7, 4.0, batch_size, trace=trace, seed=seed)
    return Ranking(ranked, winner, tset.teacher_val_accuracy, target, clock.elapsed())
