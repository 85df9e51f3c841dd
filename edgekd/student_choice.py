"""The build's student-choice phase, within the seconds its plan gives: a tournament (or, without the time or the
validation data for one, the cost ranking) picks the student, then a duel on the validation split picks the teacher
weight (alpha and T). The machinery itself (pool, tournament, duel) is in ``selection``."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .build_plan import MIN_PASSES, BuildPlan, duel_minimum
from .selection import Entry, Selection, TrainingSet, reason, tournament
from .teacher_weight import TEACHER_SETTINGS, best_setting, teacher_weight

DEFAULT_ALPHA = 0.7
DEFAULT_TEMPERATURE = 4.0


def choose_student(plan: BuildPlan, tset: TrainingSet, *, retain: float, alpha: Optional[float], temperature: Optional[float],
                   batch_size: int, seed: int, student_given: bool, val_note: Optional[str], update: Callable[[float, str], None],
                   say: Callable[[str], None]) -> Tuple[Entry, Selection]:
    """The chosen candidate (its speed as measured in the tournament) and the selection: student, teacher weight
    and why. ``alpha``/``temperature`` given are kept. ``update(fraction, note)`` reports progress over the phase."""
    start = time.monotonic()
    t_seconds, d_seconds = plan.tournament_seconds, plan.duel_seconds
    chosen_alpha = alpha if alpha is not None else DEFAULT_ALPHA
    chosen_t = temperature if temperature is not None else DEFAULT_TEMPERATURE
    if plan.choose:
        winner = tournament(plan.entries, tset, t_seconds, retain, chosen_alpha, chosen_t, batch_size, trace=plan.trace, seed=seed,
                            advance=lambda f, note: update(f * t_seconds / max(1e-6, t_seconds + d_seconds), note))
        how = "tournament"
        last = winner.rounds[-1]  # the winner's measured speed, graph already traced, replaces the probe's estimate
        winner.seconds_per_sample = last["seconds"] / (last["samples"] + plan.n_val / 3)
        why = reason(winner, plan.entries, retain, tset.teacher_val_accuracy)
    else:
        winner = _by_cost(plan)
        how = "given" if student_given else "cost ranking"
        why = ("the student given" if student_given else
               f"largest candidate that trains at least {MIN_PASSES} epochs in the budget (no accuracy ranking: {val_note or 'budget too small'})")
    settings: List[Dict[str, Any]] = []
    if plan.tune:
        d_seconds = _duel_seconds(plan, winner, d_seconds + max(0.0, t_seconds - (time.monotonic() - start)))
        per = max(0.0, d_seconds - len(TEACHER_SETTINGS) * (plan.trace + plan.n_val * winner.seconds_per_sample / 3))
        samples = min(max(plan.n_train, duel_minimum(plan.n_train)), int(per / max(1e-9, winner.seconds_per_sample * len(TEACHER_SETTINGS))))
        if samples >= duel_minimum(plan.n_train):
            base = t_seconds / max(1e-6, t_seconds + d_seconds)
            settings = teacher_weight(winner.report, tset, samples, batch_size, seed, advance=lambda f, note: update(base + (1 - base) * f, note))
            best = best_setting(settings, plan.n_val)
            chosen_alpha, chosen_t = best["alpha"], best["temperature"]
        else:
            say(f"warning: no time in the budget to choose alpha and T on the validation split; using alpha={DEFAULT_ALPHA:g}, T={DEFAULT_TEMPERATURE:g}")
    return winner, Selection(winner.report, how, why, chosen_alpha, chosen_t, plan.entries if how == "tournament" else [winner],
                             settings, tset.teacher_val_accuracy, retain * tset.teacher_val_accuracy, time.monotonic() - start)


def _duel_seconds(plan: BuildPlan, winner: Entry, available: float) -> float:
    """Seconds for the duel at the winner's measured speed: what the plan gave plus what the tournament left unused;
    when that cannot hold the duel's minimum (the measured speed is often slower than the probe's on a loaded
    machine), it borrows from training as long as training keeps MIN_PASSES passes, as the plan does."""
    needed = len(TEACHER_SETTINGS) * (plan.trace + winner.seconds_per_sample * (duel_minimum(plan.n_train) + plan.n_val / 3))
    if available < needed and plan.train_seconds - (needed - available) >= MIN_PASSES * plan.epoch_seconds(winner):
        return needed
    return available


def _by_cost(plan: BuildPlan) -> Entry:
    """The largest candidate that still trains MIN_PASSES epochs in the budget (else the smallest)."""
    ok = [e for e in plan.entries if plan.epoch_seconds(e) * MIN_PASSES <= plan.train_seconds]
    return max(ok, key=lambda e: e.size) if ok else min(plan.entries, key=lambda e: e.size)

