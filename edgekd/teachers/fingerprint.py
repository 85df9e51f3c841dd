"""Fingerprints: the sha256 identities of a teacher (file, folder, Keras weights or callable) and of a data set.

A teacher's fingerprint and the data's fingerprint together key the soft-label cache (:mod:`.cache`, whose
``cache_key`` is the one place they are combined), and the teacher's is recorded in every result that used it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

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


def fingerprint_model(model) -> Optional[str]:
    """sha256 over an in-memory Keras model's architecture (its JSON config: layers, their settings and wiring) and
    its weights (names, shapes, dtypes, bytes): the fingerprint of an in-memory teacher. Two models with the same
    weights but different heads (say, one ending in a softmax) differ.

    None for a subclassed model: its computation is its ``call`` method, Python code the config does not hold (and
    the fingerprint cannot see), like a callable's."""
    if not _is_graph_model(model):
        return None
    try:
        arch = model.to_json(sort_keys=True)
    except Exception:  # a custom layer without get_config: its settings are as invisible as a subclass's code
        return None
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}\n".encode())
    digest.update(arch.encode())
    _update_weights(digest, model)
    return digest.hexdigest()


def _is_graph_model(model) -> bool:
    """A Sequential or functional model (tf_keras or Keras 3): one whose config is its whole computation."""
    if getattr(model, "_is_graph_network", None) is not None:  # tf_keras sets it on every Model
        return bool(model._is_graph_network)
    try:
        import keras as keras3
        from keras.src.models.functional import Functional
    except ImportError:
        return False
    return isinstance(model, (Functional, keras3.Sequential))


def fingerprint_weights(model) -> str:
    """sha256 over a Keras model's class and weights, without its architecture: an identity to record for a model
    :func:`fingerprint_model` cannot serialize, never a cache key (two architectures may share weights)."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}\n".encode())
    _update_weights(digest, model)
    return digest.hexdigest()


def _update_weights(digest, model) -> None:
    for v, w in zip(model.weights, model.get_weights()):
        w = np.ascontiguousarray(w)
        digest.update(f"{getattr(v, 'path', None) or v.name}:{w.dtype.str}:{w.shape}\n".encode())
        digest.update(w.tobytes())


def fingerprint_callable(fn) -> str:
    """sha256 over a callable's qualified name and bytecode: an identity to record, never a cache key, since it
    cannot see the state the code closes over (two closures over different models hash alike). Pass
    ``fingerprint=`` to :func:`~edgekd.teachers.load_teacher` to pin such a teacher to a version and cache it."""
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
