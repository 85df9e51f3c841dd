"""What the collector accepts: the report schema written by ``edgekd_runtime.report`` (version 1).

Validated once, at the edge (the HTTP handler); the store and the tables trust what passed.
Unknown extra fields are kept: a newer runtime may add figures without breaking older collectors.
"""
from __future__ import annotations

import datetime
import json
import math
from typing import Any, Dict, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# The Literal types below mirror edgekd_runtime.report.REPORT_SCHEMA and KINDS (tests check they agree).
from edgekd_runtime.report import MAX_REPORT_BYTES, REPORT_SCHEMA_VERSION

__all__ = ["MAX_REPORT_BYTES", "ReportError", "parse_report", "validate_report"]

Fraction = Field(default=None, ge=0.0, le=1.0)


class ReportError(ValueError):
    """A payload that is not a report this collector stores; ``status`` is the HTTP answer (400, 413, 422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class Latency(_Model):
    p50_ms: float = Field(ge=0)
    p90_ms: float = Field(ge=0)
    p99_ms: float = Field(ge=0)
    mean_ms: float = Field(ge=0)
    runs: int = Field(ge=1)


class HostExpected(_Model):
    profile: Optional[str] = None
    accuracy: Optional[float] = Fraction
    latency_ms_estimate: Optional[float] = Field(default=None, ge=0)


class DriftSummary(_Model):
    input_psi_mean: float = Field(ge=0)
    confidence_psi: float = Field(ge=0)
    # "insufficient data": fewer field samples than the reference needs for a verdict (edgekd_runtime.drift).
    status: Literal["stable", "moderate", "shift", "insufficient data"]


class Drift(_Model):
    samples: int = Field(ge=1)
    summary: DriftSummary


class Report(_Model):
    schema_: Literal["edgekd.report"] = Field(alias="schema")
    schema_version: int
    report_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    kind: Literal["profile", "monitor"]
    created: datetime.datetime
    device_id: str = Field(min_length=1, max_length=200)
    bundle: str = Field(min_length=1, max_length=200)
    manifest_sha256: Optional[str] = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    format: Optional[str] = Field(default=None, max_length=64)
    runtime: Optional[Dict[str, Any]] = None
    latency: Optional[Latency] = None
    accuracy: Optional[float] = Fraction
    agreement_with_host: Optional[float] = Fraction
    host_expected: Optional[HostExpected] = None
    drift: Optional[Drift] = None

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != REPORT_SCHEMA_VERSION:
            raise ValueError(f"report schema version {v} is not supported (this collector reads version {REPORT_SCHEMA_VERSION})")
        return v

    @model_validator(mode="after")
    def _kind_has_its_figures(self):
        if self.kind == "profile" and self.latency is None:
            raise ValueError("a profile report needs latency")
        if self.kind == "monitor" and self.drift is None:
            raise ValueError("a monitor report needs drift")
        return self


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_report(raw: bytes, max_bytes: int = MAX_REPORT_BYTES) -> Dict[str, Any]:
    """Bytes from the wire -> a validated report (the original dict, extra fields kept). Raises ReportError."""
    if len(raw) > max_bytes:
        raise ReportError(f"report is {len(raw)} bytes, over the {max_bytes}-byte limit", 413)
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"body is not JSON: {exc}", 400)
    except RecursionError:
        raise ReportError("body is nested too deeply", 400)
    return validate_report(data)


def validate_report(data: Any) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise ReportError("a report is a JSON object", 422)
    try:
        Report.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "report"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ReportError(f"{where}: {message}{more}", 422)
    _finite(data)
    return data


def _finite(value: Any, depth: int = 0) -> None:
    # Extra fields are not typed, so NaN/Inf could hide there; and deep nesting is refused outright.
    if depth > 32:
        raise ReportError("report is nested too deeply", 422)
    if isinstance(value, float) and not math.isfinite(value):
        raise ReportError("report holds a NaN or infinite number", 422)
    if isinstance(value, dict):
        for v in value.values():
            _finite(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _finite(v, depth + 1)
