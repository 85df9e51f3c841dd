"""LiteRT (TFLite) engine: ai_edge_litert, else tflite_runtime, else tensorflow.lite.

``delegate`` picks what runs the graph:
  None or "xnnpack"  the interpreter's default (XNNPACK for the ops it supports, builtin kernels for the rest);
  "none"             builtin kernels only, no default delegate (what an accelerator-less reference run looks like);
  a path to a .so    an external delegate (GPU, Hexagon, Edge TPU ...), loaded with load_delegate().
"""

import os

import numpy as np

from ..errors import BadInputError, EngineUnavailableError, ModelError


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter

        return interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter

        return interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        # Last resort only: a device should not need TensorFlow.
        import tensorflow as tf

        return tf.lite, "tensorflow.lite"
    except ImportError:
        raise EngineUnavailableError(
            "no TFLite engine is installed", "pip install 'edgekd-runtime[litert]' (ai-edge-litert)"
        )


class Backend(object):
    name = "litert"

    def __init__(self, model_path, artifact=None, threads=None, delegate=None, **_):
        module, self.package = _interpreter_module()
        self.threads = int(threads) if threads else None
        kwargs = {"model_path": model_path, "num_threads": self.threads}
        self.delegate = delegate or "xnnpack"
        if self.delegate == "none":
            resolver = getattr(module, "OpResolverType", None)
            if resolver is None:
                raise EngineUnavailableError("%s cannot turn off its default delegate" % self.package, "install ai-edge-litert")
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        elif self.delegate != "xnnpack":
            if not os.path.isfile(self.delegate):
                raise BadInputError("delegate library not found: %s" % self.delegate, "use xnnpack, none, or the path to a delegate .so")
            try:
                kwargs["experimental_delegates"] = [module.load_delegate(self.delegate)]
            except (ValueError, RuntimeError, OSError) as exc:
                raise EngineUnavailableError("could not load delegate %s: %s" % (self.delegate, exc))
        try:
            self.interpreter = module.Interpreter(**kwargs)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError("LiteRT could not load %s: %s" % (model_path, _first_line(exc)), "the file may be truncated or corrupt")
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])

    def invoke(self, x):
        x = np.asarray(x)
        if x.shape[0] == self._batch or self._batch == -1:
            return self._run(x)
        return np.concatenate([self._run(x[i : i + 1]) for i in range(x.shape[0])], axis=0)

    def prepared_call(self, q):
        """set input, invoke, read output: exactly what a bare loop over the interpreter does."""
        q = np.asarray(q)
        if not (q.shape[0] == self._batch or self._batch == -1):
            return lambda: self.invoke(q)
        set_tensor, invoke, get_tensor = self.interpreter.set_tensor, self.interpreter.invoke, self.interpreter.get_tensor
        i, o = self._input["index"], self._output["index"]

        def call():
            set_tensor(i, q)
            invoke()
            return get_tensor(o)

        return call

    def _run(self, x):
        it = self.interpreter
        it.set_tensor(self._input["index"], x)
        it.invoke()
        return it.get_tensor(self._output["index"]).copy()

    def describe(self):
        # threads None means the interpreter's own default (one thread for the builtin kernels).
        return {"engine": self.name, "package": self.package, "delegate": self.delegate, "threads": self.threads or 1}


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
