"""Teachers (moved from edgekd/teachers.py; the next commit splits loaders.py along its jobs)."""
from .loaders import CACHE_DIR, SUFFIXES, Teacher, check_teachers, data_fingerprint, fingerprint_callable, fingerprint_path, fingerprint_weights, load_teacher, looks_like_probabilities, soft_labels
