"""Choosing the student: the smallest candidate that fits the device and keeps the teacher's accuracy.

A device's budgets are a constraint, not a target. ``candidate_pool`` takes the students that fit every budget
(at the data's own resolution, under a parameter cap relative to the teacher) and keeps a handful spread over
sizes. ``tournament`` ranks them by successive halving on a validation split: every survivor trains a little
more each round on the cached soft labels, and each round keeps the smallest candidates whose validation
accuracy reaches the target (``retain`` x the teacher's, or the round's best less its noise when no one reaches
it yet), then the most accurate of the rest. ``teacher_weight`` then picks alpha and T for the winner on the
same split, labels-only included, so distillation never makes the student worse than training it alone.

>>> from edgekd.profiles import load_profile                        # doctest: +SKIP
>>> pool = candidate_pool(load_profile("cortex-m4f"), (28, 28, 1), 10, max_params=100_000)
>>> [str(r.spec) for r in pool]
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import FitError
from .profiles import DeviceProfile
from .sizing import FitReport, fit_report, measure_student, priced

RETAIN = 0.97  # keep at least this fraction of the teacher's validation accuracy
POOL_SIZE = 6
MIN_VAL_SAMPLES = 200  # fewer and one sample moves accuracy by more than half a point: too coarse to rank on
# Fewest training samples a candidate sees in the first round: about 100 steps of 64. Fewer, and deep students are
# still at chance when scored (MNIST, MCU-safe MobileNets after 42 steps: 11%), so the round would drop them at random.
MIN_ROUND_SAMPLES = 6400
VERIFY_ABOVE = 80.0  # candidates estimated above this % of any budget are converted and measured before training


@dataclass
class TrainingSet:
    """Preprocessed training and validation arrays with the teacher's cached logits for both."""

    x: np.ndarray
    y: np.ndarray
    logits: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    val_logits: np.ndarray
    input_shape: Tuple[int, ...]
    num_classes: int

    @property
    def teacher_val_accuracy(self) -> float:
        return float(np.mean(self.val_logits.argmax(1) == self.y_val))


@dataclass
class Entry:
    report: FitReport
    seconds_per_sample: float = 0.0
    rounds: List[Dict[str, Any]] = field(default_factory=list)
    out_in_round: Optional[int] = None
    model: Any = None

    @property
    def size(self) -> Tuple[int, int]:
        return (self.report.cost.params, self.report.cost.macs)

    @property
    def score(self) -> Optional[float]:
        return self.rounds[-1]["val_acc"] if self.rounds else None

    def to_dict(self) -> Dict[str, Any]:
        return {"spec": str(self.report.spec), "params": self.report.cost.params, "macs": self.report.cost.macs,
                "usage_percent": {k: round(u["percent"], 1) for k, u in self.report.usage.items()},
                "seconds_per_sample": self.seconds_per_sample, "rounds": self.rounds, "out_in_round": self.out_in_round}


@dataclass
class Selection:
    chosen: FitReport
    how: str  # "tournament", "cost ranking" or "given"
    reason: str
    alpha: float
    temperature: float
    entries: List[Entry] = field(default_factory=list)
    settings: List[Dict[str, Any]] = field(default_factory=list)
    teacher_val_accuracy: Optional[float] = None
    target: Optional[float] = None
    seconds: float = 0.0
    seconds_per_sample: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return {"chosen": str(self.chosen.spec), "how": self.how, "reason": self.reason, "alpha": self.alpha,
                "temperature": self.temperature, "teacher_val_accuracy": self.teacher_val_accuracy, "target": self.target,
                "seconds": round(self.seconds, 1), "candidates": [e.to_dict() for e in self.entries], "teacher_settings": self.settings}


