"""TFLite Micro engine: the MCU interpreter simulated on the host with the tflite-micro package.

The arena a real MCU would need is reported: tflite-micro has no Python call for it, but
``print_allocations()`` writes "Arena allocation total N bytes" to the C-level stderr, which is
captured here by pointing file descriptor 2 at a temporary file for the duration of the call.

Public API: ``arena_used`` (the host measures a model's arena with it when it converts for TFLite Micro).
"""

import os
import re
import tempfile

import numpy as np

from ..errors import EngineUnavailableError, ModelError

__all__ = ["Backend", "arena_used"]

DEFAULT_ARENA = 256 * 1024
_ARENA_RE = re.compile(rb"Arena allocation total (\d+) bytes")


def arena_used(interpreter):
    """Bytes of the arena the model actually allocated, or None if the interpreter does not say.

    ``interpreter`` is a tflite-micro ``runtime.Interpreter`` (it allocates its tensors when made). What
    tflite-micro writes to stderr meanwhile is captured, not shown; file descriptor 2 is restored after.
    """
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                interpreter.print_allocations()
            finally:
                os.dup2(saved, 2)
            sink.seek(0)
            match = _ARENA_RE.search(sink.read())
    finally:
        os.close(saved)
    return int(match.group(1)) if match else None


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
        self._arena_used = None

    def invoke(self, x):
        x = np.asarray(x)
        outs = []
        for i in range(x.shape[0]):
            self.interpreter.set_input(x[i : i + 1], 0)
            self.interpreter.invoke()
            outs.append(np.array(self.interpreter.get_output(0)))
        return np.concatenate(outs, axis=0)

    def prepared_call(self, q):
        q = np.asarray(q)
        if q.shape[0] != 1:
            return lambda: self.invoke(q)
        it = self.interpreter

        def call():
            it.set_input(q, 0)
            it.invoke()
            return it.get_output(0)

        return call

    def describe(self):
        if self._arena_used is None:
            self._arena_used = arena_used(self.interpreter)
        return {"engine": self.name, "arena_size": self.arena_size, "arena_used": self._arena_used, "threads": 1}
