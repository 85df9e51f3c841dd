"""Quantization-aware distillation: the student trains wrapped by tensorflow-model-optimization's quantize_model,
so it learns weights that survive int8. :func:`edgekd.convert.tflite.tflite_bytes` (format ``tflite-int8``) turns
the result into an int8 model, reading the ranges from its fake-quant nodes instead of calibrating.

Layers tfmot does not know (edgekd's HardSwish, Resizing...) are annotated with a config that quantizes only their
output, which is what the int8 TFLite kernels do for such element-wise ops anyway.
"""
from __future__ import annotations

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from ..errors import EdgekdError

quantize = tfmot.quantization.keras


class OutputOnlyQuantizeConfig(quantize.QuantizeConfig):
    """No weights, 8-bit output: for weightless layers outside tfmot's registry."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [quantize.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


class KernelAndOutputQuantizeConfig(OutputOnlyQuantizeConfig):
    """8-bit kernel and output, activation left alone: for convolutions with an activation tfmot's
    registry refuses (the squeeze-excite gate's hard_sigmoid)."""

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, quantize.quantizers.LastValueQuantizer(num_bits=8, symmetric=True, narrow_range=False, per_axis=False))]

    def set_quantize_weights(self, layer, quantize_weights):
        layer.kernel = quantize_weights[0]


SUPPORTED_ACTIVATIONS = {"linear", "relu", "relu6", "softmax", "sigmoid", "tanh"}


def _activation(layer):
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", None)


def _supported(layer) -> bool:
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_registry as reg

    return reg.Default8BitQuantizeRegistry().supports(layer)


def custom_objects(model=None):
    objs = {"OutputOnlyQuantizeConfig": OutputOnlyQuantizeConfig, "KernelAndOutputQuantizeConfig": KernelAndOutputQuantizeConfig}
    if model is not None:
        for layer in model.layers:
            objs.setdefault(type(layer).__name__, type(layer))
    return objs


def quantize_student(model):
    """The student wrapped for quantization-aware training (weights carried over)."""
    def annotate(layer):
        # Layers with weights (BatchNormalization included, which tfmot folds into the convolution before it)
        # go to tfmot's own rules; it names any it cannot handle.
        fresh = layer.__class__.from_config(layer.get_config())
        if hasattr(layer, "kernel") and _activation(layer) not in (None, *SUPPORTED_ACTIVATIONS):
            return quantize.quantize_annotate_layer(fresh, quantize_config=KernelAndOutputQuantizeConfig())
        if _supported(layer) or layer.weights or isinstance(layer, keras.layers.InputLayer):
            return quantize.quantize_annotate_layer(fresh)
        return quantize.quantize_annotate_layer(fresh, quantize_config=OutputOnlyQuantizeConfig())

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with quantize.quantize_scope(custom_objects(model)):
        try:
            return quantize.quantize_apply(annotated)
        except (RuntimeError, ValueError) as exc:
            raise EdgekdError(f"tfmot cannot wrap this student for QAT: {str(exc).splitlines()[0][:200]}", "drop --qat or use the mobilenetv3/mlp families")


def load_qat_student(path):
    """Load a QAT student saved by edgekd (tfmot's wrappers need their scope)."""
    from ..students import mobilenetv3

    with quantize.quantize_scope({**custom_objects(), "HardSwish": mobilenetv3.HardSwish}):
        return keras.models.load_model(str(path), compile=False)
