"""The bundle manifest: one schema, read by the device and written by the host.

A bundle is a folder holding ``manifest.json``, the model file(s) and ``eval.npz``.
The manifest lists every other file with its sha256, so a device can prove that
what it is about to run is what the host verified.
"""

import hashlib
import json
import math
from typing import Any, Dict, List, Optional

from .errors import BundleFormatError
from .records import REQUIRED as _REQUIRED, Record as _Record

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


class TensorSpec(_Record):
    """What a tensor looks like at the model boundary: ``shape`` (list of int, -1 for a dynamic size), ``dtype``.

    ``scale``/``zero_point`` are set for quantized tensors: real = scale * (q - zero_point).
    """

    _fields = (("shape", _REQUIRED), ("dtype", _REQUIRED), ("scale", None), ("zero_point", None))


class Preprocessing(_Record):
    """Map from raw data (as stored in eval.npz and given by users) to model input: ``x * scale + offset``, then,
    when ``mean``/``std`` are set, ``(. - mean) / std`` per channel (the last axis; one value serves every channel).

    ``mean``/``std`` are absent from bundles written before they existed and are left out of the manifest when
    unset, so such a bundle reads the same in older and newer runtimes.
    """

    _fields = (("scale", 1.0), ("offset", 0.0), ("mean", None), ("std", None))

    def apply(self, x):
        import numpy as np

        y = np.asarray(x, dtype=np.float32) * np.float32(self.scale) + np.float32(self.offset)
        if self.mean is not None or self.std is not None:
            # Subtract, then divide (not a folded affine map): the host trains and verifies through this same code.
            y = (y - np.asarray(self.mean or [0.0], np.float32)) / np.asarray(self.std or [1.0], np.float32)
        return y.astype(np.float32)

    def describe(self) -> str:
        """One line for messages and `edgekd-runtime info`."""
        text = "x*%.6g%+.6g" % (self.scale, self.offset)
        if self.mean is None and self.std is None:
            return text
        return "(%s - mean)/std, mean=%s, std=%s" % (text, _numbers(self.mean or [0.0]), _numbers(self.std or [1.0]))

    def to_dict(self) -> Dict[str, Any]:
        return dict((k, v) for k, v in self.to_plain().items() if v is not None)


def _numbers(values) -> str:
    return ",".join("%.6g" % v for v in values)


UNVERIFIED = "unverified"  # what an artifact reads as when no verification was recorded


class Artifact(_Record):
    """One model file of the bundle: ``path``, ``format``, ``engine``, ``input``/``output`` (TensorSpec), ``bytes``."""

    _fields = (
        ("path", _REQUIRED),
        ("format", _REQUIRED),
        ("engine", _REQUIRED),
        ("input", _REQUIRED),
        ("output", _REQUIRED),
        ("bytes", 0),
        # Engine-specific settings, e.g. {"arena_size": 12345} for TFLite Micro or
        # {"precision": "fp16"} for a TensorRT engine built on the device.
        ("settings", dict),
        # What the host measured: accuracy, agreement with the Keras student, max abs diff...
        ("host_metrics", dict),
        # "passed", "failed", "not verified here" (e.g. CoreML on Linux) or, when nothing was recorded, "unverified":
        # only the host's parity check says "passed", so a writer that forgets it cannot ship an unchecked artifact.
        ("verification", UNVERIFIED),
        # Extra files that travel with the artifact (e.g. the TFLite Micro C array).
        ("companions", list),
    )


