"""LiteRT (TFLite) engine: ai_edge_litert, else tflite_runtime, else tensorflow.lite."""
from __future__ import annotations

import numpy as np

from ..errors import EngineUnavailableError, ModelError


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        # Last resort only: a device should not need TensorFlow.
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise EngineUnavailableError(
            "no TFLite engine is installed", "pip install 'edgekd-runtime[litert]' (ai-edge-litert)"
        )


class Backend(object):
    name = "litert"

    def __init__(self, model_path, artifact=None, threads=None, **_):
        cls, self.package = _interpreter_class()
        self.threads = threads
        try:
            self.interpreter = cls(model_path=model_path, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError("LiteRT could not load %s: %s" % (model_path, exc), "the file may be truncated or corrupt")
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])

    def input_shape(self):
        return [int(v) for v in self._input["shape"]]

    def input_dtype(self):
        return np.dtype(self._input["dtype"]).name

    def invoke(self, x):
        x = np.asarray(x)
        if x.shape[0] == self._batch or self._batch == -1:
            return self._run(x)
        return np.concatenate([self._run(x[i : i + 1]) for i in range(x.shape[0])], axis=0)

    def _run(self, x):
        it = self.interpreter
        it.set_tensor(self._input["index"], x)
        it.invoke()
        return it.get_tensor(self._output["index"]).copy()

    def describe(self):
        return {"engine": self.name, "package": self.package, "delegate": "xnnpack/cpu", "threads": self.threads}
