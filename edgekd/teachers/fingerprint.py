"""Fingerprints: the sha256 identities of a teacher (file, folder, Keras weights or callable) and of a data set.

A teacher's fingerprint and the data's fingerprint together key the soft-label cache (:mod:`.cache`), and the
teacher's is recorded in every result that used it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def fingerprint_path(path) -> str:
    """sha256 of a file's bytes (what ``sha256sum`` prints), or over every file of a folder (relative names and
    contents, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def fingerprint_weights(model) -> str:
    """sha256 over a Keras model's architecture name and weights: the fingerprint of an in-memory teacher."""
    digest = hashlib.sha256(type(model).__name__.encode())
    for w in model.get_weights():
        digest.update(str(w.shape).encode())
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def fingerprint_callable(fn) -> str:
    """sha256 over a callable's qualified name and bytecode. It cannot see state the code closes over:
    pass ``fingerprint=`` to :func:`~edgekd.teachers.load_teacher` to pin such a teacher to a version."""
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
    digest = hashlib.sha256(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}".encode())
    if code is not None:
        digest.update(code.co_code)
        digest.update(repr(code.co_consts).encode())
    return digest.hexdigest()


def data_fingerprint(x: np.ndarray) -> str:
    """sha256 over preprocessed inputs (shape, dtype, bytes): the cache key's data half."""
    digest = hashlib.sha256(str((x.shape, str(x.dtype))).encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    return digest.hexdigest()
