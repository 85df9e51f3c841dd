"""What a student costs on a device, and the search for the largest student that fits a profile.

The search prices every candidate from its architecture alone (``student_graph``: shapes, parameters,
MACs and the op list the TFLite converter emits), which takes well under a millisecond per candidate.
Peak activation memory is the largest set of tensors alive at once over that op order - the same lifetime
analysis as ``converted_cost`` runs on a real ``.tflite`` file. The best candidates are then converted to
the profile's format and measured (file size, activation lifetimes of the converted graph, and for
microcontrollers the TFLite Micro arena measured with tflite-micro); the first one whose measurements fit
is the answer.

>>> from edgekd.profiles import load_profile
>>> choice = size_student(load_profile("cortex-m4f"), (8, 8, 1), 10, verify=False)
>>> choice.fits
True
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import FitError
from .profiles import BYTES_PER_WEIGHT, DeviceProfile
from .students import StudentSpec, family_module, student_graph
from .students.nn import Graph, peak_live

# Model-file bytes beyond the weights, fitted on int8 conversions of ten students of all three families
# (TF 2.21): each tensor costs ~100 bytes of flatbuffer metadata (name, shape, buffer entry), each output
# channel of an int8 conv/dense stores an int32 bias plus a float32 scale and an int64 zero point for
# its weights and for its bias (4 + 2 x 12 = 28 bytes), and the file has ~3 KB of fixed structure.
TENSOR_METADATA_BYTES = 100
INT8_CHANNEL_BYTES = 28
FILE_FIXED_BYTES = 3000

# TFLite Micro's arena = the planner's activation area (the "head": equal to the lifetime peak on every
# student measured) + persistent allocations (the "tail"). The tail was fitted by least squares on eight
# int8 students against tflite-micro's own allocation report (max error 1.6%): a TfLiteEvalTensor and
# bookkeeping per tensor, a NodeAndRegistration and op data per op, 8 bytes of per-channel requantization
# parameters (multiplier + shift) per output channel, and a fixed part.
TFLM_TENSOR_BYTES = 52
TFLM_OP_BYTES = 81
TFLM_CHANNEL_BYTES = 8
TFLM_FIXED_BYTES = 800

# How many of the best estimated candidates are converted and measured before giving up.
MAX_VERIFIED = 4


@dataclass
class Cost:
    params: int  # as Keras counts them (batch-norm statistics included)
    macs: int
    peak_activation_elems: int  # largest set of activation elements alive at once
    weights: int = 0  # stored kernel elements (batch norm folded)
    biases: int = 0  # stored bias elements = output channels of every conv/dense
    tensors: int = 0  # tensors of the converted graph, activations and constants
    ops: int = 0
    op_kinds: Tuple[str, ...] = ()
    activation_traffic_elems: int = 0  # activation elements read + written over all ops

    @classmethod
    def from_graph(cls, g: Graph) -> "Cost":
        return cls(
            params=g.params, macs=g.macs, peak_activation_elems=g.peak_elems(), weights=g.weights, biases=g.biases,
            tensors=len(g.tensors) + g.constant_tensors, ops=len(g.ops), op_kinds=tuple(g.op_kinds()),
            activation_traffic_elems=g.traffic_elems(),
        )

    def model_bytes(self, precision: str) -> int:
        """Estimated size of the model file at ``precision``."""
        weights = self.weights or self.params
        if precision == "int8":
            body = weights + INT8_CHANNEL_BYTES * self.biases
        else:
            body = BYTES_PER_WEIGHT[precision] * (weights + self.biases)
        return int(body + TENSOR_METADATA_BYTES * self.tensors + FILE_FIXED_BYTES)

    def activation_bytes(self, precision: str) -> int:
        return self.peak_activation_elems * BYTES_PER_WEIGHT[precision]

    def tflm_arena_bytes(self) -> int:
        """Estimated TFLite Micro arena for the int8 model (see the TFLM_* constants)."""
        tail = TFLM_TENSOR_BYTES * self.tensors + TFLM_OP_BYTES * self.ops + TFLM_CHANNEL_BYTES * self.biases + TFLM_FIXED_BYTES
        return int(self.activation_bytes("int8") + tail)

    def to_dict(self):
        return {
            "params": self.params, "macs": self.macs, "peak_activation_elems": self.peak_activation_elems, "weights": self.weights,
            "biases": self.biases, "tensors": self.tensors, "ops": self.ops, "activation_traffic_elems": self.activation_traffic_elems,
        }


def student_cost(spec: StudentSpec, input_shape, num_classes: int) -> Cost:
    """The cost of ``spec`` from its architecture, without building a model."""
    return Cost.from_graph(student_graph(spec, input_shape, num_classes))


# tf_keras layers the converter folds into their producer (batch norm into the conv's bias, ReLU into its
# fused activation) or drops: their output aliases their input.
_FOLDED = ("BatchNormalization", "Dropout", "ReLU", "Activation", "InputLayer")
_OP_KIND = {
    "Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D", "Dense": "FULLY_CONNECTED", "HardSwish": "HARD_SWISH",
    "Add": "ADD", "Multiply": "MUL", "GlobalAveragePooling2D": "MEAN", "AveragePooling2D": "AVERAGE_POOL_2D",
    "MaxPooling2D": "MAX_POOL_2D", "Resizing": "RESIZE_BILINEAR", "Reshape": "RESHAPE", "Flatten": "RESHAPE",
}


def model_cost(model) -> Cost:
    """The cost of any single-input tf_keras functional model, read from its layers.

    MACs count convolutions, depthwise convolutions and dense layers (the rest is negligible on these
    nets). Activation memory is the lifetime peak over the layers in order, with the layers the TFLite
    converter folds treated as aliases of their input.
    """
    def elems(shape):
        n = 1
        for v in shape[1:]:
            n *= int(v)
        return n

    alias: Dict[int, int] = {}
    sizes: Dict[int, int] = {}
    ops: List[Tuple[Tuple[int, ...], Tuple[int, ...]]] = []
    kinds = set()
    macs = weights = biases = constants = 0
    inputs = [id(t) for t in model.inputs]
    for t in model.inputs:
        sizes[id(t)] = elems(t.shape)
    for layer in model.layers:
        name = type(layer).__name__
        if name == "InputLayer":
            continue
        node = layer._inbound_nodes[0]
        ins = [alias.get(id(t), id(t)) for t in node.keras_inputs]
        out = node.outputs if not isinstance(node.outputs, (list, tuple)) else node.outputs[0]
        if name in _FOLDED and len(ins) == 1:
            alias[id(out)] = ins[0]
            continue
        sizes[id(out)] = elems(out.shape)
        ops.append((tuple(ins), (id(out),)))
        kinds.add(_OP_KIND.get(name, name))
        out_shape = [int(v) for v in out.shape[1:]]
        if name in ("Conv2D", "DepthwiseConv2D", "Dense"):
            kernel = layer.kernel if name != "DepthwiseConv2D" else layer.depthwise_kernel
            k = int(np.prod(kernel.shape))
            cout = out_shape[-1]
            positions = int(np.prod(out_shape[:-1])) if out_shape[:-1] else 1
            weights += k
            biases += cout
            constants += 2
            macs += positions * k  # each output position multiplies the whole kernel once
        elif name in ("GlobalAveragePooling2D", "Reshape", "Flatten", "Resizing"):
            constants += 1
    outputs = [alias.get(id(t), id(t)) for t in model.outputs]
    peak = peak_live(sizes, ops, inputs, outputs)
    traffic = sum(sum(sizes[t] for t in ins if t in sizes) + sum(sizes[t] for t in outs) for ins, outs in ops)
    return Cost(
        params=int(model.count_params()), macs=int(macs), peak_activation_elems=int(peak), weights=weights, biases=biases,
        tensors=len(sizes) + constants, ops=len(ops), op_kinds=tuple(sorted(kinds)), activation_traffic_elems=int(traffic),
    )


@dataclass
class GraphMeasure:
    """What a converted .tflite file costs, read from the file itself."""

    model_bytes: int
    peak_activation_bytes: int
    ops: int
    tensors: int
    op_names: Tuple[str, ...]


def converted_cost(blob: bytes) -> GraphMeasure:
    """Peak activation memory of a .tflite model from its tensor lifetimes over its op order.

    Activations are the graph inputs and every op output (weights and other constants are read from the
    file, not the arena); each counts its shape times its element size from the file.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=blob, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    details = {d["index"]: d for d in it.get_tensor_details()}
    ops = it._get_ops_details()
    inputs = [d["index"] for d in it.get_input_details()]
    outputs = [d["index"] for d in it.get_output_details()]
    live = set(inputs) | {t for op in ops for t in op["outputs"]}
    sizes = {t: int(np.prod(details[t]["shape"])) * np.dtype(details[t]["dtype"]).itemsize for t in live}
    order = [(tuple(t for t in op["inputs"] if t in live), tuple(op["outputs"])) for op in ops]
    return GraphMeasure(
        model_bytes=len(blob), peak_activation_bytes=peak_live(sizes, order, inputs, outputs), ops=len(ops),
        tensors=len(details), op_names=tuple(sorted({op["op_name"] for op in ops})),
    )


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


