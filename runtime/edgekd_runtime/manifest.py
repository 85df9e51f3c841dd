"""The bundle manifest: one schema, read by the device and written by the host.

A bundle is a folder holding ``manifest.json``, the model file(s) and ``eval.npz``.
The manifest lists every other file with its sha256, so a device can prove that
what it is about to run is what the host verified.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from .errors import BundleFormatError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
EVAL_NAME = "eval.npz"

# Which engine runs which artifact format by default on a device.
DEFAULT_ENGINE = {
    "tflite-fp32": "litert",
    "tflite-fp16": "litert",
    "tflite-dynamic": "litert",
    "tflite-int8": "litert",
    "tflm-int8": "tflm",
    "onnx": "onnxruntime",
    "tensorrt": "tensorrt",
    "coreml": "coreml",
}


def sha256_file(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


@dataclass
class TensorSpec:
    """What a tensor looks like at the model boundary.

    ``scale``/``zero_point`` are set for quantized tensors: real = scale * (q - zero_point).
    """

    shape: List[int]
    dtype: str
    scale: Optional[float] = None
    zero_point: Optional[int] = None


@dataclass
class Preprocessing:
    """Affine map from raw data (as stored in eval.npz and given by users) to model input."""

    scale: float = 1.0
    offset: float = 0.0

    def apply(self, x):
        import numpy as np

        return (np.asarray(x, dtype=np.float32) * np.float32(self.scale) + np.float32(self.offset)).astype(
            np.float32
        )


@dataclass
class Artifact:
    path: str
    format: str
    engine: str
    input: TensorSpec
    output: TensorSpec
    bytes: int = 0
    # Engine-specific settings, e.g. {"arena_size": 12345} for TFLite Micro or
    # {"precision": "fp16"} for a TensorRT engine built on the device.
    settings: Dict[str, Any] = field(default_factory=dict)
    # What the host measured: accuracy, agreement with the Keras student, max abs diff...
    host_metrics: Dict[str, Any] = field(default_factory=dict)
    # "passed", "failed" or "not verified here" (e.g. CoreML on Linux).
    verification: str = "passed"
    # Extra files that travel with the artifact (e.g. the TFLite Micro C array).
    companions: List[str] = field(default_factory=list)


@dataclass
class Manifest:
    name: str
    labels: List[str]
    input: TensorSpec
    preprocessing: Preprocessing
    artifacts: List[Artifact]
    files: Dict[str, str]
    profile: Dict[str, Any] = field(default_factory=dict)
    teacher: Dict[str, Any] = field(default_factory=dict)
    student: Dict[str, Any] = field(default_factory=dict)
    reference: Dict[str, Any] = field(default_factory=dict)
    created: str = ""
    producer: str = ""
    schema_version: int = SCHEMA_VERSION

    def primary(self) -> Artifact:
        return self.artifacts[0]

    def artifact(self, fmt: Optional[str] = None) -> Artifact:
        if fmt is None:
            return self.primary()
        for art in self.artifacts:
            if art.format == fmt or art.engine == fmt:
                return art
        raise BundleFormatError(
            "the bundle has no artifact of format or engine '%s'" % fmt,
            "available: " + ", ".join(a.format for a in self.artifacts),
        )

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Manifest":
        if not isinstance(data, dict):
            raise BundleFormatError("manifest.json is not a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleFormatError(
                "manifest schema version %r is not supported by this runtime (it reads version %d)"
                % (version, SCHEMA_VERSION),
                "install the edgekd-runtime version that matches the host that wrote the bundle",
            )
        try:
            return cls(
                name=str(data["name"]),
                labels=[str(v) for v in data["labels"]],
                input=_tensor(data["input"]),
                preprocessing=Preprocessing(**data.get("preprocessing", {})),
                artifacts=[_artifact(a) for a in data["artifacts"]],
                files={str(k): str(v) for k, v in data["files"].items()},
                profile=dict(data.get("profile", {})),
                teacher=dict(data.get("teacher", {})),
                student=dict(data.get("student", {})),
                reference=dict(data.get("reference", {})),
                created=str(data.get("created", "")),
                producer=str(data.get("producer", "")),
                schema_version=int(version),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleFormatError("manifest.json is malformed: %s: %s" % (type(exc).__name__, exc))


def _tensor(data) -> TensorSpec:
    return TensorSpec(
        shape=[int(v) for v in data["shape"]],
        dtype=str(data["dtype"]),
        scale=None if data.get("scale") is None else float(data["scale"]),
        zero_point=None if data.get("zero_point") is None else int(data["zero_point"]),
    )


def _artifact(data) -> Artifact:
    return Artifact(
        path=str(data["path"]),
        format=str(data["format"]),
        engine=str(data.get("engine") or DEFAULT_ENGINE.get(data["format"], "")),
        input=_tensor(data["input"]),
        output=_tensor(data["output"]),
        bytes=int(data.get("bytes", 0)),
        settings=dict(data.get("settings", {})),
        host_metrics=dict(data.get("host_metrics", {})),
        verification=str(data.get("verification", "passed")),
        companions=[str(c) for c in data.get("companions", [])],
    )
