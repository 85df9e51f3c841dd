"""Converters: one module per target, one signature for all.

``convert(student, fmt, out_dir, calibration=None, **options) -> Converted``
Every converter starts from a concrete function with a fixed signature, writes its files
under ``out_dir`` and returns the manifest entry the runtime will read.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

from edgekd_runtime import Artifact

from ..errors import ConversionError

_MODULES = {
    "tflite-fp32": "tflite",
    "tflite-fp16": "tflite",
    "tflite-dynamic": "tflite",
    "tflite-int8": "tflite",
    "tflm-int8": "tflm",
    "onnx": "onnx",
    "tensorrt": "tensorrt",
    "coreml": "coreml",
    "c-int8": "c",
}

TARGETS = tuple(_MODULES)
# Short names accepted wherever a list of targets is typed by a person.
ALIASES = {"tflite": "tflite-fp32", "tflm": "tflm-int8", "trt": "tensorrt", "mlpackage": "coreml", "c": "c-int8"}


def resolve_target(name: str) -> str:
    fmt = ALIASES.get(name.strip(), name.strip())
    if fmt not in _MODULES:
        raise ConversionError(f"unknown target format {name!r}", f"targets: {', '.join(TARGETS)}")
    return fmt


def unsupported_ops(target: str, ops, way_out: str = "") -> ConversionError:
    """The one error every converter raises for ops its target lacks: the ops, the target, a way out."""
    ops = sorted(set(ops))
    return ConversionError(
        f"{target} does not support op{'s' if len(ops) > 1 else ''} {', '.join(ops)} used by the student",
        way_out or "replace the layer that emits it with supported ops, or convert to another target",
    )


@dataclass
class Converted:
    artifact: Artifact
    files: Dict[str, Path] = field(default_factory=dict)  # name in the bundle -> file written here


def convert(student, fmt: str, out_dir, calibration=None, **options) -> Converted:
    """Convert a tf_keras ``student`` (taking preprocessed float inputs) to ``fmt``."""
    fmt = resolve_target(fmt)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f".{_MODULES[fmt]}", __name__)
    return module.convert(student, fmt, out_dir, calibration=calibration, **options)


def concrete_function(student, batch=1):
    """The student as a tf.function with a fixed input signature, the common start of every converter."""
    import tensorflow as tf

    shape = [batch] + [int(v) for v in student.input_shape[1:]]
    fn = tf.function(lambda x: student(x, training=False))
    return fn.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="input"))
