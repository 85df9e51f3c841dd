"""Device profiles: what a device can store, hold in memory, compute, and run.

Profiles are YAML files validated once here; everything downstream trusts them.
The built-in ones live in ``edgekd/device_profiles/`` (package data, so a wheel install finds them; ``device_profiles/``
at the repository root links there); users pass their own by path.

>>> p = load_profile("cortex-m7")
>>> p.budgets.model_bytes, p.formats[0]
(2097152, 'tflm-int8')
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ProfileError

PROFILE_DIR = Path(__file__).resolve().parent / "device_profiles"

FORMATS = ("tflite-int8", "tflite-fp16", "tflite-fp32", "tflite-dynamic", "tflm-int8", "onnx", "tensorrt", "coreml", "c-int8")
PRECISIONS = ("int8", "fp16", "fp32")
BYTES_PER_WEIGHT = {"int8": 1, "fp16": 2, "fp32": 4}
FORMAT_PRECISION = {
    "tflite-int8": "int8",
    "tflm-int8": "int8",
    "tflite-fp16": "fp16",
    "tflite-fp32": "fp32",
    "tflite-dynamic": "int8",
    "onnx": "fp32",
    "tensorrt": "fp16",
    "coreml": "fp16",
    "c-int8": "int8",
}


class _Strict(BaseModel):
    # No NaN or infinity: a budget or a rate that is not a finite number turns every estimate into nonsense.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Budgets(_Strict):
    model_bytes: int = Field(gt=0, description="storage / flash available for the model file")
    memory_bytes: int = Field(gt=0, description="RAM for activations (the TFLM arena on an MCU)")
    latency_ms: float = Field(gt=0, description="per-inference latency budget")


class Compute(_Strict):
    peak_macs_per_s: Dict[str, float] = Field(description="peak multiply-accumulates per second, by precision")
    efficiency: float = Field(gt=0, le=1, description="fraction of peak a small CNN reaches in practice")
    overhead_ms: float = Field(ge=0, default=0.0, description="fixed per-inference cost (dispatch, copies)")
    clock_hz: Optional[float] = Field(
        default=None, gt=0,
        description="core clock; turns an emulated firmware's instruction count into a latency estimate (edgekd firmware)",
    )
    activation_ns_per_elem: Optional[float] = Field(
        default=None, ge=0,
        description="time per activation element each op reads or writes (requantization, elementwise ops, memory); "
        "None: latency from MACs alone",
    )

    @field_validator("peak_macs_per_s")
    @classmethod
    def _known_precisions(cls, value):
        for key, rate in value.items():
            if key not in PRECISIONS:
                raise ValueError(f"unknown precision {key!r} (known: {', '.join(PRECISIONS)})")
            if rate <= 0:
                raise ValueError(f"peak_macs_per_s[{key}] must be positive")
        return value


class DeviceProfile(_Strict):
    name: str
    device_class: Literal["phone", "sbc", "gpu-edge", "mcu", "desktop"]
    description: str = ""
    engine: str = Field(description="the runtime engine that runs the primary format on the device")
    formats: List[str] = Field(min_length=1, description="artifact formats, most preferred first")
    precisions: List[str] = Field(min_length=1)
    budgets: Budgets
    compute: Compute
    op_limits: Optional[List[str]] = Field(default=None, description="ops the device's interpreter supports (MCUs)")
    onnx_opset: Optional[int] = Field(
        default=None, ge=13, le=18,
        description="the ONNX opset its engines read, when older than edgekd's default (onnxruntime 1.10, the last for "
        "JetPack 4.6's Python 3.6, reads up to 15)",
    )
    sources: List[str] = Field(default_factory=list, description="datasheets the figures come from")

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value):
        for fmt in value:
            if fmt not in FORMATS:
                raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        return value

    @field_validator("precisions")
    @classmethod
    def _known_precision_list(cls, value):
        for p in value:
            if p not in PRECISIONS:
                raise ValueError(f"unknown precision {p!r} (known: {', '.join(PRECISIONS)})")
        return value

    @field_validator("formats")
    @classmethod
    def _no_repeats(cls, value):
        if len(set(value)) != len(value):
            raise ValueError("a format is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.primary_precision not in self.compute.peak_macs_per_s:
            raise ValueError(f"compute.peak_macs_per_s has no entry for {self.primary_precision}, the precision of {self.formats[0]}")
        for fmt in self.formats:
            if FORMAT_PRECISION[fmt] not in self.precisions:
                raise ValueError(f"format {fmt} runs in {FORMAT_PRECISION[fmt]}, which is not in precisions {self.precisions}")
        if self.device_class == "mcu" and not self.op_limits:
            raise ValueError("an mcu profile needs op_limits: the ops its TFLite Micro build registers")
        return self

    @property
    def primary_format(self) -> str:
        return self.formats[0]

    @property
    def primary_precision(self) -> str:
        return FORMAT_PRECISION[self.formats[0]]

    def estimate_latency_ms(self, macs: float, precision: Optional[str] = None, activation_elems: float = 0.0) -> float:
        """overhead + MACs / (peak x efficiency) [+ activation elements x time per element, if the profile has it]."""
        return self.compute.overhead_ms + self.variable_latency_ms(macs, precision, activation_elems)

    def variable_latency_ms(self, macs: float, precision: Optional[str] = None, activation_elems: float = 0.0) -> float:
        rate = self.compute.peak_macs_per_s[precision or self.primary_precision] * self.compute.efficiency
        ms = 1000.0 * macs / rate
        if self.compute.activation_ns_per_elem:
            ms += 1e-6 * activation_elems * self.compute.activation_ns_per_elem
        return ms


def available_profiles() -> List[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path) -> DeviceProfile:
    """Load a built-in profile by name, or any profile YAML by path."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    text = str(name_or_path)
    path = Path(text) if (os.sep in text or text.endswith((".yaml", ".yml"))) else PROFILE_DIR / f"{text}.yaml"
    if not path.is_file():
        raise ProfileError(f"unknown profile {text!r}", f"built-in profiles: {', '.join(available_profiles())}; or pass a path to a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)", "save the profile as UTF-8 YAML")
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror or exc}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ProfileError(f"{path} is not valid YAML: {first}", "fix the YAML syntax at the line it names")
    except RecursionError:
        raise ProfileError(f"{path} is nested too deeply to be a device profile", "start from one of device_profiles/*.yaml")
    return validate_profile(data, source=str(path))


def validate_profile(data, source: str = "profile") -> DeviceProfile:
    """A DeviceProfile from parsed YAML/JSON, or a ProfileError naming every bad field."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source} is not a device profile: expected a mapping of fields, got {type(data).__name__}", "start from one of device_profiles/*.yaml")
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'profile'}: {_message(err)}" for err in exc.errors())
        raise ProfileError(f"{source} is not a valid device profile: {problems}", "fix the named field(s); `edgekd profiles show cortex-m7` prints a complete example")


def _message(err) -> str:
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "missing":
        return "missing (required)"
    if err["type"] == "extra_forbidden":
        return "not a profile field (misspelt?)"
    return msg


def save_profile(profile: DeviceProfile, path, comment: str = "") -> Path:
    """Write ``profile`` as YAML (with ``comment`` lines on top) that ``load_profile`` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(header + yaml.safe_dump(profile.model_dump(), sort_keys=False))
    tmp.replace(path)
    return path
