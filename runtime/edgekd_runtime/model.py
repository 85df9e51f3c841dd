"""A bundle's artifact loaded on an engine, taking raw inputs and returning float scores.

Raw input -> preprocessing from the manifest -> quantization (for int8/uint8 models) -> engine ->
dequantization. The host uses this same class to verify what it bundles.
"""

import time
from typing import Optional

import numpy as np

from .backends import engine_available, engine_unavailable, load_backend
from .bundle import Bundle
from .errors import BadInputError, BundleFormatError, IntegrityError
from .manifest import Artifact, Manifest, Preprocessing, TensorSpec

# The one verification status that lets the runtime pick an artifact without allow_unverified.
PASSED = "passed"
UNVERIFIED_HINT = "pass --allow-unverified (allow_unverified=True in Python) to run it anyway"


def is_verified(art: Artifact) -> bool:
    return art.verification == PASSED


def as_batch(x, sample_shape):
    """Raw input -> a batch (N, *sample_shape), for the layouts the host's ``build`` accepts: a batch, one sample
    without its batch axis, and for a (H, W, 1) model grayscale images without their channel axis, (N, H, W)
    or (H, W). Raises BadInputError naming the shape given and the shapes expected."""
    x = np.asarray(x)
    shape, sample = tuple(x.shape), tuple(sample_shape)
    if shape == sample:
        return x[None]
    if shape[1:] == sample:
        return x
    channel_less = len(sample) == 3 and sample[-1] == 1
    if channel_less:
        bare = sample[:-1]
        if shape == bare:
            return x[None, ..., None]
        if shape[1:] == bare:
            return x[..., None]
    dims = ", ".join(str(v) for v in sample)
    accepted = "(N, %s) or %s" % (dims, sample)
    if channel_less:
        accepted += ", or (N, %d, %d) / (%d, %d) without the channel axis" % (sample[0], sample[1], sample[0], sample[1])
    raise BadInputError("input shape %s does not match the model: expected %s" % (shape, accepted))


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
    def from_bundle(cls, bundle: Bundle, artifact: Optional[str] = None, engine: Optional[str] = None, allow_unverified: bool = False, **options) -> "Model":
        """Load the artifact the bundle's profile (or ``artifact``/``engine``) names. Only an artifact the host
        verified ("passed") runs, unless ``allow_unverified``; every file it loads is first checked against the
        manifest's sha256 (``Bundle.checked_path``)."""
        art, chosen, note = select_artifact(bundle.manifest, artifact, engine, allow_unverified=allow_unverified)
        if not allow_unverified and not is_verified(art):
            raise IntegrityError("%s; refusing to run it" % _verification_words(art), UNVERIFIED_HINT)
        for name in bundle.artifact_files(art):
            bundle.checked_path(name)
        model = cls(bundle.checked_path(art.path), art, bundle.manifest.preprocessing, engine=chosen, **options)
        model.selection_note = note
        model.raw_dtype = bundle.manifest.input.dtype
        return model

    def check_input(self, x):
        """Raw input -> a batch the model takes, or BadInputError (one line: what was expected, what was given)."""
        x = as_batch(x, self.sample_shape)
        if x.dtype.kind not in "fiu":
            raise BadInputError(
                "input dtype %s is not a real number type: expected %s (or another integer or float type), given %s"
                % (x.dtype, self.raw_dtype or "float32", x.dtype)
            )
        if len(x) == 0:
            raise BadInputError("the input holds no samples (shape %s)" % (tuple(x.shape),))
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise BadInputError("input contains NaN or Inf values", "clean the input before running the model")
        self._check_raw_dtype(x)
        return x

    def _check_raw_dtype(self, x):
        """The manifest's preprocessing maps the raw dtype the host trained on (``raw_dtype``) to the model's input.
        Integer pixels given as floats (already scaled to [0, 1], say) would be scaled a second time and answered
        with confidence, so an integer raw dtype takes integers within its range only."""
        if not self.raw_dtype:
            return
        try:
            raw = np.dtype(self.raw_dtype)
        except TypeError:
            raise BundleFormatError("manifest.json's input dtype %r is not a numeric dtype" % (self.raw_dtype,))
        if raw.kind not in "iu":
            return
        info = np.iinfo(raw)
        pre = self.preprocessing
        lo, hi = float(np.min(x)), float(np.max(x))
        scaled = "the runtime maps it to the model's input with %s itself" % pre.describe()
        if x.dtype.kind == "f":
            hint = "pass the raw %s data as at training" % raw.name
            if raw.name == "uint8" and hi <= 1.0:
                hint += ", e.g. (x * 255).round().astype(np.uint8) for images scaled to [0, 1]"
            raise BadInputError(
                "input dtype %s (values %.4g..%.4g) does not match the bundle's input: expected %s values %d..%d (%s)"
                % (x.dtype, lo, hi, raw.name, info.min, info.max, scaled),
                hint,
            )
        if lo < info.min or hi > info.max:
            raise BadInputError(
                "input values %d..%d are outside the bundle's %s input range %d..%d" % (lo, hi, raw.name, info.min, info.max),
                "pass the raw %s data as at training" % raw.name,
            )

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
        info["verification"] = self.artifact.verification
        if self.selection_note:
            info["engine_note"] = self.selection_note
        return info


