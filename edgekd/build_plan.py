"""How a build spends its time budget: seconds for each phase, planned before any training from timings taken on
this host, and the training schedule that fits the time the student choice leaves.

Order of the budget: teacher labels and conversion (with room for the int8 fine-tune) come off the top; of what is
left, SHARES go to the tournament and the teacher-weight duel, the rest to the final training.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from .budget import Budget, format_seconds
from .errors import BudgetError, EdgekdError
from .profiles import DeviceProfile
from .selection import MIN_ROUND_SAMPLES, Entry, fit_schedule
from .teacher_weight import TEACHER_SETTINGS
from .sizing import FitReport, measure_student
from .teachers import Teacher, data_fingerprint, soft_label_path

QAT_SHARE = 0.1  # the int8 fallback's fine-tune takes at most this share of the budget
MIN_CHECKS = 4  # validation checks the final training gets at least (an "epoch" shrinks to fit them in the budget)
MIN_PASSES = 1  # passes over the training data a candidate must afford in the training share (fewer, and it barely learns)
# Shares of the time left after labels and conversion: the tournament, the teacher-weight duel, the final training.
SHARES = {"tournament": 0.20, "teacher weight": 0.15}
# A student's SavedModel save against the tracing of its first training step, measured here: 0.9-1.1x (digits resnet
# 1.7 s against 1.8 s, MobileNetV3 depth 5 6.1 s against 5.6 s); half again for the spread.
SAVE_PER_TRACE = 1.5


def epoch_seconds(entry: Entry, n_train: int, n_val: int) -> float:
    """One pass over the training data plus one validation (inference costs about a third of a training step)."""
    return entry.seconds_per_sample * (n_train + n_val / 3)


def duel_minimum(n_train: int) -> int:
    """Samples each teacher-weight setting needs: as many as a tournament round (~100 steps), or four passes over
    a small training set."""
    return min(MIN_ROUND_SAMPLES, 4 * n_train)


def label_seconds(teacher: Teacher, x: np.ndarray, n_val: int) -> float:
    """Planned seconds for the teacher's soft labels: ~nothing when cached, else timed on a few samples here."""
    if soft_label_path(teacher, data_fingerprint(x)).is_file():
        return 1.0
    n = min(len(x), 256)
    teacher.logits(x[:8])  # the first call builds the graph
    start = time.monotonic()
    teacher.logits(x[:n])
    return (time.monotonic() - start) / n * (len(x) + n_val) * 1.1


def convert_seconds(entries: List[Entry], n_train: int, n_val: int, profile: DeviceProfile, input_shape, num_classes: int,
                    calibration, formats: List[str]) -> float:
    """Planned seconds for converting and verifying every format: from the slowest conversion sizing already timed,
    else one conversion of the largest candidate to the profile's primary format timed here (the slowest to convert,
    and the one a cost ranking picks: the measurement is kept, so the chosen student is not converted twice); times
    the formats, plus the parity runs."""
    timed = [e.report.measured["seconds"] for e in entries if "seconds" in e.report.measured]
    if timed:
        once = max(timed)
    else:
        largest = max(entries, key=lambda e: epoch_seconds(e, n_train, n_val))
        once = _time_one_conversion(profile, largest.report, input_shape, num_classes, calibration)
    return once * (len(formats) + 1) + 2.0 * len(formats)


def _time_one_conversion(profile: DeviceProfile, report: FitReport, input_shape, num_classes: int, calibration) -> float:
    start = time.monotonic()
    try:
        return float(measure_student(profile, report.spec, input_shape, num_classes, calibration)["seconds"])
    except EdgekdError:
        return time.monotonic() - start


def save_seconds(trace: float) -> float:
    """Planned seconds for saving the trained Keras student (a SavedModel): tf_keras traces every layer's functions
    to write it, about SAVE_PER_TRACE times what tracing one training step took here."""
    return SAVE_PER_TRACE * trace


@dataclass
class BuildPlan:
    entries: List[Entry]  # the candidates the student choice picks from
    n_train: int
    n_val: int
    trace: float  # seconds to trace a student's graph, measured here
    label_seconds: float
    convert_seconds: float  # conversion and verification, with the trained student's save before them
    qat_seconds: float  # room for the int8 fallback's fine-tune
    tournament_seconds: float
    duel_seconds: float
    train_seconds: float
    choose: bool  # rank the candidates on accuracy in a tournament
    tune: bool  # choose alpha and T in a duel on the validation split

    def epoch_seconds(self, entry: Entry) -> float:
        return epoch_seconds(entry, self.n_train, self.n_val)


