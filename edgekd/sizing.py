"""What a student costs on a device, and the search for the largest student that fits a profile.

>>> from edgekd.profiles import load_profile
>>> choice = size_student(load_profile("cortex-m4f"), (8, 8, 1), 10)
>>> choice.fits
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .errors import FitError
from .profiles import BYTES_PER_WEIGHT, DeviceProfile
from .students import StudentSpec, build_student

# A .tflite/.onnx file carries a graph description and per-tensor metadata on top of the weights.
FORMAT_OVERHEAD_BYTES = 16 * 1024

WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
DEPTHS = (1, 2, 3, 4, 5, 6)


@dataclass
class Cost:
    params: int
    macs: int
    peak_activation_elems: int

    def model_bytes(self, precision: str) -> int:
        return self.params * BYTES_PER_WEIGHT[precision] + FORMAT_OVERHEAD_BYTES

    def activation_bytes(self, precision: str) -> int:
        return self.peak_activation_elems * BYTES_PER_WEIGHT[precision]


def _shape(s):
    return [int(v) for v in s[1:] if v is not None]


def _elems(s) -> int:
    n = 1
    for v in _shape(s):
        n *= v
    return n


def model_cost(model) -> Cost:
    """Parameters, multiply-accumulates and the largest live pair of activations of a tf_keras model.

    MACs count convolutions, depthwise convolutions and dense layers (the rest is negligible on these nets).
    Peak activation is approximated by the largest input+output of any single layer, the pair a
    sequential interpreter must hold at once.
    """
    from tf_keras import layers

    macs = 0
    peak = 0
    for layer in model.layers:
        out_shape = layer.output_shape
        in_shape = layer.input_shape
        if isinstance(out_shape, list) or isinstance(layer, layers.InputLayer):
            continue
        ins = in_shape if isinstance(in_shape, list) else [in_shape]
        peak = max(peak, sum(_elems(s) for s in ins) + _elems(out_shape))
        if isinstance(layer, layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            h, w, c = _shape(out_shape)
            macs += h * w * c * kh * kw
        elif isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            h, w, cout = _shape(out_shape)
            cin = _shape(in_shape)[-1]
            macs += h * w * cout * kh * kw * cin // layer.groups
        elif isinstance(layer, layers.Dense):
            cin = _shape(in_shape)[-1]
            positions = _elems(out_shape) // layer.units
            macs += cin * layer.units * positions
    return Cost(params=int(model.count_params()), macs=int(macs), peak_activation_elems=int(peak))


@dataclass
class FitReport:
    spec: StudentSpec
    cost: Cost
    precision: str
    usage: Dict[str, Dict[str, float]] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return all(u["used"] <= u["limit"] for u in self.usage.values())

    @property
    def tightest(self) -> str:
        return max(self.usage, key=lambda k: self.usage[k]["percent"])

    def to_dict(self):
        return {"spec": str(self.spec), "params": self.cost.params, "macs": self.cost.macs, "precision": self.precision, "usage": self.usage, "fits": self.fits}


def fit_report(profile: DeviceProfile, spec: StudentSpec, cost: Cost) -> FitReport:
    precision = profile.primary_precision
    budgets = profile.budgets
    used = {
        "model_bytes": (cost.model_bytes(precision), budgets.model_bytes),
        "memory_bytes": (cost.activation_bytes(precision), budgets.memory_bytes),
        "latency_ms": (profile.estimate_latency_ms(cost.macs, precision), budgets.latency_ms),
    }
    usage = {k: {"used": float(u), "limit": float(lim), "percent": 100.0 * u / lim} for k, (u, lim) in used.items()}
    return FitReport(spec, cost, precision, usage)


def candidates(profile: DeviceProfile, family: str = "mobilenetv3") -> List[StudentSpec]:
    mcu = profile.device_class == "mcu"
    return [StudentSpec(family=family, width=w, depth=d, mcu_safe=mcu) for d in DEPTHS for w in WIDTHS]


def size_student(
    profile: DeviceProfile,
    input_shape,
    num_classes: int,
    family: str = "mobilenetv3",
    max_params: Optional[int] = None,
) -> FitReport:
    """The candidate with the most MACs that fits every budget of ``profile`` (and ``max_params``).

    ``max_params`` keeps the student smaller than its teacher: a student as big as the teacher
    is not a compression.
    """
    reports = []
    for spec in candidates(profile, family):
        model = build_student(spec, input_shape, num_classes)
        reports.append(fit_report(profile, spec, model_cost(model)))
        del model
    fitting = [r for r in reports if r.fits and (max_params is None or r.cost.params <= max_params)]
    if fitting:
        return max(fitting, key=lambda r: (r.cost.macs, r.cost.params))
    smallest = min(reports, key=lambda r: r.cost.macs)
    misses = [f"{k}: needs {u['used']:.4g}, budget {u['limit']:.4g} ({u['percent'] - 100:.0f}% over)" for k, u in smallest.usage.items() if u["used"] > u["limit"]]
    if not misses and max_params is not None:
        misses = [f"params: the smallest candidate has {smallest.cost.params}, the teacher-derived cap is {max_params}"]
    raise FitError(
        f"no {family} student fits profile {profile.name}; the smallest candidate ({smallest.spec}) misses " + "; ".join(misses),
        "lower the input resolution, pick a smaller family, or relax the profile's budgets",
    )
