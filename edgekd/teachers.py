"""Teachers: anything that maps inputs to logits, its fingerprint, and the soft-label cache.

A teacher sees the same preprocessed inputs as the student (raw * scale + offset) unless it was
loaded with ``raw_inputs=True``. Teachers that end in a softmax are detected; their log-probabilities
are used as logits (they differ from the true logits by a per-sample constant, which a softmax ignores).
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .errors import TeacherError

CACHE_DIR = Path(os.environ.get("EDGEKD_CACHE", ".edgekd-cache"))


def fingerprint_path(path) -> str:
    """sha256 over a file, or over every file of a folder (names and contents, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class Teacher:
    """Wraps a callable ``inputs -> scores`` with a fingerprint and softmax detection.

    >>> t = Teacher(lambda x: np.eye(3)[np.asarray(x).reshape(len(x), -1).sum(1).astype(int) % 3], "toy")
    >>> t.logits(np.zeros((2, 1))).shape
    (2, 3)
    """

    def __init__(self, fn: Callable, fingerprint: str, name: str = "teacher", batch_size: int = 256, keras_model=None):
        self.fn = fn
        self.fingerprint = fingerprint
        self.name = name
        self.batch_size = batch_size
        self.keras_model = keras_model
        self.outputs_probabilities: Optional[bool] = None
        self.inference_seconds = 0.0

    def scores(self, x) -> np.ndarray:
        start = time.perf_counter()
        outs = [np.asarray(self.fn(x[i : i + self.batch_size]), dtype=np.float32) for i in range(0, len(x), self.batch_size)]
        self.inference_seconds += time.perf_counter() - start
        return np.concatenate(outs, axis=0)

    def logits(self, x) -> np.ndarray:
        s = self.scores(x)
        if s.ndim != 2:
            raise TeacherError(f"teacher {self.name} returned shape {s.shape}; expected (batch, classes)")
        if self.outputs_probabilities is None:
            self.outputs_probabilities = bool(np.all(s >= 0) and np.allclose(s.sum(axis=1), 1.0, atol=1e-3))
        if self.outputs_probabilities:
            return np.log(np.clip(s, 1e-7, 1.0))
        return s

    def num_classes(self, sample) -> int:
        return int(self.logits(sample[:1]).shape[1])

    def describe(self):
        return {"name": self.name, "fingerprint": self.fingerprint, "outputs_probabilities": self.outputs_probabilities}


def load_teacher(path, raw_inputs: bool = False) -> Teacher:
    """Load a teacher from a tf_keras/Keras 3 model file (.keras, .h5) or SavedModel folder."""
    if isinstance(path, Teacher):
        return path
    path = Path(path)
    if not path.exists():
        raise TeacherError(f"teacher not found: {path}", "pass a .keras/.h5 model file or a SavedModel folder")
    model = _load_keras(path)
    fp = fingerprint_path(path)
    teacher = Teacher(lambda x: model(x, training=False), fp, name=path.name, keras_model=model)
    return teacher


def _load_keras(path: Path):
    import tf_keras as keras

    errors = []
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # tf_keras raises a variety of types for foreign files
        errors.append(f"tf_keras: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    try:
        import keras as keras3

        return keras3.saving.load_model(str(path), compile=False)
    except Exception as exc:
        errors.append(f"keras 3: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    raise TeacherError(f"cannot load teacher {path} ({'; '.join(errors)})", "is the file complete? re-export it with model.save()")


def soft_labels(teacher: Teacher, x: np.ndarray, data_fingerprint: str, cache: bool = True) -> np.ndarray:
    """Teacher logits for ``x``, computed once per (teacher, data) and kept on disk as float16."""
    path = CACHE_DIR / "soft_labels" / f"{teacher.fingerprint[:16]}-{data_fingerprint[:16]}.npy"
    if cache and path.is_file():
        logits = np.load(path).astype(np.float32)
        if logits.shape[0] == len(x):
            return logits
    # Round through float16 on every path so a cached run trains exactly like the first one.
    logits = teacher.logits(x).astype(np.float16).astype(np.float32)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, logits.astype(np.float16))
        os.replace(tmp, path)
    return logits
