"""Engine backends, one module each, imported only when used.

Every backend takes a model path and the manifest's artifact entry, and offers:
  ``invoke(x)``: one call of the engine on a tensor already in the model's input dtype;
  ``describe()``: what actually ran (engine, provider/delegate, threads).
"""

import importlib
import sys

from ..errors import BadInputError

_MODULES = {
    "litert": "litert",
    "onnxruntime": "onnxrt",
    "tflm": "tflm",
    "tensorrt": "tensorrt",
    "coreml": "coreml",
}

ENGINES = tuple(sorted(_MODULES))

# Top-level packages each engine needs; any one of a tuple's entries is enough for LiteRT.
_REQUIRES = {
    "litert": (("ai_edge_litert", "tflite_runtime", "tensorflow"),),
    "onnxruntime": (("onnxruntime",),),
    "tflm": (("tflite_micro",),),
    "tensorrt": (("tensorrt",), ("pycuda",)),
    "coreml": (("coremltools",),),
}


def engine_available(engine):
    """Whether ``engine`` could load here, without importing it (find_spec only looks the package up)."""
    from importlib.util import find_spec

    if engine not in _REQUIRES:
        return False
    if engine == "coreml" and sys.platform != "darwin":
        return False
    return all(any(find_spec(name) is not None for name in group) for group in _REQUIRES[engine])


def load_backend(engine, model_path, artifact, **options):
    """Load ``model_path`` on ``engine`` ('litert', 'onnxruntime', 'tflm', 'tensorrt', 'coreml')."""
    if engine not in _MODULES:
        raise BadInputError("unknown engine %r" % engine, "choose one of: " + ", ".join(ENGINES))
    module = importlib.import_module("." + _MODULES[engine], __name__)
    return module.Backend(model_path, artifact, **options)
