"""ONNX through tf2onnx, checked with onnx.checker; dynamic batch by default."""
from __future__ import annotations

from pathlib import Path

from edgekd_runtime import Artifact, TensorSpec

from ..errors import ConversionError

OPSET = 17


def convert(student, fmt, out_dir: Path, calibration=None, name="model", opset=OPSET, fixed_batch=False, tensorrt=None, **_):
    import onnx
    import tensorflow as tf
    import tf2onnx

    from . import Converted

    shape = [1 if fixed_batch else None] + [int(v) for v in student.input_shape[1:]]
    try:
        proto, _ = tf2onnx.convert.from_keras(student, input_signature=[tf.TensorSpec(shape, tf.float32, name="input")], opset=opset)
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ConversionError(f"ONNX conversion failed: {str(exc).splitlines()[0][:300]}", "try another opset (--opset) or replace the unsupported layer")
    path = out_dir / f"{name}.onnx"
    path.write_bytes(proto.SerializeToString())
    in_shape = [1 if fixed_batch else -1] + shape[1:]
    out_shape = [in_shape[0], int(student.output_shape[-1])]
    settings = {"opset": opset, "input_name": proto.graph.input[0].name, "output_name": proto.graph.output[0].name}
    if tensorrt:
        settings["tensorrt"] = dict(tensorrt)
    art = Artifact(path=path.name, format="onnx", engine="onnxruntime", input=TensorSpec(in_shape, "float32"), output=TensorSpec(out_shape, "float32"), bytes=path.stat().st_size, settings=settings)
    return Converted(art, {path.name: path})
