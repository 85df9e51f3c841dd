"""The :class:`Teacher`: a callable ``inputs -> scores`` with its fingerprint, and the detection of a final softmax.

Teachers that end in a softmax are detected (:func:`looks_like_probabilities`); their log-probabilities are used
as logits: they differ from the true logits by a per-sample constant c, and softmax((z + c) / T) equals
softmax(z / T) at every temperature T, so softened targets are exactly the teacher's.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import TeacherError


SUM_TOLERANCE = 1e-3  # float rounding of a float32 softmax, which every float teacher stays far inside


def looks_like_probabilities(s: np.ndarray, step: float = 0.0) -> bool:
    """Whether scores (batch, classes) are already probabilities: non-negative rows that sum to 1.

    ``step`` is the quantization step of the scores (a quantized model's output scale, 0 for float outputs). Each
    of a row's values may be rounded by up to a step (TFLite's int8 softmax rounds its table, then the output), so
    a row of C quantized probabilities may miss 1 by up to C steps: a step of 1/256 over 10 classes allows 0.04.

    >>> looks_like_probabilities(np.array([[0.25, 0.75]]))
    True
    >>> row = np.round(np.full((1, 10), 0.1) * 256) / 256  # int8 softmax output: ten 26/256
    >>> looks_like_probabilities(row), looks_like_probabilities(row, step=1 / 256)
    (False, True)
    """
    s = np.asarray(s, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 2 or not np.all(np.isfinite(s)):
        return False
    step = abs(float(step or 0.0))
    atol = SUM_TOLERANCE + s.shape[1] * step
    return bool(np.all(s >= -step) and np.allclose(s.sum(axis=1), 1.0, rtol=0.0, atol=atol))


class Teacher:
    """Wraps a callable ``inputs -> scores`` with a fingerprint and softmax detection.

    ``classes`` maps a specialist's outputs to global class indices (output j scores class ``classes[j]``);
    None means output j is class j. ``tf_fn``, when set, computes the same scores inside a TensorFlow graph,
    which lets the teacher run online in every training step. ``output_step`` is the quantization step of the
    scores (an int8 model's output scale), which widens the softmax detection's tolerance. ``cacheable`` says
    whether ``fingerprint`` identifies what the teacher computes well enough to key the soft-label cache: false
    for a callable no fingerprint was given for, whose code may close over state its fingerprint cannot see.

    >>> t = Teacher(lambda x: np.eye(3)[np.asarray(x).reshape(len(x), -1).sum(1).astype(int) % 3], "toy")
    >>> t.logits(np.zeros((2, 1))).shape
    (2, 3)
    """

    def __init__(self, fn: Callable, fingerprint: str, name: str = "teacher", batch_size: int = 256, keras_model=None,
                 kind: str = "callable", input_shape: Optional[tuple] = None, tf_fn: Optional[Callable] = None,
                 classes: Optional[Sequence[int]] = None, output_step: float = 0.0, cacheable: bool = True):
        self.fn = fn
        self.fingerprint = fingerprint
        self.name = name
        self.batch_size = batch_size
        self.keras_model = keras_model
        self.kind = kind
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.tf_fn = tf_fn
        self.classes = list(classes) if classes is not None else None
        self.outputs_probabilities: Optional[bool] = None
        self.output_step = float(output_step or 0.0)
        self.cacheable = bool(cacheable)
        self.inference_seconds = 0.0

    def scores(self, x) -> np.ndarray:
        start = time.perf_counter()
        outs = [np.asarray(self.fn(x[i : i + self.batch_size]), dtype=np.float32) for i in range(0, len(x), self.batch_size)]
        self.inference_seconds += time.perf_counter() - start
        return np.concatenate(outs, axis=0)

    def logits(self, x) -> np.ndarray:
        s = self.scores(x)
        if s.ndim != 2:
            raise TeacherError(f"teacher {self.name} returned shape {s.shape}; expected (batch, classes)", "the teacher must output one score per class")
        if self.outputs_probabilities is None:
            self.outputs_probabilities = looks_like_probabilities(s, self.output_step)
        if self.outputs_probabilities:
            return np.log(np.clip(s, 1e-7, 1.0))
        return s

    def tf_logits(self, x):
        """The logits inside a TensorFlow graph (for the online teacher). Call :meth:`logits` on a sample
        first so softmax detection has run."""
        import tensorflow as tf

        if self.tf_fn is not None:
            s = tf.cast(self.tf_fn(x), tf.float32)
        else:  # ONNX, TFLite and plain callables: leave the graph for numpy (not under tf.distribute)
            s = tf.numpy_function(lambda a: np.asarray(self.fn(a), np.float32), [x], tf.float32, stateful=False)
            s.set_shape([None, self.num_outputs])
        if self.outputs_probabilities:
            s = tf.math.log(tf.clip_by_value(s, 1e-7, 1.0))
        return s

    @property
    def num_outputs(self) -> Optional[int]:
        return getattr(self, "_num_outputs", None)

    def probe(self, sample) -> int:
        """Run the teacher on a few samples: detects a final softmax and returns the number of outputs."""
        if len(sample) == 0:
            raise TeacherError("cannot probe a teacher on an empty data set")
        s = self.logits(sample[: min(len(sample), 64)])
        self._num_outputs = int(s.shape[1])
        return self._num_outputs

    def describe(self):
        return {"name": self.name, "kind": self.kind, "fingerprint": self.fingerprint, "outputs_probabilities": self.outputs_probabilities,
                **({"classes": self.classes} if self.classes is not None else {})}