def candidate_pool(profile: DeviceProfile, input_shape, num_classes: int, families: Sequence[str], max_params: Optional[int] = None,
                   upscale: bool = False, count: int = POOL_SIZE, calibration=None) -> List[FitReport]:
    """Up to ``count`` students that fit every budget of ``profile`` and ``max_params``, spread from the smallest
    to the largest that fits (log-spaced in parameters), smallest first. Candidates estimated near a budget are
    converted and measured; those the measurement puts over are dropped."""
    input_shape = tuple(int(v) for v in input_shape)
    fitting, everything = [], []
    for family in families:
        reports = priced(profile, input_shape, num_classes, family, upscale)
        everything += reports
        ok = [r for r in reports if r.fits and (max_params is None or r.cost.params <= max_params)]
        native = [r for r in ok if r.spec.resolution is None]
        # Lower resolutions only when nothing fits at the data's own.
        fitting.append(native or ok)
    if not any(fitting):
        smallest = min(everything, key=lambda r: (r.cost.params, r.cost.macs))
        misses = smallest.misses()
        if not misses and max_params is not None:
            misses = [f"parameters: the smallest candidate has {smallest.cost.params:,}, the cap is {max_params:,} "
                      f"(--max-student-ratio of the teacher's)"]
        raise FitError(f"no {'/'.join(families)} student fits profile {profile.name}; the smallest ({smallest.spec}) misses " + "; ".join(misses),
                       "relax the profile's budgets, raise --max-student-ratio, or pick a smaller family")
    per_family = max(1, math.ceil(count / sum(1 for f in fitting if f)))
    picked: List[FitReport] = []
    for reports in fitting:
        picked += _spread(sorted(reports, key=lambda r: (r.cost.params, r.cost.macs)), per_family)
    checked = []
    for report in picked:
        if max(u["percent"] for u in report.usage.values()) > VERIFY_ABOVE:
            measured = measure_student(profile, report.spec, input_shape, num_classes, calibration)
            report = fit_report(profile, report.spec, report.cost, measured)
            if not report.fits:
                continue
        checked.append(report)
    if not checked:
        raise FitError(f"every candidate near {profile.name}'s budgets misses them once converted: " + "; ".join(picked[-1].misses() or ["measured over"]),
                       "relax the profile's budgets or pick a smaller family")
    return sorted(checked, key=lambda r: (r.cost.params, r.cost.macs))[:count]


def _spread(reports: List[FitReport], k: int) -> List[FitReport]:
    """``k`` reports log-spaced in parameters between the first (smallest) and the last (largest)."""
    if len(reports) <= k:
        return list(reports)
    if k <= 1:
        return list(reports[:1])
    lo, hi = math.log(reports[0].cost.params), math.log(reports[-1].cost.params)
    logs = [math.log(r.cost.params) for r in reports]
    out: List[FitReport] = []
    for i in range(k):
        target = lo + (hi - lo) * i / (k - 1)
        best = min(range(len(reports)), key=lambda j: abs(logs[j] - target))
        if reports[best] not in out:
            out.append(reports[best])
    return out


class Trainee:
    """A student and its compiled Distiller, kept across rounds so each round continues training without
    tracing the graph again (tracing costs seconds; a round on a small split costs less)."""

    def __init__(self, report: FitReport, data: "TrainingSet", alpha: float, temperature: float, seed: int = 0,
                 learning_rate: float = 3e-3, anneal_steps: Optional[int] = None):
        """``anneal_steps``: decay the learning rate to zero over that many steps (cosine), as the final training does."""
        import tf_keras as keras

        from .distill.distiller import Distiller
        from .students import build_student

        self.model = build_student(report.spec, data.input_shape, data.num_classes, seed=seed)
        self.distiller = Distiller(self.model, temperature=temperature, alpha=alpha)
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=anneal_steps) if anneal_steps else learning_rate
        self.distiller.compile(optimizer=keras.optimizers.Adam(rate))
        self.data = data
        self.seed = seed

    def train(self, idx: np.ndarray, batch_size: int) -> float:
        """One pass over the samples ``idx``; returns its seconds."""
        import tensorflow as tf

        d = self.data
        ds = tf.data.Dataset.from_tensor_slices((d.x[idx], (d.y[idx].astype(np.int32), {"logits": d.logits[idx]})))
        ds = ds.shuffle(len(idx), seed=self.seed).batch(batch_size).prefetch(2)
        start = time.monotonic()
        self.distiller.fit(ds, epochs=1, verbose=0)
        return time.monotonic() - start

    def val_accuracy(self) -> float:
        return float(np.mean(self.model.predict(self.data.x_val, batch_size=512, verbose=0).argmax(1) == self.data.y_val))


# Speed probes already run in this process, by student and data shape: (MACs, seconds per sample, trace seconds).
# The demo's three builds share students and data; probing again would trace the same graphs again.
_PROBED: Dict[tuple, Tuple[int, float, float]] = {}


