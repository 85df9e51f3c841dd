"""Fitting a device profile's latency model to latency measured on the device (``edgekd profiles fit-latency``).

The profile estimates latency from a model's MACs and activation elements (``DeviceProfile.estimate_latency_ms``);
runtime reports say what the device really took. This module scales the profile's efficiency (and, given models
of different sizes, its fixed overhead) until the two agree. It lives with sizing rather than in
``edgekd.profiles`` because a report without activation counts needs the cost model (``student_cost``) to
re-derive them, and sizing already depends on profiles.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..errors import ProfileError
from ..profiles import FORMAT_PRECISION, DeviceProfile, load_profile
from ..students import StudentSpec
from .cost import student_cost


@dataclass
class LatencyFit:
    profile: DeviceProfile  # the profile with its latency model fitted
    efficiency_before: float
    efficiency_after: float
    points: List[dict]  # per report: macs, precision, measured p50, estimate before and after
    overhead_before_ms: float = 0.0
    overhead_after_ms: float = 0.0


def _report_model(report: dict, bundle, needs_activations: bool):
    """(MACs, activation elements) of the model a report measured: from the report, else its bundle."""
    def first(*getters):
        for getter in getters:
            try:
                return float(getter())
            except (KeyError, TypeError, ValueError):
                pass
        return None

    macs = first(lambda: report["student"]["macs"], lambda: report["macs"])
    acts = first(lambda: report["student"]["activation_elems"], lambda: report["activation_elems"])
    manifest = None
    if bundle is not None and (macs is None or (needs_activations and acts is None)):
        path = Path(bundle) / "manifest.json" if Path(bundle).is_dir() else Path(bundle)
        try:
            manifest = json.loads(path.read_text())
            macs = float(manifest["student"]["macs"]) if macs is None else macs
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProfileError(f"cannot read the student's MACs from {path}: {exc}", "pass the bundle folder the report was measured on")
    if macs is None:
        raise ProfileError("a report does not say how many MACs its model has", "pass the bundle it was measured on (--bundle DIR), whose manifest.json records student.macs")
    if needs_activations and acts is None and manifest is not None:
        acts = first(lambda: manifest["student"]["activation_elems"])
    if needs_activations and acts is None:
        try:  # re-derive from the student spec the bundle records
            spec = StudentSpec.parse(manifest["student"]["spec"])
            acts = float(student_cost(spec, manifest["input"]["shape"][1:], len(manifest["labels"])).activation_traffic_elems)
        except Exception as exc:  # noqa: BLE001 - any gap in the manifest means the same fix
            raise ProfileError(f"the profile's latency model needs the model's activation elements, which neither the report nor its bundle gives ({exc})", "pass the bundle the report was measured on (--bundle DIR)")
    return macs, acts or 0.0


def fit_latency(profile, reports: Sequence, bundles: Optional[Sequence] = None, fit_overhead: bool = True) -> LatencyFit:
    """Set ``compute.efficiency`` so that the latency estimate matches the reports' measured p50.

    Each report is a runtime report (a dict or a JSON file path) with ``latency.p50_ms``; the model's MACs
    come from the report or from the bundle it was measured on (``bundles``: one per report, or one for
    all). The model is latency = overhead + MACs / (peak x efficiency) [+ activation elements x
    activation_ns_per_elem, scaled with the efficiency]. One report sets the efficiency
    with the profile's overhead kept; reports of models at least 2x apart in MACs also fit the overhead
    (``fit_overhead``). The efficiency is the geometric mean of what each report implies.
    """
    profile = load_profile(profile)
    if not reports:
        raise ProfileError("no reports to fit the latency to", "pass at least one runtime report JSON (edgekd-runtime profile BUNDLE --json report.json)")
    if bundles is not None and len(bundles) not in (1, len(reports)):
        raise ProfileError(f"{len(bundles)} bundles for {len(reports)} reports", "pass one bundle per report, or one for all")
    points = []
    for i, rep in enumerate(reports):
        source = str(rep) if not isinstance(rep, dict) else f"report {i + 1}"
        if not isinstance(rep, dict):
            try:
                rep = json.loads(Path(rep).read_text())
            except (OSError, ValueError) as exc:
                raise ProfileError(f"cannot read report {source}: {exc}", "pass the JSON written by `edgekd-runtime profile ... --json`")
        try:
            p50 = float(rep["latency"]["p50_ms"])
        except (KeyError, TypeError, ValueError):
            raise ProfileError(f"{source} has no latency.p50_ms", "pass the JSON written by `edgekd-runtime profile ... --json`")
        bundle = None if bundles is None else bundles[i if len(bundles) > 1 else 0]
        macs, acts = _report_model(rep, bundle, needs_activations=bool(profile.compute.activation_ns_per_elem))
        precision = FORMAT_PRECISION.get(rep.get("format"), profile.primary_precision)
        if precision not in profile.compute.peak_macs_per_s:
            raise ProfileError(f"{source} measured a {precision} model but {profile.name} has no peak_macs_per_s for {precision}", f"add compute.peak_macs_per_s.{precision} to the profile")
        if macs <= 0 or p50 <= 0:
            raise ProfileError(f"{source}: MACs ({macs:.4g}) and p50 ({p50:.4g} ms) must be positive", "pass a report of a real measurement")
        points.append({"source": source, "macs": macs, "activation_elems": acts, "precision": precision, "p50_ms": p50, "estimate_before_ms": profile.estimate_latency_ms(macs, precision, acts)})
    overhead = profile.compute.overhead_ms
    # The profile's variable time at efficiency 1 (and its per-element time held in the same proportion):
    # latency = overhead + x / scale. One scale moves the MAC and the activation terms together, as a
    # device that is uniformly faster or slower than the profile says would.
    e0 = profile.compute.efficiency
    xs = [profile.variable_latency_ms(p["macs"], p["precision"], p["activation_elems"]) * e0 for p in points]
    ts = [p["p50_ms"] for p in points]
    if fit_overhead and len(points) >= 2 and max(xs) >= 2 * min(xs):
        # Two or more model sizes also pin down the fixed overhead: least squares on relative error.
        a = np.array([[1.0 / t, x / t] for x, t in zip(xs, ts)])
        (o, k), *_ = np.linalg.lstsq(a, np.ones(len(ts)), rcond=None)
        if o < 0 or k <= 0:  # the data do not support a positive overhead: keep the profile's
            o = overhead
        overhead = float(o)
    if any(t <= overhead for t in ts):
        raise ProfileError(f"a measured p50 ({min(ts):.4g} ms) is not above the fixed overhead {overhead:.4g} ms", "lower compute.overhead_ms in the profile, or measure a larger model")
    efficiency = float(math.exp(sum(math.log(x / (t - overhead)) for x, t in zip(xs, ts)) / len(xs)))
    if efficiency > 1.0:
        raise ProfileError(f"the reports imply {efficiency:.2f}x the profile's peak MAC/s", "the peak figure in compute.peak_macs_per_s is too low for this device: fix it from the datasheet")
    update = {"efficiency": round(efficiency, 6), "overhead_ms": round(overhead, 4)}
    if profile.compute.activation_ns_per_elem:
        update["activation_ns_per_elem"] = round(profile.compute.activation_ns_per_elem * e0 / efficiency, 6)
    compute = profile.compute.model_copy(update=update)
    fitted = profile.model_copy(update={"compute": compute})
    for p in points:
        p["estimate_after_ms"] = fitted.estimate_latency_ms(p["macs"], p["precision"], p["activation_elems"])
    return LatencyFit(fitted, profile.compute.efficiency, fitted.compute.efficiency, points, profile.compute.overhead_ms, fitted.compute.overhead_ms)
