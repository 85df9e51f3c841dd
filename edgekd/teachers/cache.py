"""The teacher-output cache: a teacher's logits (or intermediate features) on a data set, computed once, kept on disk.

Every entry is named by :func:`cache_key`, the one key of everything edgekd caches of a teacher (soft labels for
build, distill and tune; the feature targets of fitnet/at/crd): the cache format, the teacher's
fingerprint (its file's sha256; for an in-memory Keras model its architecture and weights), the fingerprint of the
preprocessed inputs, and what is cached. A teacher whose fingerprint cannot pin what it computes (a callable or a
subclassed model given without ``fingerprint=``) is never cached.

An entry is an ``.npz`` holding its arrays and a record of its key, shapes and sha256 checksum; a hit must match all
three, and an entry that does not (truncated, flipped bits, another key) is recomputed with a warning. Entries are
written to a unique temporary file and renamed into place, so runs sharing a cache (in parallel, or the workers of
one run) never read a half-written one.

Entries live under ``CACHE_DIR`` (``$EDGEKD_CACHE``, default ``.edgekd-cache``): soft labels in ``soft_labels/``,
feature targets in ``features/``. To move the cache (a test, say), set ``CACHE_DIR`` of this module: it is read at
call time, and the package does not re-export it, so setting it on ``edgekd.teachers`` fails instead of doing nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np

from .fingerprint import data_fingerprint as _data_fingerprint
from .teacher import Teacher

CACHE_DIR = Path(os.environ.get("EDGEKD_CACHE", ".edgekd-cache"))

# Bump when what an entry holds changes meaning (its layout, the teachers' softmax detection, the float16 rounding):
# entries of another format are then never read.
CACHE_FORMAT = 2

_META = "__edgekd_cache__"


class CacheWarning(UserWarning):
    """A cache entry was unreadable or did not match its key: it is recomputed."""


def cache_key(teacher: Teacher, data: Union[np.ndarray, str], what: str = "soft_labels", *parts: str) -> Optional[str]:
    """The key of a cached output of ``teacher`` on ``data``, or None when this teacher may not be cached.

    ``data`` is the preprocessed inputs the teacher sees (hashed here), or their :func:`data_fingerprint` when the
    caller already has it (the same digest, so both name one entry). ``what`` and ``parts`` say which output
    ("soft_labels"; "features" and the layers and transforms of a feature method)."""
    if not getattr(teacher, "cacheable", True):
        return None
    data_fp = data if isinstance(data, str) else _data_fingerprint(np.asarray(data))
    digest = hashlib.sha256(f"edgekd-cache-v{CACHE_FORMAT}\n".encode())
    for field in (teacher.fingerprint, data_fp, what, *parts):
        text = str(field)
        digest.update(f"{len(text)}:{text}\n".encode())  # length-prefixed: no two field lists hash alike
    return digest.hexdigest()


def entry_path(key: str, what: str = "soft_labels", label: str = "") -> Path:
    """Where the entry with this key lives; ``label`` (e.g. a feature method's tag) only makes the name readable."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:80]
    return CACHE_DIR / what / (f"{key}-{label}.npz" if label else f"{key}.npz")


def read_entry(key: str, what: str, shapes: Mapping[str, Sequence[Optional[int]]], label: str = "") -> Optional[Dict[str, np.ndarray]]:
    """The arrays of the entry ``key`` if it exists, is intact and has the ``shapes`` expected (a None dimension
    matches any size); None on a miss. A damaged or mismatched entry warns (:class:`CacheWarning`) and misses."""
    path = entry_path(key, what, label)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored[_META][()]))
            arrays = {k: stored[k] for k in stored.files if k != _META}
    except Exception as exc:  # a truncated or foreign file fails in zipfile, zlib, numpy or json, each its own way
        return _bad(path, f"unreadable: {type(exc).__name__}")
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        return _bad(path, "written for another key or cache format")
    if meta.get("checksum") != _checksum(arrays):
        return _bad(path, "checksum mismatch")
    for name, want in shapes.items():
        got = arrays.get(name)
        if got is None or got.ndim != len(want) or any(w is not None and int(w) != g for w, g in zip(want, got.shape)):
            return _bad(path, f"{name} has shape {None if got is None else got.shape}, expected {tuple(want)}")
    return arrays


def write_entry(key: str, what: str, arrays: Mapping[str, np.ndarray], label: str = "") -> Path:
    """Store ``arrays`` as the entry ``key``: written to a unique temporary file, synced, then renamed into place, so a
    reader sees the whole entry or none."""
    path = entry_path(key, what, label)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    meta = {"format": CACHE_FORMAT, "key": key, "checksum": _checksum(arrays), "shapes": {k: list(v.shape) for k, v in arrays.items()}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays, **{_META: np.array(json.dumps(meta))})
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def soft_label_path(teacher: Teacher, data_fingerprint: Union[np.ndarray, str]) -> Path:
    """Where :func:`soft_labels` keeps the teacher's logits on this data (it may not exist yet; for a teacher that is
    not cached, see :attr:`Teacher.cacheable`, it never will)."""
    return entry_path(cache_key(teacher, data_fingerprint) or _NEVER, "soft_labels")


_NEVER = "uncached"  # the name an uncacheable teacher's entry would have: never written, never read


def soft_labels(teacher: Teacher, x: np.ndarray, data_fingerprint: Optional[str] = None, cache: bool = True, on_progress=None) -> np.ndarray:
    """Teacher logits for ``x``, computed once per (teacher, data) and kept on disk as float16.

    ``data_fingerprint`` is ``data_fingerprint(x)`` when the caller has it already (computed otherwise);
    ``on_progress(fraction)`` is called as chunks are labelled."""
    key = cache_key(teacher, data_fingerprint if data_fingerprint is not None else x) if cache else None
    expected = (len(x), teacher.num_outputs)  # the classes are known once check_teachers has probed the teacher
    if key is not None:
        hit = read_entry(key, "soft_labels", {"logits": expected})
        if hit is not None:
            return hit["logits"].astype(np.float32)
    chunk = max(teacher.batch_size, 2048)
    parts = []
    for i in range(0, len(x), chunk):
        parts.append(teacher.logits(x[i : i + chunk]))
        if on_progress is not None:
            on_progress(min(1.0, (i + chunk) / len(x)))
    stored = (np.concatenate(parts) if parts else teacher.logits(x)).astype(np.float16)
    if key is not None:
        write_entry(key, "soft_labels", {"logits": stored})
    # Round through float16 on every path so a cached run trains exactly like the first one.
    return stored.astype(np.float32)


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape}\n".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _bad(path: Path, why: str) -> None:
    warnings.warn(f"teacher cache entry {path} is damaged or stale ({why}): recomputing it", CacheWarning, stacklevel=3)
    return None
