"""TFLite Micro engine: the MCU interpreter simulated on the host with the tflite-micro package."""
from __future__ import annotations

import numpy as np

from ..errors import EngineUnavailableError, ModelError

DEFAULT_ARENA = 256 * 1024


class Backend(object):
    name = "tflm"

    def __init__(self, model_path, artifact=None, arena_size=None, **_):
        try:
            from tflite_micro.python.tflite_micro import runtime
        except ImportError:
            raise EngineUnavailableError("tflite-micro is not installed", "pip install 'edgekd-runtime[tflm]'")
        settings = getattr(artifact, "settings", {}) or {}
        self.arena_size = int(arena_size or settings.get("arena_size") or DEFAULT_ARENA)
        with open(model_path, "rb") as handle:
            blob = handle.read()
        try:
            self.interpreter = runtime.Interpreter.from_bytes(blob, arena_size=self.arena_size)
        except Exception as exc:  # the C++ binding raises RuntimeError or ValueError
            raise ModelError("TFLite Micro could not load %s: %s" % (model_path, exc), "is it an int8 or fp32 .tflite?")
        details = self.interpreter.get_input_details(0)
        self._shape = [int(v) for v in details["shape"]]
        self._dtype = np.dtype(details["dtype"]).name

    def input_shape(self):
        return list(self._shape)

    def input_dtype(self):
        return self._dtype

    def invoke(self, x):
        x = np.asarray(x)
        outs = []
        for i in range(x.shape[0]):
            self.interpreter.set_input(x[i : i + 1], 0)
            self.interpreter.invoke()
            outs.append(np.array(self.interpreter.get_output(0)))
        return np.concatenate(outs, axis=0)

    def describe(self):
        return {"engine": self.name, "arena_size": self.arena_size, "threads": 1}