def plan_phases(clock: Budget, entries: List[Entry], trace: float, *, n_train: int, n_val: int, label_seconds: float,
               convert_seconds: float, int8_fine_tune: bool, student_given: bool, alpha_given: bool, val_note: Optional[str],
               say: Callable[[str], None]) -> BuildPlan:
    """Seconds for each phase, or a BudgetError when the budget cannot hold one epoch of the smallest student.

    ``convert_seconds``: conversion and verification, the save of the trained student included. ``int8_fine_tune``:
    reserve room for the int8 fallback's fine-tune. ``val_note``: the validation split is too small to rank on (no
    tournament, no duel).
    """
    def epoch(e: Entry) -> float:
        return epoch_seconds(e, n_train, n_val)

    smallest = min(entries, key=epoch)
    # Room for the int8 fallback's fine-tune: at most a tenth of the budget (it uses what is left when it runs).
    qat_seconds = min(epoch(smallest) * 1.5, QAT_SHARE * clock.total) if int8_fine_tune else 0.0
    free = clock.remaining() - label_seconds - convert_seconds
    minimum = clock.elapsed() + label_seconds + convert_seconds + epoch(smallest) + trace
    if free < epoch(smallest) + trace:
        error = BudgetError(f"a time budget of {format_seconds(clock.total)} cannot hold one epoch of the smallest student ({smallest.report.spec}): "
                            f"teacher labels ~{format_seconds(label_seconds)}, one epoch ~{format_seconds(epoch(smallest) + trace)}, "
                            f"conversion ~{format_seconds(convert_seconds)}", f"pass --time-budget {math.ceil(minimum * 1.2)}s or more")
        error.minimum_seconds = math.ceil(minimum * 1.2)  # the demo, whose budget is its own choice, retries with it
        raise error
    if not student_given:
        # Only students that can train MIN_PASSES passes over the data in the training share are worth ranking: a
        # larger one would win the tournament and then train too little to keep its lead.
        train_share = free * (1 - SHARES["tournament"] - SHARES["teacher weight"]) - qat_seconds
        affordable = [e for e in entries if epoch(e) * MIN_PASSES <= train_share] or [smallest]
        if len(affordable) < len(entries):
            say(f"{len(entries) - len(affordable)} of {len(entries)} candidates cannot train {MIN_PASSES} passes over the data "
                f"within this budget; left out (a longer --time-budget keeps them)")
        entries = affordable
    ranked_pool = list(entries)
    choose = not student_given and len(entries) > 1
    tournament_seconds = duel_seconds = 0.0
    if choose and val_note:
        choose = False
    elif choose:
        tournament_seconds = SHARES["tournament"] * free
        entries, tournament_seconds = fit_schedule(entries, tournament_seconds, trace, n_val, n_train)
        if len(entries) < 2:
            say(f"warning: a budget of {format_seconds(clock.total)} is too small to rank candidates on accuracy "
                f"(each needs {MIN_ROUND_SAMPLES} samples a round); choosing by cost")
            choose, tournament_seconds, entries = False, 0.0, ranked_pool
    tune = not alpha_given and (student_given or choose) and not val_note
    if tune:
        # Per setting, one pass over the training data at most, but never less than the duel's minimum: enough to
        # see which teacher weight helps.
        slowest = max(e.seconds_per_sample for e in entries)

        def duel(samples: int) -> float:
            return len(TEACHER_SETTINGS) * (trace + slowest * (samples + n_val / 3))

        duel_seconds = min(SHARES["teacher weight"] * free, duel(max(n_train, duel_minimum(n_train))))
        # The duel is what keeps a weak teacher from harming the student: when its share cannot hold the minimum, it
        # borrows from training, as long as training still affords MIN_PASSES passes of the slowest candidate.
        rest = free - tournament_seconds - qat_seconds
        if duel_seconds < duel(duel_minimum(n_train)) and rest - duel(duel_minimum(n_train)) >= MIN_PASSES * max(epoch(e) for e in entries):
            duel_seconds = duel(duel_minimum(n_train))
    train_seconds = max(0.0, free - tournament_seconds - duel_seconds - qat_seconds)
    return BuildPlan(entries, n_train, n_val, trace, label_seconds, convert_seconds, qat_seconds, tournament_seconds, duel_seconds,
                     train_seconds, choose, tune)


@dataclass
class TrainingSchedule:
    max_epochs: int
    steps: int  # optimizer steps per epoch
    steps_per_epoch: Optional[int]  # set when an epoch is shorter than a pass, so that MIN_CHECKS validations fit
    epoch_seconds: float  # predicted seconds per epoch, validation included
    seconds: float  # the time training may use
    qat_seconds: float  # room kept for the int8 fallback's fine-tune after training


def training_schedule(clock: Budget, winner: Entry, plan: BuildPlan, epochs: int, batch_size: int) -> TrainingSchedule:
    """Epochs (at most ``epochs``) that fit the time left once the student is chosen, at the winner's measured speed."""
    per_epoch = plan.epoch_seconds(winner)
    qat_seconds = min(per_epoch * 1.5, QAT_SHARE * clock.total) if plan.qat_seconds else plan.qat_seconds
    train_seconds = max(0.0, clock.remaining() - plan.convert_seconds - qat_seconds)
    max_epochs = max(1, min(epochs, int(train_seconds / max(per_epoch, 1e-6))))
    steps = int(np.ceil(plan.n_train / batch_size))
    steps_per_epoch = None
    if max_epochs < MIN_CHECKS:
        # Less than MIN_CHECKS passes fit: validate (and stop early, and keep the best) after shorter stretches instead.
        steps_per_epoch = max(1, int(train_seconds / MIN_CHECKS / max(winner.seconds_per_sample * batch_size, 1e-9)))
        if steps_per_epoch < steps:
            max_epochs, steps = MIN_CHECKS, steps_per_epoch
            per_epoch = steps * batch_size * winner.seconds_per_sample + plan.n_val * winner.seconds_per_sample / 3
        else:
            steps_per_epoch = None
    return TrainingSchedule(max_epochs, steps, steps_per_epoch, per_epoch, train_seconds, qat_seconds)
