"""Input and output drift: reference statistics (written by the host into the bundle) and the
population stability index (PSI) of data seen on the device against them.

Pure numpy, used by both sides: the host calls ``reference_statistics`` on the bundled eval set and
the student's outputs; the device calls ``drift_report`` on field inputs and the model's outputs.

Features: a small input (at most MAX_PIXEL_FEATURES values per sample, e.g. 8x8 digits or a tabular row)
is compared value by value; a larger one (a camera frame) by its per-channel means. Every input also
gets two whole-sample features, its mean and its standard deviation, because brightness and contrast
are what usually move when a camera, a sensor or its lighting changes.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the reference and observed fractions per bin.
Read as usual: under 0.1 stable, 0.1 to 0.25 moderate, over 0.25 a real shift.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import BundleFormatError

DRIFT_NAME = "drift_reference.json"
DRIFT_SCHEMA_VERSION = 1
MAX_PIXEL_FEATURES = 256
BINS = 10
PSI_MODERATE = 0.1
PSI_SHIFT = 0.25
# A bin that is empty on one side would make PSI infinite; clip fractions to a floor instead. drift_report uses
# 1/(m+1) for a reference of m samples, the chance that one more sample of its distribution falls outside its
# range: with 1e-4, the one field sample in 300 that lands beyond the reference's maximum (as 1 in m+1 does)
# added 0.01 to the PSI on its own, and false "moderate" verdicts followed.
_FLOOR = 1e-4
# PSI on a small sample is biased upwards (a bin the sample leaves empty adds about e*ln(e/floor), 0.45 for a
# tenth of a 900-sample reference), so same-distribution samples of 30 read as "shift". Below this many field samples the
# verdict is "insufficient data"; from it on, samples of the reference's distribution read "stable" in at least
# 95% of trials (benchmarks/drift_min_samples.py, results/drift_min_samples.json).
MIN_SAMPLES = 350
# The class mix has one bin per class, and its noise grows with the class count on both sides: it is judged only
# when the reference holds this many samples per class, and then the field sample needs as many (more than
# MIN_SAMPLES past 10 classes). A 100-class model with a 1,000-sample reference is judged on its inputs and
# confidence alone.
MIN_SAMPLES_PER_CLASS = 30
INSUFFICIENT = "insufficient data"


def softmax(scores):
    """Row-wise softmax of scores (N, classes), in float64 and stable for large scores: edgekd's one softmax,
    used by the drift statistics, ``edgekd-runtime run`` and the host's multi-teacher mix (which divides by
    its temperature first)."""
    scores = np.asarray(scores, dtype=np.float64)
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def extract_features(x, mode: Optional[str] = None) -> Tuple[np.ndarray, List[str], str]:
    """Raw inputs (N, ...) -> (N, F) float64 features, their names and the mode used ('values' or 'channels')."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError("inputs need a leading sample axis; got shape %s" % (x.shape,))
    n = x.shape[0]
    flat = x.reshape(n, -1)
    if mode is None:
        mode = "values" if flat.shape[1] <= MAX_PIXEL_FEATURES else "channels"
    if mode == "values":
        cols = [flat]
        names = ["x[%d]" % i for i in range(flat.shape[1])]
    elif mode == "channels":
        # Channels last (NHWC); an input without a channel axis (N, H, W) has one channel.
        chans = x.reshape(n, -1, x.shape[-1]) if x.ndim >= 4 else flat[:, :, None]
        cols = [chans.mean(axis=1)]
        names = ["channel[%d].mean" % c for c in range(chans.shape[2])]
    else:
        raise ValueError("unknown feature mode %r" % mode)
    cols.append(flat.mean(axis=1, keepdims=True))
    cols.append(flat.std(axis=1, keepdims=True))
    names += ["sample.mean", "sample.std"]
    return np.concatenate(cols, axis=1), names, mode


def bin_edges(values, bins: int = BINS) -> List[float]:
    """Interior edges at the reference's quantiles, plus its min and just above its max, so that field
    values outside the reference range land in bins of their own (a pixel that was always 0 and now is not)."""
    values = np.asarray(values, dtype=np.float64)
    inner = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    lo, hi = float(values.min()), float(values.max())
    edges = np.unique(np.concatenate([[lo], inner, [np.nextafter(hi, np.inf)]]))
    return [float(v) for v in edges]


def histogram(values, edges: Sequence[float]) -> np.ndarray:
    """Fractions of ``values`` per bin: below edges[0], between consecutive edges, at or above edges[-1]."""
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)
    return counts / max(1.0, counts.sum())


def psi(expected, actual, floor: float = _FLOOR) -> float:
    e = np.clip(np.asarray(expected, dtype=np.float64), floor, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), floor, None)
    return float(np.sum((a - e) * np.log(a / e)))


