"""A bundle's artifact loaded on an engine, taking raw inputs and returning float scores.

Raw input -> preprocessing from the manifest -> quantization (for int8/uint8 models) -> engine ->
dequantization. The host uses this same class to verify what it bundles.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from .backends import engine_available, load_backend
from .bundle import Bundle
from .errors import BadInputError
from .manifest import Artifact, Manifest, Preprocessing, TensorSpec


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
        self.selection_note = None  # set by from_bundle when the profile's engine could not be used here
        start = time.perf_counter()
        self.backend = load_backend(self.engine, model_path, artifact, **options)
        self.load_seconds = time.perf_counter() - start
        self.sample_shape = tuple(artifact.input.shape[1:])
        self.raw_dtype = None  # the manifest's raw input dtype, set by from_bundle

    @classmethod
    def from_bundle(cls, bundle: Bundle, artifact: Optional[str] = None, engine: Optional[str] = None, **options) -> "Model":
        art, chosen, note = select_artifact(bundle.manifest, artifact, engine)
        model = cls(bundle.path(art.path), art, bundle.manifest.preprocessing, engine=chosen, **options)
        model.selection_note = note
        model.raw_dtype = bundle.manifest.input.dtype
        return model

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
            raise BadInputError(
                "input dtype %s is not a real number type: expected %s (or another integer or float type), given %s"
                % (x.dtype, self.raw_dtype or "float32", x.dtype)
            )
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise BadInputError("input contains NaN or Inf values", "clean the input before running the model")
        return x

    def prepare(self, x):
        """Raw input -> the exact tensor the engine takes."""
        x = self.check_input(x)
        return quantize(self.preprocessing.apply(x), self.artifact.input)

    def predict(self, x):
        """Float scores (logits, or whatever the student's last layer emits) for raw inputs."""
        return dequantize(self.backend.invoke(self.prepare(x)), self.artifact.output)

    def prepared_call(self, q):
        """A zero-argument callable running the engine once on the prepared tensor ``q``: what the profiler
        times, so that its loop adds nothing but the clock reads (backends may offer a leaner path)."""
        bind = getattr(self.backend, "prepared_call", None)
        if bind is not None:
            return bind(q)
        invoke = self.backend.invoke
        return lambda: invoke(q)

    def describe(self):
        info = dict(self.backend.describe())
        info["format"] = self.artifact.format
        if self.selection_note:
            info["engine_note"] = self.selection_note
        return info


def select_artifact(manifest: Manifest, artifact: Optional[str] = None, engine: Optional[str] = None):
    """Which artifact runs on which engine: (Artifact, engine, note or None).

    An ``artifact`` flag picks by format; an ``engine`` flag picks the artifact made for that engine (or runs
    the primary one on it, e.g. a .tflite on tflm). Without flags the device profile's engine wins when this
    device has it installed; otherwise the first artifact whose engine is installed runs, and the note says why.
    """
    if artifact:
        art = manifest.artifact(artifact)
        return art, engine or art.engine, None
    if engine:
        for art in manifest.artifacts:
            if art.engine == engine:
                return art, engine, None
        return manifest.primary(), engine, None
    note = None
    # An artifact the host marked failed (e.g. int8 that missed the parity bounds) runs only when asked for by name.
    usable = [a for a in manifest.artifacts if a.verification != "failed"] or manifest.artifacts
    preferred = manifest.profile.get("engine")
    if preferred and any(a.engine == preferred for a in usable):
        if engine_available(preferred):
            return [a for a in usable if a.engine == preferred][0], preferred, None
        note = "the profile's engine %s is not installed here" % preferred
    for art in usable:
        if engine_available(art.engine):
            if note:
                note += "; ran the %s artifact on %s instead" % (art.format, art.engine)
            return art, art.engine, note
    # Nothing installed: load the primary anyway so the user gets the engine's own install hint.
    return usable[0], usable[0].engine, note
