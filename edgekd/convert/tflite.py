"""TFLite (LiteRT): fp32, fp16, dynamic-range and full int8 (int8, uint8 or float input/output).

Full int8 is calibrated on a representative sample of the training inputs, except for models trained
with quantization-aware training (tensorflow-model-optimization's ``quantize_model``): their ranges
were learned in training and the converter reads them from the fake-quant nodes.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgekd_runtime import Artifact, TensorSpec

from ..errors import ConversionError

# Representative samples drawn for full-int8 calibration. On the digits phone student, 200 left the
# activation ranges loose (max abs diff 0.88, 0.56 points lost); 500 or more gave 0.29-0.31 and 0.28.
CALIBRATION_SAMPLES = 1000
IO_TYPES = ("int8", "uint8", "float")

# Layers tensorflow-model-optimization inserts when a model is made quantization-aware.
_QAT_LAYERS = ("QuantizeLayer", "QuantizeWrapper", "QuantizeWrapperV2", "QuantizeAnnotate")


def is_quantization_aware(model) -> bool:
    return any(type(layer).__name__ in _QAT_LAYERS for layer in getattr(model, "layers", []))


def check_calibration(student, calibration) -> np.ndarray:
    """The representative inputs as float32, refused with a clear message when their shape is wrong."""
    calibration = np.asarray(calibration)
    expected = tuple(int(v) for v in student.input_shape[1:])
    if calibration.ndim != len(expected) + 1 or tuple(calibration.shape[1:]) != expected:
        raise ConversionError(
            f"representative data has sample shape {tuple(calibration.shape[1:])}, the model takes {expected}",
            "pass samples of the student's input (the training inputs, preprocessed as for training)",
        )
    if calibration.dtype.kind not in "fiu":
        raise ConversionError(f"representative data has dtype {calibration.dtype}; expected numbers")
    calibration = calibration.astype(np.float32)
    if not np.all(np.isfinite(calibration)):
        raise ConversionError("representative data contains NaN or Inf", "clean the calibration samples")
    return calibration


def tflite_bytes(student, fmt: str, calibration=None, io=None, calibration_samples: int = CALIBRATION_SAMPLES) -> bytes:
    """The ``fmt`` flatbuffer of ``student``; ``io`` picks int8/uint8/float model inputs and outputs
    for full int8 (default int8: what MCUs and NPUs take). The one int8 path for quantization-aware students too
    (:mod:`edgekd.distill.qat`): their ranges come from training, so they need no ``calibration``."""
    import tensorflow as tf

    from . import concrete_function

    if io is not None and io not in IO_TYPES:
        raise ConversionError(f"unknown input/output type {io!r}", f"choose one of {', '.join(IO_TYPES)}")
    if fmt != "tflite-int8" and io not in (None, "float"):
        raise ConversionError(f"{io} inputs/outputs need full integer quantization; {fmt} keeps float ones", "use tflite-int8")
    qat = is_quantization_aware(student)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function(student)], _variables_only(student))
    if fmt in ("tflite-fp16", "tflite-dynamic", "tflite-int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == "tflite-fp16":
        converter.target_spec.supported_types = [tf.float16]
    if fmt == "tflite-int8":
        if not qat:
            if calibration is None or len(calibration) == 0:
                raise ConversionError("int8 conversion needs a representative dataset", "pass calibration data (a sample of the training inputs)")
            calibration = check_calibration(student, calibration)
            sample = calibration[np.random.default_rng(0).permutation(len(calibration))[:calibration_samples]]
            converter.representative_dataset = lambda: ([row[None]] for row in sample)
            # Only calibrated conversion may demand int8 builtins: for a QAT model the converter would then
            # insist on a representative dataset although the fake-quant nodes already carry every range.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = {"int8": tf.int8, "uint8": tf.uint8, "float": tf.float32}[io or "int8"]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    try:
        return converter.convert()
    except Exception as exc:  # the MLIR converter raises ConverterError with the op named in its text
        raise conversion_error(fmt, str(exc))


def _variables_only(student):
    """What the converter saves beside the function: the student's variables alone. Handed the tf_keras model itself,
    it serializes every layer's call functions first (about 18 of 24 s per int8 conversion of a digits MobileNet on this
    loaded 2-core host; the same bytes either way)."""
    import tensorflow as tf

    holder = tf.Module()
    holder.variables_held = list(student.variables)
    return holder


def conversion_error(fmt: str, text: str) -> ConversionError:
    from . import unsupported_ops

    ops = set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text))
    ops |= {op.strip() for line in re.findall(r"Custom ops: ([\w, ]+)", text) for op in line.split(",") if op.strip()}
    if ops:
        return unsupported_ops(f"TFLite ({fmt})", ops, "replace the layer with builtin ops, or use onnx/coreml if they have it")
    return ConversionError(f"TFLite conversion to {fmt} failed: {text.strip().splitlines()[0][:300] if text.strip() else 'no message'}", "an op the target lacks: replace the layer or choose another format")


def tensor_specs(model_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes)
    return _spec(it.get_input_details()[0]), _spec(it.get_output_details()[0])


def op_names(model_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model_bytes, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return sorted({op["op_name"] for op in it._get_ops_details()})


def _spec(detail) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    quantized = np.dtype(detail["dtype"]).kind in "iu" and scale != 0.0
    return TensorSpec(
        shape=[int(v) for v in detail["shape"]],
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale) if quantized else None,
        zero_point=int(zero_point) if quantized else None,
    )


def convert(student, fmt, out_dir: Path, calibration=None, name="model", io=None, calibration_samples=CALIBRATION_SAMPLES, **_):
    blob = tflite_bytes(student, fmt, calibration, io=io, calibration_samples=calibration_samples)
    suffix = fmt.split("-", 1)[1]
    if fmt == "tflite-int8" and io not in (None, "int8"):
        suffix += f"_{io}io"
    path = out_dir / f"{name}_{suffix}.tflite"
    path.write_bytes(blob)
    inp, out = tensor_specs(blob)
    from . import Converted

    settings = {"ops": op_names(blob)}
    if fmt == "tflite-int8":
        qat = is_quantization_aware(student)
        settings.update(io=io or "int8", quantization="quantization-aware training" if qat else "post-training", calibration_samples=0 if qat else min(calibration_samples, len(calibration)))
    art = Artifact(path=path.name, format=fmt, engine="litert", input=inp, output=out, bytes=len(blob), settings=settings)
    return Converted(art, {path.name: path})
