"""Teachers: anything that maps inputs to logits, its fingerprint, and the soft-label cache.

Modules: :mod:`.teacher` (the :class:`Teacher` and softmax detection), :mod:`.loaders` (files, folders, Keras
models and callables to a Teacher), :mod:`.fingerprint` (sha256 identities of teachers and data), :mod:`.cache`
(teacher outputs kept on disk under one key, :func:`cache_key`; its ``CACHE_DIR`` is the one to point elsewhere)
and :mod:`.checks` (teachers against the data, before training).
"""
from .cache import CacheWarning, cache_key, soft_label_path, soft_labels
from .checks import check_teachers
from .fingerprint import data_fingerprint, fingerprint_callable, fingerprint_model, fingerprint_path, fingerprint_weights
from .loaders import SUFFIXES, load_teacher
from .teacher import Teacher, looks_like_probabilities

__all__ = [
    "SUFFIXES",
    "CacheWarning",
    "Teacher",
    "cache_key",
    "check_teachers",
    "data_fingerprint",
    "fingerprint_callable",
    "fingerprint_model",
    "fingerprint_path",
    "fingerprint_weights",
    "load_teacher",
    "looks_like_probabilities",
    "soft_label_path",
    "soft_labels",
]
