"""Host-expected vs device-measured, per bundle and device, from the report store; gaps flagged.

The host expects an accuracy (measured on the host with the runtime's own code) and a latency (the
sizing cost model's estimate for the profile's device). A device that falls short is flagged:
accuracy more than ACCURACY_GAP_PTS points under the host's, p50 latency over LATENCY_RATIO times the
estimate, or drift of its inputs.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from .store import Store

ACCURACY_GAP_PTS = 1.0
LATENCY_RATIO = 1.5


@dataclass
class Comparison:
    bundle: str
    device_id: str
    format: Optional[str]
    engine: Optional[str]
    profile: Optional[str]
    reports: int
    last_seen: str
    device_p50_ms: Optional[float] = None  # median over the reports of their p50
    device_p99_ms: Optional[float] = None
    host_latency_ms: Optional[float] = None
    device_accuracy: Optional[float] = None  # the latest report's
    host_accuracy: Optional[float] = None
    accuracy_gap_pts: Optional[float] = None  # device - host, in points
    agreement: Optional[float] = None
    drift_status: Optional[str] = None  # the latest drift check's
    input_psi: Optional[float] = None
    confidence_psi: Optional[float] = None
    flags: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _latest(rows, key):
    for row in reversed(rows):
        if row.get(key) is not None:
            return row[key]
    return None


def host_vs_device(store: Store, bundle: Optional[str] = None, device: Optional[str] = None) -> List[Comparison]:
    """One Comparison per (bundle, device, format), oldest group first."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for row in store.query(bundle=bundle, device=device):
        groups.setdefault((row["bundle"], row["device_id"]), []).append(row)
    out = []
    for (b, d), rows in sorted(groups.items()):
        profiles = [r for r in rows if r["kind"] == "profile"]
        by_format: Dict[Optional[str], List[Dict[str, Any]]] = {}
        for r in profiles:
            by_format.setdefault(r["format"], []).append(r)
        drift_rows = [r for r in rows if r["drift_status"] is not None]
        for fmt, prs in sorted(by_format.items(), key=lambda kv: str(kv[0])) or [(None, [])]:
            c = Comparison(
                bundle=b, device_id=d, format=fmt, engine=_latest(prs, "engine"), profile=_latest(prs, "profile"),
                reports=len(prs) or len(rows), last_seen=rows[-1]["created"],
            )
            p50s = [r["p50_ms"] for r in prs if r["p50_ms"] is not None]
            if p50s:
                c.device_p50_ms = statistics.median(p50s)
                c.device_p99_ms = statistics.median([r["p99_ms"] for r in prs if r["p99_ms"] is not None])
            c.host_latency_ms = _latest(prs, "host_latency_ms")
            c.device_accuracy = _latest(prs, "accuracy")
            c.host_accuracy = _latest(prs, "host_accuracy")
            c.agreement = _latest(prs, "agreement")
            if drift_rows:
                c.drift_status = drift_rows[-1]["drift_status"]
                c.input_psi = drift_rows[-1]["input_psi"]
                c.confidence_psi = drift_rows[-1]["confidence_psi"]
            _flag(c)
            out.append(c)
    return out


def _flag(c: Comparison) -> None:
    if c.device_accuracy is not None and c.host_accuracy is not None:
        c.accuracy_gap_pts = 100.0 * (c.device_accuracy - c.host_accuracy)
        if c.accuracy_gap_pts < -ACCURACY_GAP_PTS:
            c.flags.append(f"accuracy {-c.accuracy_gap_pts:.1f} pts under the host")
    if c.device_p50_ms is not None and c.host_latency_ms:
        ratio = c.device_p50_ms / c.host_latency_ms
        if ratio > LATENCY_RATIO:
            c.flags.append(f"latency {ratio:.1f}x the profile's estimate")
    if c.drift_status in ("moderate", "shift"):
        c.flags.append(f"input drift: {c.drift_status}")


def latency_factors(store: Store) -> Dict[str, Dict[str, float]]:
    """Per device profile: median of measured p50 / the cost model's estimate over all profile reports.

    What a latency fit reads: multiply a profile's latency estimates by ``factor`` to match the fleet.
    """
    ratios: Dict[str, List[float]] = {}
    for row in store.query(kind="profile"):
        if row["profile"] and row["p50_ms"] is not None and row["host_latency_ms"]:
            ratios.setdefault(row["profile"], []).append(row["p50_ms"] / row["host_latency_ms"])
    return {p: {"factor": statistics.median(v), "reports": float(len(v))} for p, v in sorted(ratios.items())}


def _pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _ms(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(comparisons: List[Comparison]) -> List[List[str]]:
    """Rows of strings, header first (for the terminal and the HTML page)."""
    rows = [["bundle", "device", "format", "engine", "reports", "p50 ms (device)", "latency ms (estimate)", "accuracy (device)", "accuracy (host)", "gap pts", "drift", "flags"]]
    for c in comparisons:
        rows.append([
            c.bundle, c.device_id, c.format or "-", c.engine or "-", str(c.reports), _ms(c.device_p50_ms), _ms(c.host_latency_ms),
            _pct(c.device_accuracy), _pct(c.host_accuracy), "-" if c.accuracy_gap_pts is None else f"{c.accuracy_gap_pts:+.2f}",
            c.drift_status or "-", "; ".join(c.flags) or "ok",
        ])
    return rows


def fit_latency_from_store(store: Store, profile: str, bundle: Optional[str] = None, device: Optional[str] = None):
    """Calibrate device profile ``profile`` from the profile reports stored for it (edgekd.sizing.fit_latency
    on their bodies: measured p50 and the student's MACs that each report carries)."""
    from ..errors import EdgekdError
    from ..sizing import fit_latency

    reports = [r["body"] for r in store.query(bundle=bundle, device=device, kind="profile", with_body=True) if r["profile"] == profile]
    if not reports:
        raise EdgekdError(f"no stored profile reports for profile {profile}", "devices send them with edgekd-runtime profile --report-to")
    return fit_latency(profile, reports)
