"""Parity: does the converted artifact compute what the Keras student computes?

Checked with the runtime's own Model class, so the host exercises the exact code the device runs.
A float artifact (fp32, fp16) passes when its top-1 agrees with the Keras student on at least 99.9% of the eval
samples; an int8 artifact (full int8 or dynamic-range) at 99% and, when labels are known, with at most 0.5 point less accuracy
than the float student (never less than two eval samples of slack).
"""
from __future__ import annotations

import numpy as np

from edgekd_runtime import Model, Preprocessing

# Minimum top-1 agreement with the Keras student for an artifact to pass.
THRESHOLDS = {"float": 0.999, "int8": 0.99}
# Most accuracy (in points) an int8 artifact may lose against the float Keras student.
MAX_INT8_DROP_POINTS = 0.5
# The way out when an artifact fails: on the CIFAR-10 student, QAT took int8 agreement from 98.76% to 99.55%.
FAILURE_HINT = "for int8, distil the student quantization-aware (`edgekd distill --qat`) and convert that, or use a float format"


def is_int8(art) -> bool:
    """Held to the int8 bounds: full int8, and dynamic-range models (int8 weights, and activations
    quantized to int8 on the fly inside every matmul and conv)."""
    return art.input.dtype in ("int8", "uint8") or art.format.endswith("int8") or art.format == "tflite-dynamic"


def check(converted, preprocessing: Preprocessing, x_raw, y, keras_logits, model_dir) -> dict:
    """Run the artifact on the raw eval inputs; fill and return its host_metrics and verification."""
    art = converted.artifact
    model = Model(str(model_dir / art.path), art, preprocessing)
    scores = model.predict(x_raw)
    pred = scores.argmax(axis=1)
    ref = keras_logits.argmax(axis=1)
    metrics = {
        "agreement_with_keras": float(np.mean(pred == ref)),
        "max_abs_diff": float(np.max(np.abs(scores - keras_logits))),
        "accuracy": float(np.mean(pred == y)) if y is not None else None,
        "keras_accuracy": float(np.mean(ref == y)) if y is not None else None,
        "eval_samples": int(len(x_raw)),
    }
    step = art.output.scale if art.output is not None else None
    if step:
        # Near-ties: the float student's top two logits are closer than one step of the int8 output, a
        # difference the artifact cannot represent. They say whether disagreements come from the output's
        # resolution (a less hesitant student helps) or from error inside the network (calibration helps).
        top2 = np.sort(keras_logits, axis=1)[:, -2:]
        near = (top2[:, 1] - top2[:, 0]) < step
        metrics["disagreements"] = int(np.sum(pred != ref))
        metrics["disagreements_near_ties"] = int(np.sum((pred != ref) & near))
    kind = "int8" if is_int8(art) else "float"
    metrics["threshold"] = THRESHOLDS[kind]
    passed = metrics["agreement_with_keras"] >= THRESHOLDS[kind]
    if y is not None:
        metrics["accuracy_drop_points"] = 100.0 * (metrics["keras_accuracy"] - metrics["accuracy"])
        if kind == "int8":
            # On a small eval set one sample is worth more than the bound itself (360 digits: 0.28 points
            # each), so the bound never asks for fewer than two samples of slack.
            metrics["max_drop_points"] = max(MAX_INT8_DROP_POINTS, 200.0 / len(x_raw))
            # A hair of tolerance: the drop is a difference of two float means.
            passed = passed and metrics["accuracy_drop_points"] <= metrics["max_drop_points"] + 1e-9
    art.host_metrics = metrics
    art.verification = "passed" if passed else "failed"
    return metrics, scores


def failure_reason(art) -> str:
    """One line saying which parity bound ``art`` missed."""
    m = art.host_metrics
    reasons = []
    if m.get("agreement_with_keras") is not None and m["agreement_with_keras"] < m["threshold"]:
        why = f"agrees with the Keras student on {100 * m['agreement_with_keras']:.2f}% of eval samples (needs {100 * m['threshold']:.1f}%)"
        if m.get("disagreements"):
            why += f"; {m['disagreements_near_ties']} of the {m['disagreements']} disagreements are near-ties closer than one int8 output step"
        reasons.append(why)
    if m.get("max_drop_points") is not None and m["accuracy_drop_points"] > m["max_drop_points"] + 1e-9:
        reasons.append(f"loses {m['accuracy_drop_points']:.2f} accuracy points (at most {m['max_drop_points']:.1f})")
    return f"{art.format}: " + "; ".join(reasons or ["failed parity"])
