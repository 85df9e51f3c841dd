"""Engine backends, one module each, imported only when used.

Every backend takes a model path and the manifest's artifact entry, and offers:
  ``invoke(x)``: one call of the engine on a tensor already in the model's input dtype;
  ``describe()``: what actually ran (engine, provider/delegate, threads).
"""
from __future__ import annotations

import importlib

from ..errors import BadInputError

_MODULES = {
    "litert": "litert",
    "onnxruntime": "onnxrt",
    "tflm": "tflm",
    "tensorrt": "tensorrt",
    "coreml": "coreml",
}

ENGINES = tuple(sorted(_MODULES))


def load_backend(engine, model_path, artifact, **options):
    """Load ``model_path`` on ``engine`` ('litert', 'onnxruntime', 'tflm', 'tensorrt', 'coreml')."""
    if engine not in _MODULES:
        raise BadInputError("unknown engine %r" % engine, "choose one of: " + ", ".join(ENGINES))
    module = importlib.import_module("." + _MODULES[engine], __name__)
    return module.Backend(model_path, artifact, **options)
