"""TFLite (LiteRT): fp32, fp16, dynamic-range and full int8 (int8 in and out)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd_runtime import Artifact, TensorSpec

from ..errors import ConversionError

CALIBRATION_SAMPLES = 200


def tflite_bytes(student, fmt: str, calibration=None) -> bytes:
    import tensorflow as tf

    from . import concrete_function

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function(student)], student)
    if fmt in ("tflite-fp16", "tflite-dynamic", "tflite-int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == "tflite-fp16":
        converter.target_spec.supported_types = [tf.float16]
    if fmt == "tflite-int8":
        if calibration is None or len(calibration) == 0:
            raise ConversionError("int8 conversion needs a representative dataset", "pass calibration data (a sample of the training inputs)")
        calibration = np.asarray(calibration, dtype=np.float32)
        expected = tuple(int(v) for v in student.input_shape[1:])
        if tuple(calibration.shape[1:]) != expected:
            raise ConversionError(f"representative data has sample shape {tuple(calibration.shape[1:])}, the model takes {expected}")
        sample = calibration[np.random.default_rng(0).permutation(len(calibration))[:CALIBRATION_SAMPLES]]
        converter.representative_dataset = lambda: ([row[None]] for row in sample)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as exc:  # the MLIR converter raises ConverterError with the op named
        raise ConversionError(f"TFLite conversion to {fmt} failed: {str(exc).splitlines()[0][:300]}", "an op the target lacks: replace the layer or choose another format")


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


def convert(student, fmt, out_dir: Path, calibration=None, name="model", **_):
    blob = tflite_bytes(student, fmt, calibration)
    path = out_dir / f"{name}_{fmt.split('-', 1)[1]}.tflite"
    path.write_bytes(blob)
    inp, out = tensor_specs(blob)
    from . import Converted

    art = Artifact(path=path.name, format=fmt, engine="litert", input=inp, output=out, bytes=len(blob), settings={"ops": op_names(blob)})
    return Converted(art, {path.name: path})
