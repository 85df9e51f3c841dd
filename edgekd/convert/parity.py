"""Parity: does the converted artifact compute what the Keras student computes?

Checked with the runtime's own Model class, so the host exercises the exact code the device runs.
"""
from __future__ import annotations

import numpy as np

from edgekd_runtime import Model, Preprocessing

# Minimum top-1 agreement with the Keras student for an artifact to pass.
THRESHOLDS = {"float": 0.999, "int8": 0.98}


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
    kind = "int8" if art.input.dtype in ("int8", "uint8") or art.format.endswith("int8") else "float"
    metrics["threshold"] = THRESHOLDS[kind]
    art.host_metrics = metrics
    art.verification = "passed" if metrics["agreement_with_keras"] >= THRESHOLDS[kind] else "failed"
    return metrics, scores
