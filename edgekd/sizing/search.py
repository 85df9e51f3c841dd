"""The search for the largest student that fits a profile, and how each candidate uses the profile's budgets.

The search prices every candidate from its architecture alone (``cost.student_cost``: shapes, parameters,
MACs and the op list the TFLite converter emits), which takes well under a millisecond per candidate.
The best candidates are then converted to the profile's format and measured (``measure.measure_student``);
the first one whose measurements fit is the answer.

>>> from edgekd.profiles import load_profile
>>> choice = size_student(load_profile("cortex-m4f"), (8, 8, 1), 10, verify=False)
>>> choice.fits
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..errors import FitError
from ..profiles import DeviceProfile
from ..students import StudentSpec, family_module
from .cost import Cost, student_cost
from .measure import measure_student

# How many of the best estimated candidates are converted and measured before giving up.
MAX_VERIFIED = 4
MAX_STUDENT_RATIO = 0.25  # a student has at most this fraction of the teacher's parameters (build and distill)


@dataclass
class FitReport:
    spec: StudentSpec
    cost: Cost
    precision: str
    usage: Dict[str, Dict[str, float]] = field(default_factory=dict)
    measured: Dict[str, object] = field(default_factory=dict)  # after conversion; empty if not verified
    searched: int = 0  # candidates priced by the search

    @property
    def fits(self) -> bool:
        return all(u["used"] <= u["limit"] for u in self.usage.values())

    @property
    def tightest(self) -> str:
        return max(self.usage, key=lambda k: self.usage[k]["percent"])

    def misses(self) -> List[str]:
        return [f"{k}: needs {u['used']:.4g}, budget {u['limit']:.4g} ({u['percent'] - 100:.1f}% over)" for k, u in self.usage.items() if u["used"] > u["limit"]]

    def to_dict(self):
        return {
            "spec": str(self.spec), "params": self.cost.params, "macs": self.cost.macs, "precision": self.precision,
            "usage": self.usage, "fits": self.fits, "tightest": self.tightest, "measured": self.measured,
            "searched": self.searched, "cost": self.cost.to_dict(),
        }


def _memory_estimate(profile: DeviceProfile, cost: Cost) -> int:
    if profile.primary_format == "tflm-int8":
        return cost.tflm_arena_bytes()
    return cost.activation_bytes(profile.primary_precision)


def fit_report(profile: DeviceProfile, spec: StudentSpec, cost: Cost, measured: Optional[dict] = None) -> FitReport:
    """Each budget's use, limit and percentage: measured figures where given, else the estimates."""
    precision = profile.primary_precision
    budgets = profile.budgets
    measured = dict(measured or {})
    estimates = {
        "model_bytes": cost.model_bytes(precision),
        "memory_bytes": _memory_estimate(profile, cost),
        "latency_ms": profile.estimate_latency_ms(cost.macs, precision, cost.activation_traffic_elems),
    }
    usage = {}
    for key, estimate in estimates.items():
        limit = getattr(budgets, key)
        used = measured.get(key, estimate)
        usage[key] = {"used": float(used), "limit": float(limit), "percent": 100.0 * used / limit, "estimate": float(estimate), "source": "measured" if key in measured else "estimate"}
    return FitReport(spec, cost, precision, usage, measured=measured)


def candidates(profile: DeviceProfile, input_shape, family: Optional[str] = None, upscale: bool = False) -> List[StudentSpec]:
    """The search grid: every depth x input resolution x width of ``family`` (default: the one for this input).

    Resolutions above the data's own are tried only with ``upscale``: a 28-pixel digit resized to 196 pixels
    inside the model costs 49x the compute and carries no more information.
    """
    family = family or default_family(input_shape)
    module = family_module(family)
    mcu = profile.device_class == "mcu"
    side = _native_side(input_shape)
    resolutions = [r for r in module.resolutions(tuple(input_shape), mcu) if upscale or r is None or side is None or r <= side]
    return [
        StudentSpec(family=family, width=w, depth=d, resolution=r, mcu_safe=mcu)
        for d in module.DEPTHS for r in resolutions for w in module.WIDTHS
    ]


def _native_side(input_shape) -> Optional[int]:
    return int(input_shape[0]) if len(input_shape) >= 2 else None


