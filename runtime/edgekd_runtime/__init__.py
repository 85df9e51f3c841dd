"""edgekd_runtime: load, verify, run and profile edgekd bundles on a device.

Imports numpy only; an engine package is imported when a model is loaded on it.
"""
from .bundle import Bundle, write_bundle
from .errors import BadInputError, BundleFormatError, EngineUnavailableError, IntegrityError, ModelError, RuntimeFailure
from .manifest import SCHEMA_VERSION, Artifact, Manifest, Preprocessing, TensorSpec
from .model import Model
from .profiler import profile

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
    "profile",
    "write_bundle",
]