def probe_speed(reports: List[FitReport], data: TrainingSet, batch_size: int, seed: int = 0) -> Tuple[List[float], float]:
    """Seconds per training sample of every report, from a few timed steps of the smallest and largest on this
    host (log-log interpolation in MACs between them), and the seconds a first call spends tracing."""
    idx = np.arange(min(len(data.x), batch_size * 4))
    measured: Dict[str, List[Tuple[int, float, float]]] = {}
    # Each family separately: a MAC of a dense 3x3 convolution and of a depthwise one cost differently.
    for family in sorted({r.spec.family for r in reports}):
        mine = [r for r in reports if r.spec.family == family]
        ends = {str(r.spec): r for r in (min(mine, key=lambda r: r.cost.macs), max(mine, key=lambda r: r.cost.macs))}
        for report in ends.values():
            key = (str(report.spec), tuple(data.input_shape), data.num_classes, batch_size, len(idx))
            if key not in _PROBED:
                trainee = Trainee(report, data, alpha=0.5, temperature=4.0, seed=seed)
                first = trainee.train(idx, batch_size)
                second = min(trainee.train(idx, batch_size), first)
                _PROBED[key] = (max(report.cost.macs, 1), max(second, 1e-4) / len(idx), max(0.0, first - second))
            measured.setdefault(family, []).append(_PROBED[key])
    trace = max(m[2] for ms in measured.values() for m in ms)
    speeds = []
    for r in reports:
        ms = measured[r.spec.family]
        if len(ms) == 1 or ms[0][0] == ms[1][0]:
            speeds.append(ms[0][1])
            continue
        (m0, s0, _), (m1, s1, _) = ms
        slope = min(1.0, max(0.0, math.log(max(s1, 1e-9) / max(s0, 1e-9)) / math.log(m1 / m0)))
        speeds.append(s0 * (max(r.cost.macs, 1) / m0) ** slope)
    return speeds, trace


def rounds_plan(k: int) -> List[int]:
    """Survivors per round of successive halving: 6 -> [6, 3, 2]; the last round picks between two."""
    plan = [k]
    while plan[-1] > 2:
        plan.append(math.ceil(plan[-1] / 2))
    return plan if k > 1 else []


def first_round_samples(k: int, seconds: float, per_sample: float, trace: float, n_val: int, n_train: Optional[int] = None) -> int:
    """Samples per candidate in round 0 so that all rounds (round r trains 2^r times as many) fit ``seconds``,
    and the last round is no more than one pass over the ``n_train`` training samples (more ranks no better)."""
    plan = rounds_plan(k)
    if n_train is not None and plan:
        cap = max(math.ceil(n_train / 2 ** (len(plan) - 1)), MIN_ROUND_SAMPLES)
        return min(cap, first_round_samples(k, seconds, per_sample, trace, n_val))
    calls = sum(plan)
    work = sum(size * 2 ** r for r, size in enumerate(plan))
    # Each candidate traces its graph once; every call scores the validation split (about a third of a training
    # pass per sample).
    fixed = k * trace + calls * n_val * per_sample / 3
    return int(max(0.0, seconds - fixed) / (per_sample * work)) if work else 0


def tournament(entries: List[Entry], data: TrainingSet, seconds: float, retain: float, alpha: float, temperature: float,
               batch_size: int, trace: float = 0.0, seed: int = 0, advance: Optional[Callable[[float, str], None]] = None) -> Entry:
    """Successive halving over ``entries`` within ``seconds``; returns the winner.

    Each round keeps half: first the smallest of those whose validation accuracy reaches the round's threshold
    (``retain`` x the teacher's, or the round's best less two standard errors when that is lower), then the most
    accurate of the rest; when none reaches the target, the most accurate. Survivors keep their weights from round to
    round and train on twice the samples.
    """
    per_sample = float(np.mean([e.seconds_per_sample for e in entries]))
    plan = rounds_plan(len(entries))
    n0 = first_round_samples(len(entries), seconds, per_sample, trace, len(data.x_val), len(data.x))
    target = retain * data.teacher_val_accuracy
    order = np.random.default_rng(seed).permutation(len(data.x))
    survivors = sorted(entries, key=lambda e: e.size)
    for e in survivors:
        e.model = Trainee(e.report, data, alpha, temperature, seed=seed)
    total_work = sum(size * 2 ** r for r, size in enumerate(plan))
    done_work = 0.0
    for r, _ in enumerate(plan):
        n = max(batch_size, int(n0 * 2 ** r))
        idx = np.resize(order, n) if n > len(order) else order[:n]
        for e in survivors:
            start = time.monotonic()
            e.model.train(idx, batch_size)
            acc = e.model.val_accuracy()
            e.rounds.append({"round": r, "samples": int(n), "val_acc": acc, "seconds": round(time.monotonic() - start, 2)})
            done_work += 2 ** r
            if advance is not None:
                advance(done_work / total_work, f"round {r + 1}/{len(plan)} {e.report.spec} val_acc {acc:.4f}")
        ranked, threshold = rank_round(survivors, target, len(data.y_val))
        for e in survivors:
            e.rounds[-1]["threshold"] = round(threshold, 4)
        keep = len(ranked) if r == len(plan) - 1 else math.ceil(len(ranked) / 2)
        for e in ranked[keep:]:
            e.out_in_round = r
        survivors = ranked[:keep]
    for e in entries:
        e.model = None  # free the candidates; the winner is trained afresh
    return survivors[0]


