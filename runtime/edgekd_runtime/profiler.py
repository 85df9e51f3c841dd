"""Profile a bundle on this device: latency, load time, memory, accuracy, agreement with the host."""

import platform
import time
from typing import Any, Dict, Optional

import numpy as np

from .bundle import Bundle
from .drift import DRIFT_NAME, drift_report
from .errors import BadInputError
from .manifest import MANIFEST_NAME, sha256_file
from .model import Model

__all__ = ["latency_stats", "monitor", "profile", "time_invocations"]


def latency_stats(seconds) -> Dict[str, float]:
    """Percentiles (p50, p90, p99), mean and stdev in milliseconds, throughput per second and the run count
    of per-call times given in seconds (what ``time_invocations`` returns)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "stdev_ms": float(ms.std()),
        "throughput_per_s": float(1000.0 / ms.mean()) if ms.mean() > 0 else 0.0,
        "runs": int(ms.size),
    }


def time_invocations(model: Model, sample, runs: int = 100, warmup: int = 10):
    """Seconds per engine call on ``sample``, one raw input (with or without its batch axis of one):
    ``runs`` timed calls after ``warmup`` untimed ones. Preprocessing and quantization run once, untimed.

    The timed loop holds nothing but two clock reads around the engine call (``Model.prepared_call``):
    its median stays within a few percent of a bare loop over the engine (benchmarks/reports_load.py).
    """
    call = model.prepared_call(model.prepare(sample))
    for _ in range(warmup):
        call()
    times = [0.0] * runs
    clock = time.perf_counter
    for i in range(runs):
        start = clock()
        call()
        times[i] = clock() - start
    return times


def peak_memory_mb() -> Optional[float]:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return float(peak) / (1024.0 * 1024.0 if platform.system() == "Darwin" else 1024.0)


def accuracy_report(scores, y, host_outputs=None) -> Dict[str, Any]:
    pred = np.argmax(scores, axis=1)
    out: Dict[str, Any] = {"eval_samples": int(len(pred))}
    if y is not None:
        y = np.asarray(y).astype(np.int64)
        out["accuracy"] = float(np.mean(pred == y))
        per_class = {}
        for cls in np.unique(y):
            mask = y == cls
            per_class[str(int(cls))] = float(np.mean(pred[mask] == cls))
        out["per_class_accuracy"] = per_class
    if host_outputs is not None:
        out["agreement_with_host"] = float(np.mean(pred == np.argmax(host_outputs, axis=1)))
    return out


def host_expectations(manifest, art) -> Dict[str, Any]:
    """What the host promised for this artifact: its measured accuracy and the profile's latency estimate."""
    out: Dict[str, Any] = {"profile": manifest.profile.get("name")}
    for key in ("accuracy", "agreement_with_keras"):
        if key in art.host_metrics:
            out[key] = art.host_metrics[key]
    usage = (manifest.profile.get("fit") or {}).get("usage") or {}
    if "latency_ms" in usage:
        # The sizing cost model's estimate for the target device, not a measurement on the host.
        out["latency_ms_estimate"] = usage["latency_ms"].get("used")
    return out


def profile(
    bundle,
    runs: int = 100,
    warmup: int = 10,
    artifact: Optional[str] = None,
    engine: Optional[str] = None,
    inputs=None,
    public_key: Optional[str] = None,
    require_signature: bool = False,
    **options
) -> Dict[str, Any]:
    """Profile one artifact of a bundle (a path or an open Bundle) and return the report's body.

    ``inputs`` (raw field data, an array) adds a drift check of those inputs; options such as
    ``threads``, ``delegate`` (LiteRT) or ``providers`` (ONNX Runtime) go to the engine.

    >>> from edgekd_runtime import profile                 # doctest: +SKIP
    >>> profile("out/demo/phone", runs=50)["latency"]["p50_ms"]
    """
    opened = not isinstance(bundle, Bundle)
    if opened:
        bundle = Bundle.open(bundle, public_key=public_key, require_signature=require_signature)
    try:
        return _profile(bundle, runs, warmup, artifact, engine, inputs, options)
    finally:
        if opened:
            bundle.close()


def _profile(bundle, runs, warmup, artifact, engine, inputs, options):
    if runs < 1 or warmup < 0:
        raise BadInputError("runs must be at least 1 and warmup at least 0 (got %d and %d)" % (runs, warmup))
    x, y, host = bundle.load_eval()
    # The first load in this process pays for importing the engine; the second is what a restart of an
    # already-warm service costs.
    first = Model.from_bundle(bundle, artifact=artifact, engine=engine, **options)
    warm = Model.from_bundle(bundle, artifact=artifact, engine=engine, **options)
    first_seconds = first.load_seconds
    del first
    times = time_invocations(warm, x[:1], runs=runs, warmup=warmup)
    scores = warm.predict(x)
    manifest = bundle.manifest
    report = {
        "bundle": manifest.name,
        "manifest_sha256": sha256_file(bundle.path(MANIFEST_NAME)),
        "signature": getattr(bundle, "signature", "unsigned"),
        "artifact": warm.artifact.path,
        "format": warm.artifact.format,
        "runtime": warm.describe(),
        "load_seconds": {"first": first_seconds, "warm": warm.load_seconds},
        "latency": latency_stats(times),
        "peak_memory_mb": peak_memory_mb(),
        "device": device_info(),
        "host_expected": host_expectations(manifest, warm.artifact),
        # The model's size, so that a profile's latency can be fitted from reports alone (edgekd reports fit-latency).
        "student": {k: manifest.student[k] for k in ("spec", "params", "macs") if k in manifest.student},
    }
    report.update(accuracy_report(scores, y, host))
    reference = bundle.load_drift_reference()
    if reference is not None:
        # On the bundled eval set the drift must be ~0: a check that device and host read inputs alike.
        report["drift_eval"] = drift_report(reference, x, scores)["summary"]
        if inputs is not None:
            field = warm.check_input(inputs)
            report["drift"] = drift_report(reference, field, warm.predict(field))
    elif inputs is not None:
        raise BadInputError("the bundle carries no drift reference (%s)" % DRIFT_NAME, "rebuild it with this edgekd version")
    return report


def device_info() -> Dict[str, Any]:
    return {"machine": platform.machine(), "system": platform.system(), "node": platform.node(), "python": platform.python_version()}


def monitor(bundle, inputs, artifact: Optional[str] = None, engine: Optional[str] = None, public_key: Optional[str] = None, require_signature: bool = False, **options) -> Dict[str, Any]:
    """Drift of field inputs (raw, as the device receives them) and of the model's confidence on them,
    against the reference the host stored in the bundle. Returns the report's body."""
    opened = not isinstance(bundle, Bundle)
    if opened:
        bundle = Bundle.open(bundle, public_key=public_key, require_signature=require_signature)
    try:
        reference = bundle.load_drift_reference()
        if reference is None:
            raise BadInputError("the bundle carries no drift reference (%s)" % DRIFT_NAME, "rebuild it with this edgekd version")
        model = Model.from_bundle(bundle, artifact=artifact, engine=engine, **options)
        x = model.check_input(inputs)
        if len(x) == 0:
            raise BadInputError("no input samples to monitor")
        return {
            "bundle": bundle.manifest.name,
            "manifest_sha256": sha256_file(bundle.path(MANIFEST_NAME)),
            "signature": bundle.signature,
            "artifact": model.artifact.path,
            "format": model.artifact.format,
            "runtime": model.describe(),
            "device": device_info(),
            "drift": drift_report(reference, x, model.predict(x)),
        }
    finally:
        if opened:
            bundle.close()
