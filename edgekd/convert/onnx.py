"""ONNX through tf2onnx at a chosen opset, fixed or dynamic batch, checked with onnx.checker."""
from __future__ import annotations

import logging
from pathlib import Path

from edgekd_runtime import Artifact, TensorSpec

from ..errors import ConversionError

OPSET = 17
# tf2onnx 1.17 emits opsets 9..18; below 13 several Keras layers (e.g. Softmax over an axis) lower badly.
OPSETS = range(9, 19)


def onnx_model(student, opset: int = OPSET, fixed_batch: bool = False):
    """The checked ModelProto: input named ``input``, output ``logits``."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    from . import unsupported_ops

    if int(opset) not in OPSETS:
        raise ConversionError(f"ONNX opset {opset} is not supported by tf2onnx here", f"choose an opset from {OPSETS.start} to {OPSETS.stop - 1}")
    shape = [1 if fixed_batch else None] + [int(v) for v in student.input_shape[1:]]
    # tf2onnx logs unsupported ops as errors and still returns a graph holding them: keep its log quiet
    # and find them ourselves, so the user gets one message naming them.
    log = logging.getLogger("tf2onnx")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        proto, _ = tf2onnx.convert.from_keras(
            student, input_signature=[tf.TensorSpec(shape, tf.float32, name="input")], opset=int(opset), output_path=None
        )
    except Exception as exc:
        raise ConversionError(f"ONNX conversion failed: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}", "try another opset (--opset) or replace the unsupported layer")
    finally:
        log.setLevel(level)
    missing = {n.op_type for n in proto.graph.node if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)}
    if missing:
        raise unsupported_ops(f"ONNX (opset {opset})", missing, "replace the layer with standard ops, or use a TFLite target")
    if len(proto.graph.output) == 1 and proto.graph.output[0].name != "logits":
        _rename_output(proto, proto.graph.output[0].name, "logits")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ConversionError(f"ONNX model fails onnx.checker: {str(exc).splitlines()[0][:300]}", "try another opset (--opset)")
    return proto


def _rename_output(proto, old: str, new: str) -> None:
    """A meaningful output name for devices that bind outputs by name."""
    for node in proto.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    proto.graph.output[0].name = new


def convert(student, fmt, out_dir: Path, calibration=None, name="model", opset=None, fixed_batch=False, tensorrt=None, profile=None, **_):
    from . import Converted

    # An opset asked for wins; else the device's (a Jetson Nano's onnxruntime 1.10 reads no newer than 15); else ours.
    opset = opset or (profile.onnx_opset if profile is not None else None) or OPSET
    proto = onnx_model(student, opset, fixed_batch)
    path = out_dir / f"{name}.onnx"
    path.write_bytes(proto.SerializeToString())
    in_shape = [1 if fixed_batch else -1] + [int(v) for v in student.input_shape[1:]]
    out_shape = [in_shape[0], int(student.output_shape[-1])]
    settings = {"opset": int(opset), "batch": "fixed" if fixed_batch else "dynamic", "input_name": proto.graph.input[0].name, "output_name": proto.graph.output[0].name}
    if tensorrt:
        settings["tensorrt"] = dict(tensorrt)
    art = Artifact(path=path.name, format="onnx", engine="onnxruntime", input=TensorSpec(in_shape, "float32"), output=TensorSpec(out_shape, "float32"), bytes=path.stat().st_size, settings=settings)
    return Converted(art, {path.name: path})
