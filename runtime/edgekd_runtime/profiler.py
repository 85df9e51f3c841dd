"""Profile a bundle on this device: latency, load time, memory, accuracy, agreement with the host."""
from __future__ import annotations

import platform
import time
from typing import Any, Dict, Optional

import numpy as np

from .bundle import Bundle
from .model import Model


def latency_stats(seconds) -> Dict[str, float]:
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
    """Seconds per call of the engine on one prepared sample (batch of one)."""
    q = model.prepare(sample)
    for _ in range(warmup):
        model.invoke_prepared(q)
    times = []
    clock = time.perf_counter
    for _ in range(runs):
        start = clock()
        model.invoke_prepared(q)
        times.append(clock() - start)
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


def profile(bundle, runs: int = 100, warmup: int = 10, artifact: Optional[str] = None, engine: Optional[str] = None, **options) -> Dict[str, Any]:
    """Profile one artifact of a bundle (a path or an open Bundle) and return the report's body.

    >>> from edgekd_runtime import profile                 # doctest: +SKIP
    >>> profile("out/demo/phone", runs=50)["latency"]["p50_ms"]
    """
    if not isinstance(bundle, Bundle):
        bundle = Bundle.open(bundle)
    first = Model.from_bundle(bundle, artifact=artifact, engine=engine, **options)
    warm = Model.from_bundle(bundle, artifact=artifact, engine=engine, **options)
    x, y, host = bundle.load_eval()
    times = time_invocations(warm, x[:1], runs=runs, warmup=warmup)
    scores = warm.predict(x)
    report = {
        "bundle": bundle.manifest.name,
        "artifact": warm.artifact.path,
        "format": warm.artifact.format,
        "runtime": warm.describe(),
        "load_seconds": {"first": first.load_seconds, "warm": warm.load_seconds},
        "latency": latency_stats(times),
        "peak_memory_mb": peak_memory_mb(),
        "device": {"machine": platform.machine(), "system": platform.system(), "node": platform.node(), "python": platform.python_version()},
    }
    report.update(accuracy_report(scores, y, host))
    return report
