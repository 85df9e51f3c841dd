"""The soft-label cache: a teacher's logits on a data set, computed once and kept on disk.

Entries live under ``CACHE_DIR/soft_labels`` (``$EDGEKD_CACHE``, default ``.edgekd-cache``), named by the first
16 hex digits of the teacher's and the data's fingerprints; distillation keeps its feature targets beside them, in
``CACHE_DIR/features``. To move the cache (a test, say), set ``CACHE_DIR`` of this module and read it at call time:
the package does not re-export it, so setting it on ``edgekd.teachers`` fails instead of doing nothing.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .teacher import Teacher

CACHE_DIR = Path(os.environ.get("EDGEKD_CACHE", ".edgekd-cache"))


def soft_label_path(teacher: Teacher, data_fingerprint: str) -> Path:
    """Where :func:`soft_labels` keeps the teacher's logits on the data with this fingerprint (it may not exist yet)."""
    return CACHE_DIR / "soft_labels" / f"{teacher.fingerprint[:16]}-{data_fingerprint[:16]}.npy"


def soft_labels(teacher: Teacher, x: np.ndarray, data_fingerprint: str, cache: bool = True, on_progress=None) -> np.ndarray:
    """Teacher logits for ``x``, computed once per (teacher, data) and kept on disk as float16.
    ``on_progress(fraction)`` is called as chunks are labelled."""
    path = soft_label_path(teacher, data_fingerprint)
    if cache and path.is_file():
        logits = np.load(path).astype(np.float32)
        if logits.shape[0] == len(x):
            return logits
    chunk = max(teacher.batch_size, 2048)
    parts = []
    for i in range(0, len(x), chunk):
        parts.append(teacher.logits(x[i : i + chunk]))
        if on_progress is not None:
            on_progress(min(1.0, (i + chunk) / len(x)))
    # Round through float16 on every path so a cached run trains exactly like the first one.
    logits = (np.concatenate(parts) if parts else teacher.logits(x)).astype(np.float16).astype(np.float32)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, logits.astype(np.float16))
        os.replace(tmp, path)
    return logits
