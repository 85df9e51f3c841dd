"""A student read from a model file must output logits: the distillation losses and the runtime apply their own
softmax, so a final softmax left in place would train on probabilities taken for logits, and ship a model whose
confidences are a softmax of a softmax. :func:`without_softmax` finds one and removes it, or refuses the file.

Used wherever a student comes from a file: ``edgekd convert`` (:func:`edgekd.convert.batch.load_student`) and
``edgekd distill --student FILE`` (:func:`edgekd.distill.student.resolve`).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import EdgekdError

_SOFTMAX_OPS = ("nn.softmax", "math.softmax", "softmax")
_WRAPPERS = ("QuantizeWrapper", "QuantizeWrapperV2", "PruneLowMagnitude")
_HINT = "export the student without its final softmax: edgekd students output logits"


class SoftmaxRemovedWarning(UserWarning):
    """A student file ended in a softmax, which was removed."""


def without_softmax(model, source: str = "the student", input_shape=None):
    """``model`` when it outputs logits; else the same model (same weights) without its final softmax, with a
    :class:`SoftmaxRemovedWarning` naming ``source``. Raises :class:`EdgekdError` for a softmax it cannot remove
    (inside a quantization wrapper, or in a subclassed model's code, found by its outputs summing to 1 on random
    inputs of ``input_shape``, the sample shape, when the model does not know its own).

    Expects a freshly loaded model: a softmax that is a layer's activation is switched off in place."""
    import tf_keras as keras

    if not isinstance(model, keras.Model):
        return model
    if not getattr(model, "_is_graph_network", False):
        _refuse_if_probabilities(model, source, input_shape)
        return model
    if len(model.outputs) != 1:
        return model
    layer = _output_layer(model)
    inner = getattr(layer, "layer", None) if type(layer).__name__ in _WRAPPERS else None
    if inner is not None and _softmax_kind(inner):
        raise EdgekdError(f"{source} ends in a softmax inside {type(layer).__name__} ({layer.name}), which edgekd cannot remove", _HINT)
    kind = _softmax_kind(layer)
    if kind is None:
        _refuse_if_probabilities(model, source, input_shape)
        return model
    if kind == "activation":
        # The layer keeps its weights and computes its pre-activation output; its config now says linear too,
        # so a clone (distill's fresh student) or a saved copy has no softmax either.
        layer.activation = keras.activations.linear
        out = model
    else:
        if isinstance(layer.input, (list, tuple)):
            raise EdgekdError(f"{source} ends in a softmax layer ({layer.name}) with several inputs", _HINT)
        out = keras.Model(model.inputs, layer.input, name=model.name)
    warnings.warn(f"{source} ends in a softmax ({layer.name}): removed, since students output logits "
                  "(the distillation losses and the runtime apply their own softmax)", SoftmaxRemovedWarning, stacklevel=2)
    return out


def _output_layer(model):
    history = getattr(model.outputs[0], "_keras_history", None)
    return history[0] if history is not None else model.layers[-1]


def _softmax_kind(layer):
    """"layer" for a layer that is a softmax, "activation" for one whose activation is, None otherwise."""
    name = type(layer).__name__
    if name == "Softmax":
        return "layer"
    try:
        cfg = layer.get_config()
    except Exception:  # a custom layer without get_config: nothing to read, the outputs are checked instead
        return None
    act = cfg.get("activation")
    while isinstance(act, dict):  # a serialized activation object, e.g. QAT's QuantizeAwareActivation(softmax)
        inner = act.get("config") or {}
        act = inner.get("activation", inner.get("name", act.get("class_name")))
    if act == "softmax":
        return "layer" if name == "Activation" else "activation"
    if name in ("TFOpLambda", "SlicingOpLambda") and cfg.get("function") in _SOFTMAX_OPS:
        return "layer"
    return None


def _refuse_if_probabilities(model, source: str, input_shape) -> None:
    """A softmax the structure does not show (a subclassed model, a custom layer): outputs that are distributions
    over at least two classes for random inputs are not logits."""
    from ..teachers.teacher import looks_like_probabilities

    try:
        shape = tuple(model.input_shape[1:])
    except (AttributeError, TypeError):  # a subclassed model that was never built on a shape
        shape = tuple(input_shape) if input_shape is not None else ()
    if not shape or any(not isinstance(d, int) for d in shape):
        return
    x = np.random.default_rng(0).random((8, *shape)).astype(np.float32)
    try:
        out = np.asarray(model(x, training=False), dtype=np.float64)
    except Exception:  # a model that cannot run on such inputs fails later with its own error, where it is used
        return
    if out.ndim == 2 and looks_like_probabilities(out):
        raise EdgekdError(f"{source} outputs probabilities (every row sums to 1), not logits, and its softmax is not a layer edgekd can remove", _HINT)
