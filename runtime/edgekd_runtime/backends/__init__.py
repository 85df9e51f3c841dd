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
    "c": "c",
}

ENGINES = tuple(sorted(_MODULES))

# Top-level packages each engine needs; any one of a tuple's entries is enough for LiteRT.
_REQUIRES = {
    "litert": (("ai_edge_litert", "tflite_runtime", "tensorflow"),),
    "onnxruntime": (("onnxruntime",),),
    "tflm": (("tflite_micro",),),
    "tensorrt": (("tensorrt",), ("pycuda",)),
    "coreml": (("coremltools",),),
    "c": (),  # a C compiler, not a Python package: its module's usable() says
}


# Engines whose packages can be installed where they cannot run (pycuda and TensorRT without a usable GPU): their
# module's usable() is asked too, once the packages are found.
_PROBED = ("tensorrt", "c")


def engine_unavailable(engine):
    """None when ``engine`` can run here; otherwise why not, in words ("not installed here", or the probe's reason).

    Packages are only looked up (find_spec), except for the engines in _PROBED, whose backend then tries to
    make a CUDA context: importing them is what using them costs anyway.
    """
    from importlib.util import find_spec

    if engine not in _REQUIRES or (engine == "coreml" and sys.platform != "darwin"):
        return "not installed here"
    if not all(any(find_spec(name) is not None for name in group) for group in _REQUIRES[engine]):
        return "not installed here"
    if engine in _PROBED:
        ok, why = importlib.import_module("." + _MODULES[engine], __name__).usable()
        if not ok:
            return "installed but not usable here: " + why
    return None


def engine_available(engine):
    """Whether ``engine`` can run here (see engine_unavailable)."""
    return engine_unavailable(engine) is None


def load_backend(engine, model_path, artifact, **options):
    """Load ``model_path`` on ``engine`` ('litert', 'onnxruntime', 'tflm', 'tensorrt', 'coreml', 'c')."""
    if engine not in _MODULES:
        raise BadInputError("unknown engine %r" % engine, "choose one of: " + ", ".join(ENGINES))
    module = importlib.import_module("." + _MODULES[engine], __name__)
    return module.Backend(model_path, artifact, **options)
