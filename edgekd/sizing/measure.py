"""What a converted student costs, measured: the model file, the activation lifetimes of the converted graph,
and on microcontrollers the TFLite Micro arena measured with tflite-micro.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from ..profiles import BYTES_PER_WEIGHT, DeviceProfile
from ..students import StudentSpec
from ..students.nn import peak_live


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


def _random_calibration(input_shape, n=8):
    # Sizes and arenas do not depend on the calibration values, only on the graph.
    return np.random.default_rng(0).random((n, *input_shape), dtype=np.float32)


# Measurements already taken in this process: a build measures a candidate while planning and again once it is chosen,
# and the demo's builds share candidates. Sizes depend on the graph and the format, not on the calibration values.
_MEASURED: Dict[tuple, dict] = {}


def measure_student(profile: DeviceProfile, spec: StudentSpec, input_shape, num_classes: int, calibration=None) -> dict:
    """Build ``spec``, convert it to the profile's primary format and measure what the device would hold.

    model_bytes: the converted file. memory_bytes: for TFLite Micro the smallest arena tflite-micro runs
    it in; for TFLite formats the lifetime peak of the converted graph; for the others (ONNX, TensorRT,
    CoreML) the lifetime peak of the fp32 TFLite graph at the profile's activation precision. seconds: what the
    conversion and measurement took on this host (the build plans its conversion time with it); a student measured
    before in this process for the same format, precision and ops is not converted again.
    """
    key = (profile.primary_format, profile.primary_precision, tuple(sorted(profile.op_limits or ())), str(spec),
           tuple(int(v) for v in input_shape), int(num_classes))
    if key not in _MEASURED:
        start = time.monotonic()
        out = _measure(profile, spec, input_shape, num_classes, calibration)
        out["seconds"] = round(time.monotonic() - start, 2)
        _MEASURED[key] = out
    return dict(_MEASURED[key])


def _measure(profile: DeviceProfile, spec: StudentSpec, input_shape, num_classes: int, calibration) -> dict:
    from ..convert.tflite import tflite_bytes
    from ..errors import ConversionError
    from ..students import build_student

    fmt = profile.primary_format
    calibration = _random_calibration(input_shape) if calibration is None else calibration
    model = build_student(spec, input_shape, num_classes)
    out: Dict[str, object] = {"format": fmt}
    if fmt.startswith("tflite") or fmt == "tflm-int8":
        blob = tflite_bytes(model, "tflite-int8" if fmt == "tflm-int8" else fmt, calibration)
        graph = converted_cost(blob)
        out.update(model_bytes=graph.model_bytes, graph_peak_activation_bytes=graph.peak_activation_bytes, ops=list(graph.op_names))
        if fmt == "tflm-int8":
            from ..convert.tflm import measure_arena

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
    from ..convert import convert

    with tempfile.TemporaryDirectory(prefix="edgekd-size-") as tmp:
        try:
            artifact = convert(model, "onnx" if fmt == "tensorrt" else fmt, tmp).artifact
            out["model_bytes"] = int(artifact.bytes)
        except ImportError:  # the converter for this format is not installed here: measure the same-precision TFLite file
            proxy = "tflite-fp16" if profile.primary_precision == "fp16" else "tflite-fp32"
            out["model_bytes"] = len(tflite_bytes(model, proxy, calibration))
            out["model_bytes_proxy"] = proxy
    return out