class Manifest(_Record):
    """The bundle's manifest.json: what it holds (artifacts, files and their sha256) and how it was made."""

    _fields = (
        ("name", _REQUIRED),
        ("labels", _REQUIRED),
        ("input", _REQUIRED),
        ("preprocessing", _REQUIRED),
        ("artifacts", _REQUIRED),
        ("files", _REQUIRED),
        ("profile", dict),
        ("teacher", dict),
        ("student", dict),
        ("reference", dict),
        ("created", ""),
        ("producer", ""),
        ("schema_version", SCHEMA_VERSION),
    )

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
        data = self.to_plain()
        data["preprocessing"] = self.preprocessing.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Manifest":
        """A Manifest from parsed JSON, or a one-line BundleFormatError naming the first bad field.

        Every field is checked for its type here, once, so that the CLI, the engine selection and the
        backends can trust what they read (a bundle may come from an older host, a hand edit or a damaged copy).
        """
        if not isinstance(data, dict):
            raise BundleFormatError("manifest.json is not a JSON object (found %s)" % _kind(data), _REBUILD)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise BundleFormatError(
                "manifest schema version %s is not supported by this runtime (it reads version %d)"
                % (_show(version), SCHEMA_VERSION),
                "install the edgekd-runtime version that matches the host that wrote the bundle",
            )
        artifacts = _list(_required(data, "artifacts", "manifest"), "artifacts")
        if not artifacts:
            raise BundleFormatError("manifest.json is malformed: it lists no artifacts (no model to run)", _REBUILD)
        files = _required(data, "files", "manifest")
        if not isinstance(files, dict):
            raise BundleFormatError(
                "manifest.json is malformed: 'files' must be an object mapping each file name to its sha256, not %s" % _kind(files),
                _REBUILD,
            )
        return cls(
            name=_text(_required(data, "name", "manifest"), "name"),
            labels=[_text(v, "labels[%d]" % i) for i, v in enumerate(_list(_required(data, "labels", "manifest"), "labels"))],
            input=_tensor(_required(data, "input", "manifest"), "input"),
            preprocessing=_preprocessing(data.get("preprocessing", {}), data["input"]),
            artifacts=[_artifact(a, "artifacts[%d]" % i) for i, a in enumerate(artifacts)],
            files=dict((_text(k, "files key"), _text(v, "files[%r]" % k)) for k, v in files.items()),
            profile=_table(data, "profile"),
            teacher=_table(data, "teacher"),
            student=_table(data, "student"),
            reference=_table(data, "reference"),
            created=_text(data.get("created", ""), "created"),
            producer=_text(data.get("producer", ""), "producer"),
            schema_version=SCHEMA_VERSION,
        )


_REBUILD = "the bundle is damaged or was not written by `edgekd build`: copy or rebuild it"