def priced(profile: DeviceProfile, input_shape, num_classes: int, family: str, upscale: bool = False) -> List[FitReport]:
    """Every distinct candidate of ``family`` whose ops the profile's engine has, priced from its architecture."""
    reports: List[FitReport] = []
    skipped_ops = set()
    seen = set()
    for spec in candidates(profile, input_shape, family, upscale):
        cost = student_cost(spec, input_shape, num_classes)
        key = (spec.depth, spec.resolution, cost.params, cost.macs)
        if key in seen:  # a wider multiplier that rounds to the same channel counts
            continue
        seen.add(key)
        if profile.op_limits and not set(cost.op_kinds) <= set(profile.op_limits):
            skipped_ops.update(set(cost.op_kinds) - set(profile.op_limits))
            continue
        reports.append(fit_report(profile, spec, cost))
    if not reports:
        raise FitError(f"every {family} candidate uses op(s) {', '.join(sorted(skipped_ops))} that {profile.name} lacks", "pick another family or add the ops to the profile's op_limits")
    return reports


def default_family(input_shape) -> str:
    """images (H, W, C) -> mobilenetv3; signals and audio features (T, C) -> dscnn; flat features -> mlp."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 3 and min(shape[:2]) >= 4:
        return "mobilenetv3"
    if len(shape) in (2, 3):
        return "dscnn"
    return "mlp"


# Candidates within this fraction of the most MACs that fit count as equally fast; among them the one
# with the most parameters (capacity) wins. Without it, "most MACs" alone picks whichever shape happens
# to land closest to the latency budget - often a shallow net at a huge input resolution.
MACS_TIE = 0.9


def rank(fitting: List[FitReport]) -> List[FitReport]:
    """Fitting candidates, best first: most parameters among those near the most MACs, then by MACs."""
    if not fitting:
        return []
    top = max(r.cost.macs for r in fitting)
    near = [r for r in fitting if r.cost.macs >= MACS_TIE * top]
    rest = [r for r in fitting if r.cost.macs < MACS_TIE * top]
    return sorted(near, key=lambda r: (r.cost.params, r.cost.macs), reverse=True) + sorted(rest, key=lambda r: (r.cost.macs, r.cost.params), reverse=True)


def size_student(
    profile: DeviceProfile,
    input_shape,
    num_classes: int,
    family: Optional[str] = None,
    max_params: Optional[int] = None,
    verify: bool = True,
    calibration=None,
    upscale: bool = False,
) -> FitReport:
    """The largest candidate that fits every budget of ``profile`` (and ``max_params``): the most MACs,
    with near-ties (within 10%) going to the one with more parameters (see ``rank``).

    ``verify`` converts the best candidates and checks the measured file size and memory (the TFLite
    Micro arena on MCUs) before accepting one. ``max_params`` keeps the student smaller than its
    teacher: a student as big as the teacher is not a compression.
    """
    input_shape = tuple(int(v) for v in input_shape)
    family = family or default_family(input_shape)
    reports = priced(profile, input_shape, num_classes, family, upscale)
    fitting = rank([r for r in reports if r.fits and (max_params is None or r.cost.params <= max_params)])
    if not fitting:
        smallest = min(reports, key=lambda r: (r.cost.macs, r.cost.params))
        misses = smallest.misses()
        if not misses and max_params is not None:
            misses = [f"params: the smallest candidate has {smallest.cost.params}, the teacher-derived cap is {max_params}"]
        raise FitError(
            f"no {family} student fits profile {profile.name}; the smallest candidate ({smallest.spec}) misses " + "; ".join(misses),
            "lower the input resolution, pick a smaller family, or relax the profile's budgets",
        )
    if not verify:
        best = fitting[0]
        best.searched = len(reports)
        return best
    # Measured/estimated ratio per budget seen so far: after a miss, skip candidates that the same
    # error would push over too.
    correction = {"model_bytes": 1.0, "memory_bytes": 1.0}
    tried: List[FitReport] = []
    for report in fitting:
        if len(tried) >= MAX_VERIFIED:
            break
        if any(report.usage[k]["estimate"] * f > report.usage[k]["limit"] for k, f in correction.items()):
            continue
        measured = measure_student(profile, report.spec, input_shape, num_classes, calibration)
        checked = fit_report(profile, report.spec, report.cost, measured)
        checked.searched = len(reports)
        if checked.fits:
            return checked
        tried.append(checked)
        for k in correction:
            correction[k] = max(correction[k], checked.usage[k]["used"] / checked.usage[k]["estimate"])
    worst = tried[-1] if tried else fitting[0]
    raise FitError(
        f"no {family} student fits profile {profile.name} after conversion; the last one measured ({worst.spec}) misses " + "; ".join(worst.misses()),
        "relax the profile's budgets or pick a smaller family",
    )
