"""TensorRT: the bundle carries the ONNX and the build settings; the engine is built on the device.

Engines are specific to a GPU and a TensorRT version, so a host-built engine is only useful on a
host with the same GPU; this machine has no TensorRT, so the entry is marked "not verified here".
"""
from __future__ import annotations

import copy
from pathlib import Path


def from_onnx(onnx_converted, precision="fp16", workspace_mb=256):
    """The TensorRT entry for an already converted ONNX artifact (same file, device-side build settings)."""
    from . import Converted

    art = copy.deepcopy(onnx_converted.artifact)
    art.format = "tensorrt"
    art.engine = "tensorrt"
    art.settings = dict(art.settings, precision=precision, workspace_mb=workspace_mb, build="on the device at first use, cached per GPU and TensorRT version")
    art.host_metrics = {}
    art.verification = "not verified here"
    return Converted(art, dict(onnx_converted.files))


def convert(student, fmt, out_dir: Path, calibration=None, name="model", precision="fp16", workspace_mb=256, previous=None, **options):
    from .onnx import convert as to_onnx

    onnx_converted = (previous or {}).get("onnx") or to_onnx(student, "onnx", out_dir, name=name, **options)
    return from_onnx(onnx_converted, precision, workspace_mb)
