"""CoreML engine (macOS only: coremltools' MLModel.predict raises elsewhere).

Not executed on the machines this project is developed on (Linux): see the README.
"""

import sys

import numpy as np

from ..errors import EngineUnavailableError, ModelError


class Backend(object):
    name = "coreml"

    def __init__(self, model_path, artifact=None, compute_units="ALL", **_):
        if sys.platform != "darwin":
            raise EngineUnavailableError("CoreML runs only on macOS/iOS", "profile this bundle on a Mac, or use its ONNX/TFLite artifact")
        try:
            import coremltools as ct
        except ImportError:
            raise EngineUnavailableError("coremltools is not installed", "pip install 'edgekd-runtime[coreml]'")
        try:
            self.model = ct.models.MLModel(model_path, compute_units=getattr(ct.ComputeUnit, compute_units))
        except Exception as exc:
            raise ModelError("CoreML could not load %s: %s" % (model_path, exc))
        spec = self.model.get_spec()
        self.input_name = spec.description.input[0].name
        self.output_name = spec.description.output[0].name
        self.compute_units = compute_units

    def invoke(self, x):
        x = np.asarray(x, dtype=np.float32)
        outs = [np.asarray(self.model.predict({self.input_name: x[i : i + 1]})[self.output_name]) for i in range(x.shape[0])]
        return np.concatenate(outs, axis=0)

    def describe(self):
        return {"engine": self.name, "compute_units": self.compute_units}
