"""ONNX Runtime engine; reports which execution provider actually ran."""

import re

import numpy as np

from ..errors import EngineUnavailableError, ModelError


class Backend(object):
    name = "onnxruntime"

    def __init__(self, model_path, artifact=None, threads=None, providers=None, **_):
        try:
            import onnxruntime as ort
        except ImportError:
            raise EngineUnavailableError("onnxruntime is not installed", "pip install 'edgekd-runtime[onnx]'")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.threads = threads
        available = ort.get_available_providers()
        if isinstance(providers, str):
            providers = [v.strip() for v in providers.split(",") if v.strip()]
        # AzureExecutionProvider (remote inference) is listed first in stock builds but never runs a local
        # model: leave it out of the default request so the provider reported is the one that computes.
        self.requested = list(providers) if providers else [p for p in available if p != "AzureExecutionProvider"]
        # Asking for a provider this build lacks makes onnxruntime warn and carry on: record it instead.
        self.missing = [p for p in self.requested if p not in available]
        try:
            usable = [p for p in self.requested if p in available] or ["CPUExecutionProvider"]
            self.session = ort.InferenceSession(model_path, sess_options=options, providers=usable)
        except Exception as exc:  # onnxruntime raises its own exception types
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            used, newest = re.search(r"[Oo]pset (\d+) is under development", text), re.search(r"till opset (\d+)", text)
            if used and newest:
                # onnxruntime 1.10, the last for Python 3.6 (JetPack 4.6), reads opsets up to 15; edgekd's default is 17.
                raise ModelError(
                    "%s uses ONNX opset %s; onnxruntime %s reads opsets up to %s" % (model_path, used.group(1), ort.__version__, newest.group(1)),
                    "convert with a lower opset (edgekd convert --to onnx --opset 13) or install a newer onnxruntime",
                )
            raise ModelError("ONNX Runtime could not load %s: %s" % (model_path, first), "the file may be truncated or corrupt")
        self._input = self.session.get_inputs()[0]
        self._output = self.session.get_outputs()[0].name

    def invoke(self, x):
        return self.session.run([self._output], {self._input.name: np.asarray(x)})[0]

    def prepared_call(self, q):
        run, outputs, feed = self.session.run, [self._output], {self._input.name: np.asarray(q)}
        return lambda: run(outputs, feed)

    def describe(self):
        used = self.session.get_providers()
        info = {"engine": self.name, "provider": used[0], "providers": used, "threads": self.threads or "auto"}
        if self.requested and used[0] != self.requested[0]:
            # A silent fall back to CPU is the usual surprise on a Jetson: say it out loud.
            info["fallback"] = "requested %s, running on %s" % (self.requested[0], used[0])
        if self.missing:
            info["unavailable_providers"] = self.missing
        return info