def rank_round(survivors: List[Entry], target: float, n_val: int) -> Tuple[List[Entry], float]:
    """Survivors in the order a round keeps them, and the round's threshold: those at the threshold smallest first,
    then the rest by accuracy."""
    best = max(e.score for e in survivors)
    # Two standard errors of an accuracy near the target: the margin within which the split cannot tell two apart.
    p = min(target, best) if best > 0.5 * target else target
    noise = 2 * math.sqrt(max(p * (1 - p), 1e-4) / n_val)
    # Below the target the rounds have not shown that a smaller student suffices, and short rounds favour small
    # students (they learn fast, then stop): rank by accuracy alone.
    threshold = min(target, best - noise) if best >= target else best
    eligible = sorted([e for e in survivors if e.score >= threshold], key=lambda e: e.size)
    rest = sorted([e for e in survivors if e.score < threshold], key=lambda e: -e.score)
    return eligible + rest, threshold


def reason(winner: Entry, entries: List[Entry], retain: float, teacher_val: float) -> str:
    """Why the tournament chose ``winner``, in a line for the fit report and the manifest."""
    last = winner.rounds[-1]
    target = retain * teacher_val
    best = max(e.score for e in entries if e.out_in_round is None and e.score is not None)
    if last["val_acc"] >= target:
        return (f"smallest of {len(entries)} candidates to reach {100 * retain:g}% of the teacher's validation accuracy "
                f"({100 * last['val_acc']:.2f}% >= {100 * target:.2f}% after {last['samples']} samples)")
    if best >= target:
        return (f"smallest of {len(entries)} candidates within two standard errors of the best ({100 * last['val_acc']:.2f}% "
                f"against {100 * best:.2f}%, target {100 * target:.2f}%, after {last['samples']} samples)")
    return (f"none of {len(entries)} candidates reached {100 * target:.2f}% in the tournament; the most accurate "
            f"({100 * last['val_acc']:.2f}% after {last['samples']} samples)")


def schedule_seconds(k: int, n0: int, per_sample: float, trace: float, n_val: int) -> float:
    """Predicted seconds of a tournament of ``k`` candidates starting at ``n0`` samples."""
    plan = rounds_plan(k)
    work = sum(size * 2 ** r for r, size in enumerate(plan))
    return k * trace + sum(plan) * n_val * per_sample / 3 + work * n0 * per_sample


def _spread_entries(pool: List[Entry], k: int) -> List[Entry]:
    picked = _spread([e.report for e in pool], k)
    return [e for e in pool if e.report in picked]


def fit_schedule(entries: List[Entry], seconds: float, trace: float, n_val: int, n_train: int) -> Tuple[List[Entry], float]:
    """The candidates a tournament of ``seconds`` can rank (dropping middle sizes until the first round gets
    MIN_ROUND_SAMPLES each) and the seconds its schedule will really use. Fewer than two: no tournament."""
    def speed():
        return float(np.mean([e.seconds_per_sample for e in entries]))

    pool = sorted(entries, key=lambda e: e.size)
    entries = list(pool)
    while len(entries) > 1 and first_round_samples(len(entries), seconds, speed(), trace, n_val) < MIN_ROUND_SAMPLES:
        # One fewer, still log-spaced over the whole pool (dropping only the middle would leave a gap of 25x in size).
        entries = _spread_entries(pool, len(entries) - 1)
    if len(entries) < 2:
        return entries, 0.0
    n0 = first_round_samples(len(entries), seconds, speed(), trace, n_val, n_train)
    return entries, min(seconds, schedule_seconds(len(entries), n0, speed(), trace, n_val))
