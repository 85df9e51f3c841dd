"""A bundle's artifact loaded on an engine, taking raw inputs and returning float scores.

Raw input -> preprocessing from the manifest -> quantization (for int8/uint8 models) -> engine ->
dequantization. The host uses this same class to verify what it bundles.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from .backends import load_backend
from .bundle import Bundle
from .errors import BadInputError
from .manifest import Artifact, Preprocessing, TensorSpec


def quantize(x, spec: TensorSpec):
    if spec.dtype in ("float32", "float16"):
        return x.astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    q = np.round(x / np.float32(spec.scale)) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def dequantize(q, spec: TensorSpec):
    q = np.asarray(q)
    if spec.scale is None or q.dtype.kind == "f":
        return q.astype(np.float32)
    return (q.astype(np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)


class Model(object):
    """Run one artifact of a bundle.

    >>> from edgekd_runtime import Bundle, Model          # doctest: +SKIP
    >>> model = Model.from_bundle(Bundle.open("out/demo/phone"))
    >>> model.predict(x_raw).argmax(axis=1)
    """

    def __init__(self, model_path: str, artifact: Artifact, preprocessing: Preprocessing, engine: Optional[str] = None, **options):
        self.artifact = artifact
        self.preprocessing = preprocessing
        self.engine = engine or artifact.engine
        start = time.perf_counter()
        self.backend = load_backend(self.engine, model_path, artifact, **options)
        self.load_seconds = time.perf_counter() - start
        self.sample_shape = tuple(artifact.input.shape[1:])

    @classmethod
    def from_bundle(cls, bundle: Bundle, artifact: Optional[str] = None, engine: Optional[str] = None, **options) -> "Model":
        art = bundle.manifest.artifact(artifact)
        return cls(bundle.path(art.path), art, bundle.manifest.preprocessing, engine=engine, **options)

    def check_input(self, x):
        x = np.asarray(x)
        if x.ndim == len(self.sample_shape):
            x = x[None]
        if tuple(x.shape[1:]) != self.sample_shape:
            raise BadInputError(
                "input shape %s does not match the model: expected (N, %s) or %s"
                % (tuple(x.shape), ", ".join(str(v) for v in self.sample_shape), self.sample_shape)
            )
        if x.dtype.kind not in "fiu":
            raise BadInputError("input dtype %s is not numeric; expected float32 or an integer image type" % x.dtype)
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise BadInputError("input contains NaN or Inf values", "clean the input before running the model")
        return x

    def prepare(self, x):
        """Raw input -> the exact tensor the engine takes."""
        x = self.check_input(x)
        return quantize(self.preprocessing.apply(x), self.artifact.input)

    def invoke_prepared(self, q):
        return self.backend.invoke(q)

    def predict(self, x):
        """Float scores (logits, or whatever the student's last layer emits) for raw inputs."""
        return dequantize(self.backend.invoke(self.prepare(x)), self.artifact.output)

    def describe(self):
        info = dict(self.backend.describe())
        info["format"] = self.artifact.format
        return info