def _verification_words(art: Artifact) -> str:
    if art.verification == "failed":
        return "artifact %s (%s) failed the host's verification" % (art.path, art.format)
    return "artifact %s (%s) was not verified by the host (%s)" % (art.path, art.format, art.verification)


def select_artifact(manifest: Manifest, artifact: Optional[str] = None, engine: Optional[str] = None, allow_unverified: bool = False):
    """Which artifact runs on which engine: (Artifact, engine, note or None).

    An ``artifact`` flag picks by format; an ``engine`` flag picks the artifact made for that engine (a verified
    one first), or runs the primary one on it (e.g. a .tflite on tflm). Without flags only artifacts the host
    verified are candidates (unless ``allow_unverified``, which still leaves out failed ones while others
    remain): the device profile's engine wins when this device has it installed; otherwise the first
    candidate whose engine is installed runs, and the note says why. ``Model.from_bundle`` refuses a named
    artifact that is not verified, unless ``allow_unverified``.
    """
    if artifact:
        art = manifest.artifact(artifact)
        return art, engine or art.engine, None
    if engine:
        made_for = sorted((a for a in manifest.artifacts if a.engine == engine), key=lambda a: not is_verified(a))
        if made_for:
            return made_for[0], engine, None
        return manifest.primary(), engine, None
    note = None
    preferred = manifest.profile.get("engine")
    if allow_unverified:
        usable = [a for a in manifest.artifacts if a.verification != "failed"] or manifest.artifacts
    else:
        usable = [a for a in manifest.artifacts if is_verified(a)]
        if not usable:
            raise IntegrityError(
                "no artifact of this bundle passed the host's verification (%s); refusing to run one"
                % ", ".join("%s: %s" % (a.format, a.verification) for a in manifest.artifacts),
                UNVERIFIED_HINT,
            )
        skipped = [a for a in manifest.artifacts if a.engine == preferred and not is_verified(a)]
        if preferred and skipped and not any(a.engine == preferred for a in usable):
            why = engine_unavailable(preferred)
            if why is None:
                note = "the profile's engine %s has only an unverified artifact (%s: %s), run with --allow-unverified" % (preferred, skipped[0].format, skipped[0].verification)
            else:  # the first reason a user can act on
                note = "the profile's engine %s is %s" % (preferred, why)
    if preferred and any(a.engine == preferred for a in usable):
        why = engine_unavailable(preferred)
        if why is None:
            return [a for a in usable if a.engine == preferred][0], preferred, None
        note = "the profile's engine %s is %s" % (preferred, why)
    for art in usable:
        if engine_available(art.engine):
            if note:
                note += "; ran the %s artifact on %s instead" % (art.format, art.engine)
            return art, art.engine, note
    # Nothing installed: load the first candidate anyway so the user gets the engine's own install hint.
    return usable[0], usable[0].engine, note
