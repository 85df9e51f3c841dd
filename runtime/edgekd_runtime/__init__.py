"""edgekd_runtime: load, verify, run and profile edgekd bundles on a device.

Imports numpy only; an engine package is imported when a model is loaded on it.

The public API is ``__all__`` below, plus the engine helpers the host also uses, public in their backend
module: ``backends.tflm.arena_used`` and ``backends.tensorrt.build_engine`` / ``calibration_sample`` /
``CALIBRATION_SAMPLES``. The rest is internal and may change between versions.
"""
from .bundle import Bundle, write_bundle
from .errors import BadInputError, BundleFormatError, EngineUnavailableError, IntegrityError, ModelError, RuntimeFailure
from .manifest import SCHEMA_VERSION, Artifact, Manifest, Preprocessing, TensorSpec
from .model import Model
from .profiler import latency_stats, profile, time_invocations

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "BadInputError",
    "Bundle",
    "BundleFormatError",
    "EngineUnavailableError",
    "IntegrityError",
    "Manifest",
    "Model",
    "ModelError",
    "Preprocessing",
    "RuntimeFailure",
    "SCHEMA_VERSION",
    "TensorSpec",
    "latency_stats",
    "profile",
    "time_invocations",
    "write_bundle",
]