def reference_statistics(x, scores, bins: int = BINS) -> Dict[str, Any]:
    """What the host stores in the bundle: per-feature mean/std and bins, output-confidence bins, class mix.

    ``x`` are raw inputs as the device will receive them, ``scores`` the model's outputs (logits) on them.
    """
    feats, names, mode = extract_features(x)
    probs = softmax(scores)
    conf = probs.max(axis=1)
    features = []
    for j, name in enumerate(names):
        col = feats[:, j]
        edges = bin_edges(col, bins)
        features.append({"name": name, "mean": float(col.mean()), "std": float(col.std()), "edges": edges, "fractions": histogram(col, edges).round(6).tolist()})
    conf_edges = bin_edges(conf, bins)
    classes = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]).astype(np.float64) / len(probs)
    return {
        "schema_version": DRIFT_SCHEMA_VERSION,
        "samples": int(len(feats)),
        "feature_mode": mode,
        "features": features,
        "confidence": {"mean": float(conf.mean()), "edges": conf_edges, "fractions": histogram(conf, conf_edges).round(6).tolist()},
        "classes": classes.round(6).tolist(),
    }


def _number(value, where, low=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise _malformed("%s must be a finite number, not %r" % (where, value))
    if low is not None and value < low:
        raise _malformed("%s must be at least %s, not %r" % (where, low, value))
    return value


def _bins(entry, where):
    """A histogram the reference stores: sorted finite ``edges`` and one fraction more than edges."""
    if not isinstance(entry, dict):
        raise _malformed("%s must be an object, not %s" % (where, type(entry).__name__))
    edges, fractions = entry.get("edges"), entry.get("fractions")
    if not isinstance(edges, list) or not edges:
        raise _malformed("%s.edges must be a non-empty list of numbers" % where)
    if not isinstance(fractions, list) or len(fractions) != len(edges) + 1:
        raise _malformed("%s.fractions must be a list of %d numbers (one more than edges)" % (where, len(edges) + 1))
    values = [_number(v, "%s.edges[%d]" % (where, i)) for i, v in enumerate(edges)]
    if any(b < a for a, b in zip(values, values[1:])):
        raise _malformed("%s.edges must be in increasing order" % where)
    for i, v in enumerate(fractions):
        _number(v, "%s.fractions[%d]" % (where, i), low=0)
    _number(entry.get("mean"), "%s.mean" % where)


def _malformed(message):
    return BundleFormatError("%s is malformed: %s" % (DRIFT_NAME, message), "rebuild the bundle with edgekd build")


def check_reference(reference) -> Dict[str, Any]:
    """``reference`` (a parsed drift_reference.json) if it holds everything ``drift_report`` reads, else
    BundleFormatError naming the first field that is missing or wrong."""
    if not isinstance(reference, dict):
        raise _malformed("expected an object, found %s" % type(reference).__name__)
    if reference.get("schema_version") != DRIFT_SCHEMA_VERSION or isinstance(reference.get("schema_version"), bool):
        raise BundleFormatError("%s schema version %r is not %d" % (DRIFT_NAME, reference.get("schema_version"), DRIFT_SCHEMA_VERSION),
                                "install the edgekd-runtime version that matches the host that wrote the bundle")
    if reference.get("feature_mode") not in ("values", "channels"):
        raise _malformed("feature_mode must be 'values' or 'channels', not %r" % (reference.get("feature_mode"),))
    samples = reference.get("samples", 0)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise _malformed("samples must be a count, not %r" % (samples,))
    features = reference.get("features")
    if not isinstance(features, list) or not features:
        raise _malformed("features must be a non-empty list")
    for j, feature in enumerate(features):
        _bins(feature, "features[%d]" % j)
        if not isinstance(feature.get("name"), str):
            raise _malformed("features[%d].name must be a string" % j)
        _number(feature.get("std"), "features[%d].std" % j, low=0)
    _bins(reference.get("confidence"), "confidence")
    classes = reference.get("classes")
    if not isinstance(classes, list) or not classes:
        raise _malformed("classes must be a non-empty list of fractions")
    for i, v in enumerate(classes):
        _number(v, "classes[%d]" % i, low=0)
    return reference


def _status(value: float) -> str:
    if value > PSI_SHIFT:
        return "shift"
    if value > PSI_MODERATE:
        return "moderate"
    return "stable"


def _class_count(reference: Dict[str, Any]) -> int:
    classes = reference.get("classes")
    return len(classes) if isinstance(classes, list) else 0


def judges_class_mix(reference: Dict[str, Any]) -> bool:
    """Whether the verdict counts the class mix: only when the reference has MIN_SAMPLES_PER_CLASS per class."""
    count = _class_count(reference)
    return count > 0 and int(reference.get("samples", 0)) >= MIN_SAMPLES_PER_CLASS * count


def required_samples(reference: Dict[str, Any]) -> int:
    """Field samples needed before the verdict on ``reference`` can read "stable" (see MIN_SAMPLES)."""
    if judges_class_mix(reference):
        return max(MIN_SAMPLES, MIN_SAMPLES_PER_CLASS * _class_count(reference))
    return MIN_SAMPLES


def drift_report(reference: Dict[str, Any], x, scores, top: int = 5, min_samples: Optional[int] = None) -> Dict[str, Any]:
    """Compare field inputs ``x`` and the model's ``scores`` on them with the bundle's reference.

    With fewer than ``min_samples`` samples (default: what the reference needs, ``required_samples(reference)``)
    the verdict is "insufficient data" and the PSI values are reported but not judged.
    """
    check_reference(reference)
    needed = required_samples(reference) if min_samples is None else int(min_samples)
    feats, names, _ = extract_features(x, reference["feature_mode"])
    reference_samples = int(reference.get("samples") or 0)
    floor = max(_FLOOR, 1.0 / (reference_samples + 1)) if reference_samples > 0 else _FLOOR
    if len(names) != len(reference["features"]):
        raise BundleFormatError("%s describes %d input features but these inputs give %d" % (DRIFT_NAME, len(reference["features"]), len(names)),
                                "the reference does not belong to this model's inputs; rebuild the bundle")
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != len(reference["classes"]):
        raise BundleFormatError("%s describes %d classes but the model gives scores of shape %s" % (DRIFT_NAME, len(reference["classes"]), scores.shape),
                                "the reference does not belong to this model; rebuild the bundle")
    rows = []
    for j, ref in enumerate(reference["features"]):
        col = feats[:, j]
        std = float(ref["std"])
        rows.append({
            "name": ref["name"],
            "psi": psi(ref["fractions"], histogram(col, ref["edges"]), floor),
            "mean": float(col.mean()),
            "std": float(col.std()),
            "reference_mean": float(ref["mean"]),
            "reference_std": std,
            # Mean shift in reference standard deviations; a feature that never varied in the reference
            # but moves now gets the raw difference (its std floor is 1e-6 of a unit, i.e. very large).
            "mean_shift_sd": float((col.mean() - ref["mean"]) / max(std, 1e-6)),
        })
    probs = softmax(scores)
    conf = probs.max(axis=1)
    classes = np.bincount(probs.argmax(axis=1), minlength=len(reference["classes"])).astype(np.float64) / len(probs)
    input_psis = np.array([r["psi"] for r in rows])
    summary = {
        "input_psi_mean": float(input_psis.mean()),
        "input_psi_max": float(input_psis.max()),
        "features_shifted": int(np.sum(input_psis > PSI_SHIFT)),
        "confidence_psi": psi(reference["confidence"]["fractions"], histogram(conf, reference["confidence"]["edges"]), floor),
        "confidence_mean": float(conf.mean()),
        "reference_confidence_mean": float(reference["confidence"]["mean"]),
        "class_psi": psi(reference["classes"], classes, floor),
    }
    # The overall verdict rests on the mean over features and on the output side: a single pixel's PSI on a
    # few hundred samples is noisy, and the max over dozens of them would cry wolf.
    judged = [summary["input_psi_mean"], summary["confidence_psi"]]
    summary["class_mix_judged"] = judges_class_mix(reference)
    if summary["class_mix_judged"]:
        judged.append(summary["class_psi"])
    summary["status"] = _status(max(judged))
    if len(feats) < needed:
        summary["status"] = INSUFFICIENT
    report = {
        "samples": int(len(feats)),
        "reference_samples": int(reference.get("samples", 0)),
        "summary": summary,
        "top_features": sorted(rows, key=lambda r: -r["psi"])[:top],
        "features": {"count": len(rows), "mean": [r["mean"] for r in rows], "std": [r["std"] for r in rows], "psi": [round(r["psi"], 6) for r in rows]},
    }
    report["min_samples"] = needed
    notes = []
    if len(feats) < needed:
        notes.append("only %d samples: PSI on fewer than %d is mostly sampling noise, no verdict" % (len(feats), needed))
    if not summary["class_mix_judged"]:
        notes.append("class mix not judged: the reference's %d samples are too few for %d classes (%d per class needed)"
                     % (int(reference.get("samples", 0)), _class_count(reference), MIN_SAMPLES_PER_CLASS))
    if notes:
        report["note"] = "; ".join(notes)
    return report


def reference_json(x, scores, bins: int = BINS) -> bytes:
    """``reference_statistics`` serialised as the bundle's drift_reference.json (what the host writes)."""
    import json

    return json.dumps(reference_statistics(x, scores, bins), sort_keys=True).encode("utf-8")
