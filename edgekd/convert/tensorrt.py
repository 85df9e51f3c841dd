"""TensorRT: the bundle carries the ONNX and the build settings; the engine is built on the device.

Engines are specific to a GPU and a TensorRT version, so a host-built engine is only useful on a host
with the same GPU. When the TensorRT Python API is importable here, the engine is built here too (fp32,
fp16, or int8 calibrated over the representative data) and shipped beside the ONNX as a companion;
either way the entry is "not verified here" until a device with TensorRT runs it, because no machine
this project is developed on has TensorRT (../shared/STACK.md).

For int8 the representative inputs travel with the bundle (``trt_calibration.npy``), so the device can
calibrate its own engine: a calibration cache from another TensorRT version is not reusable.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from edgekd_runtime.backends.tensorrt import calibration_sample

from ..errors import ConversionError

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_FILE = "trt_calibration.npy"


def tensorrt_module():
    """``tensorrt`` when its Python API imports here, else None."""
    try:
        import tensorrt

        return tensorrt
    except ImportError:
        return None


def build_engine(onnx_path: Path, precision: str, workspace_mb: int, calibration=None, cache_path=None) -> bytes:
    """The runtime's engine builder, so a host-built engine is made exactly as the device would make it."""
    from edgekd_runtime.backends.tensorrt import build_engine as runtime_build_engine
    from edgekd_runtime.errors import EngineUnavailableError, ModelError

    try:
        return runtime_build_engine(str(onnx_path), precision, workspace_mb, calibration, str(cache_path) if cache_path else None)
    except (ModelError, EngineUnavailableError) as exc:
        raise ConversionError(f"TensorRT engine build failed: {exc}")


def from_onnx(onnx_converted, precision="fp16", workspace_mb=256, calibration=None, out_dir=None, build_here=None):
    """The TensorRT entry for an already converted ONNX artifact (same file, device-side build settings)."""
    from . import Converted

    if precision not in PRECISIONS:
        raise ConversionError(f"unknown TensorRT precision {precision!r}", f"choose one of {', '.join(PRECISIONS)}")
    art = copy.deepcopy(onnx_converted.artifact)
    files = dict(onnx_converted.files)
    onnx_path = next(iter(files.values()))
    out_dir = Path(out_dir) if out_dir is not None else onnx_path.parent
    art.format = "tensorrt"
    art.engine = "tensorrt"
    art.settings = dict(art.settings, precision=precision, workspace_mb=workspace_mb, build="on the device at first use, cached per GPU and TensorRT version")
    art.companions = []
    sample = None
    if precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ConversionError("TensorRT int8 needs a representative dataset for its calibrator", "pass calibration data, or use fp16")
        # The device calibrates on this file, the host (below) on the same inputs in the same order.
        sample = calibration_sample(calibration)
        path = out_dir / CALIBRATION_FILE
        np.save(path, sample)
        files[path.name] = path
        art.companions.append(path.name)
        art.settings.update(calibration_data=path.name, calibrator="IInt8EntropyCalibrator2", calibration_samples=int(len(sample)))
    trt = tensorrt_module() if build_here is not False else None
    if trt is not None:
        engine = out_dir / f"{onnx_path.stem}_{precision}.engine"
        engine.write_bytes(build_engine(onnx_path, precision, workspace_mb, sample, out_dir / "trt_calibration.cache"))
        files[engine.name] = engine
        art.companions.append(engine.name)
        art.settings["host_engine"] = {"file": engine.name, "tensorrt": trt.__version__, "note": "usable only on the same GPU model and TensorRT version"}
    art.host_metrics = {"reason": "TensorRT is not installed here" if trt is None else "engine built here, not run"}
    art.verification = "not verified here"
    return Converted(art, files)


def convert(student, fmt, out_dir: Path, calibration=None, name="model", precision="fp16", workspace_mb=256, previous=None, trt_precision=None, **options):
    from .onnx import convert as to_onnx

    onnx_converted = (previous or {}).get("onnx") or to_onnx(student, "onnx", out_dir, name=name, **options)
    return from_onnx(onnx_converted, trt_precision or precision, workspace_mb, calibration, out_dir)