def _kind(value) -> str:
    """A JSON type's name as a user reads it in the file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value) -> str:
    # repr, cut short: a value from the file may be huge or hold a newline, and errors are one line.
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _malformed(where: str, expected: str, value) -> BundleFormatError:
    return BundleFormatError("manifest.json is malformed: %s must be %s, not %s" % (where, expected, _kind(value)), _REBUILD)


def _required(data, key: str, where: str):
    if key not in data:
        raise BundleFormatError("manifest.json is malformed: %s has no '%s'" % (where, key), _REBUILD)
    return data[key]


def _object(value, where: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(where, "an object", value)
    return value


def _list(value, where: str) -> List[Any]:
    if not isinstance(value, list):
        raise _malformed(where, "a list", value)
    return value


def _text(value, where: str) -> str:
    # Numbers pass as text: a label or a name written as 3 by another tool means "3".
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _malformed(where, "a string", value)


def _integer(value, where: str) -> int:
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(where, "an integer", value)
    return value


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _malformed(where, "a number", value)
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float's range
        number = math.inf
    if not math.isfinite(number):
        raise BundleFormatError("manifest.json is malformed: %s must be a finite number, not %s" % (where, _show(value)), _REBUILD)
    return number


def _table(data, key: str) -> Dict[str, Any]:
    value = data.get(key)
    return {} if value is None else dict(_object(value, key))


def _dtype(value, where: str) -> str:
    import numpy as np

    name = _text(value, where)
    try:
        dtype = np.dtype(name)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in ("f", "i", "u"):
        raise BundleFormatError("manifest.json is malformed: %s %s is not a numeric dtype (e.g. float32, int8, uint8)" % (where, _show(name)), _REBUILD)
    # The canonical name: the model code compares names ("float32"), and "f4" means the same.
    return dtype.name


def _preprocessing(value, input_spec) -> Preprocessing:
    value = {} if value is None else _object(value, "preprocessing")
    known = Preprocessing.field_names()
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise BundleFormatError(
            "manifest.json is malformed: preprocessing has unknown field(s) %s (this runtime reads %s)" % (_show(unknown), ", ".join(known)),
            "install the edgekd-runtime version that matches the host that wrote the bundle",
        )
    scalars = dict((k, _number(value[k], "preprocessing." + k)) for k in ("scale", "offset") if k in value)
    # input_spec is read as the manifest's raw input (already checked by from_dict); its last axis is the channels.
    shape = input_spec.get("shape") if isinstance(input_spec, dict) else None
    channels = shape[-1] if isinstance(shape, list) and shape and isinstance(shape[-1], int) and shape[-1] > 0 else None
    per_channel = dict((k, _channels(value[k], "preprocessing." + k, channels)) for k in ("mean", "std") if value.get(k) is not None)
    if any(v <= 0 for v in per_channel.get("std", [])):
        raise BundleFormatError("manifest.json is malformed: preprocessing.std must hold positive numbers, not %s" % _show(value["std"]), _REBUILD)
    return Preprocessing(**dict(scalars, **per_channel))


def _channels(value, where: str, channels) -> List[float]:
    numbers = [_number(v, "%s[%d]" % (where, i)) for i, v in enumerate(_list(value, where))]
    if not numbers or (channels is not None and len(numbers) not in (1, channels)):
        raise BundleFormatError(
            "manifest.json is malformed: %s has %d value(s); it needs one, or one per input channel (%s)" % (where, len(numbers), channels), _REBUILD
        )
    return numbers


def _tensor(data, where: str) -> TensorSpec:
    data = _object(data, where)
    shape = _list(_required(data, "shape", where), where + ".shape")
    dims = [_integer(v, "%s.shape[%d]" % (where, i)) for i, v in enumerate(shape)]
    if not dims or any(d < -1 for d in dims):
        raise BundleFormatError(
            "manifest.json is malformed: %s.shape %s must list one or more sizes (-1 for a dynamic one)" % (where, _show(dims)), _REBUILD
        )
    scale = data.get("scale")
    zero_point = data.get("zero_point")
    if scale is not None:
        scale = _number(scale, where + ".scale")
        if scale <= 0:
            raise BundleFormatError("manifest.json is malformed: %s.scale must be positive, not %s" % (where, _show(scale)), _REBUILD)
    return TensorSpec(
        shape=dims,
        dtype=_dtype(_required(data, "dtype", where), where + ".dtype"),
        scale=scale,
        zero_point=None if zero_point is None else _integer(zero_point, where + ".zero_point"),
    )


def _artifact(data, where: str) -> Artifact:
    data = _object(data, where)
    fmt = _text(_required(data, "format", where), where + ".format")
    size = _integer(data.get("bytes", 0), where + ".bytes")
    if size < 0:
        raise BundleFormatError("manifest.json is malformed: %s.bytes is negative" % where, _REBUILD)
    return Artifact(
        path=_text(_required(data, "path", where), where + ".path"),
        format=fmt,
        engine=_text(data.get("engine") or DEFAULT_ENGINE.get(fmt, ""), where + ".engine"),
        input=_tensor(_required(data, "input", where), where + ".input"),
        output=_tensor(_required(data, "output", where), where + ".output"),
        bytes=size,
        settings=dict(_object(data.get("settings", {}), where + ".settings")),
        host_metrics=dict(_object(data.get("host_metrics", {}), where + ".host_metrics")),
        verification=_text(data.get("verification") or UNVERIFIED, where + ".verification"),
        companions=[_text(c, "%s.companions[%d]" % (where, i)) for i, c in enumerate(_list(data.get("companions", []), where + ".companions"))],
    )