def _random_calibration(input_shape, n=8):
    # Sizes and arenas do not depend on the calibration values, only on the graph.
    return np.random.default_rng(0).random((n, *input_shape), dtype=np.float32)


def measure_student(profile: DeviceProfile, spec: StudentSpec, input_shape, num_classes: int, calibration=None) -> dict:
    """Build ``spec``, convert it to the profile's primary format and measure what the device would hold.

    model_bytes: the converted file. memory_bytes: for TFLite Micro the smallest arena tflite-micro runs
    it in; for TFLite formats the lifetime peak of the converted graph; for the others (ONNX, TensorRT,
    CoreML) the lifetime peak of the fp32 TFLite graph at the profile's activation precision.
    """
    from .convert.tflite import tflite_bytes
    from .errors import ConversionError
    from .students import build_student

    fmt = profile.primary_format
    calibration = _random_calibration(input_shape) if calibration is None else calibration
    model = build_student(spec, input_shape, num_classes)
    out: Dict[str, object] = {"format": fmt}
    if fmt.startswith("tflite") or fmt == "tflm-int8":
        blob = tflite_bytes(model, "tflite-int8" if fmt == "tflm-int8" else fmt, calibration)
        graph = converted_cost(blob)
        out.update(model_bytes=graph.model_bytes, graph_peak_activation_bytes=graph.peak_activation_bytes, ops=list(graph.op_names))
        if fmt == "tflm-int8":
            from .convert.tflm import measure_arena

            if profile.op_limits:
                missing = sorted(set(graph.op_names) - set(profile.op_limits))
                if missing:
                    raise ConversionError(f"student {spec} uses op(s) {', '.join(missing)} that {profile.name} lacks", "use an MCU-safe family or add the op to the profile's op_limits")
            arena = measure_arena(blob, np.zeros([1, *input_shape], dtype=np.int8))
            out.update(memory_bytes=arena["arena_size"], arena_reported=arena["arena_reported"])
        else:
            out["memory_bytes"] = graph.peak_activation_bytes
        return out
    graph = converted_cost(tflite_bytes(model, "tflite-fp32"))
    # fp32 graph: 4 bytes per element; the device holds activations at its own precision.
    out["memory_bytes"] = graph.peak_activation_bytes // 4 * BYTES_PER_WEIGHT[profile.primary_precision]
    out["graph_peak_activation_bytes"] = graph.peak_activation_bytes
    from .convert import convert

    with tempfile.TemporaryDirectory(prefix="edgekd-size-") as tmp:
        try:
            artifact = convert(model, "onnx" if fmt == "tensorrt" else fmt, tmp).artifact
            out["model_bytes"] = int(artifact.bytes)
        except ImportError:  # the converter for this format is not installed here: measure the same-precision TFLite file
            proxy = "tflite-fp16" if profile.primary_precision == "fp16" else "tflite-fp32"
            out["model_bytes"] = len(tflite_bytes(model, proxy, calibration))
            out["model_bytes_proxy"] = proxy
    return out


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
