"""Intermediate layers: finding them by name, pairing student and teacher layers by spatial size, and
the teacher-side extractor whose outputs become training targets (cached when small, online otherwise)."""
from __future__ import annotations

import difflib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import EdgekdError, TeacherError


class FeatureLayerError(EdgekdError):
    pass


def get_layer(model, name: str, who: str):
    try:
        return model.get_layer(name)
    except ValueError:
        names = [l.name for l in model.layers]
        close = difflib.get_close_matches(name, names, n=3)
        raise FeatureLayerError(f"{who} has no layer named {name!r}" + (f" (close: {', '.join(close)})" if close else ""),
                                f"{who} layers with 4-D outputs: {', '.join(l.name for l in spatial_layers(model))[:300]}")


def _output_shape(layer):
    shape = layer.output.shape
    return tuple(shape)


def spatial_layers(model) -> List:
    """Layers with a (batch, H, W, C) output of at least 2x2, in model order."""
    out = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            shape = _output_shape(layer)
        except (AttributeError, ValueError):  # shared layers have several outputs
            continue
        if len(shape) == 4 and shape[1] and shape[1] >= 2 and shape[2] and shape[2] >= 2:
            out.append(layer)
    return out


def match_by_spatial_size(student, teacher) -> List[Tuple[str, str]]:
    """(student layer, teacher layer) pairs, one per spatial size both models have: the last layer of that size
    in each model (the end of a stage, where attention transfer and hints are usually placed), largest size first."""
    def last_by_size(model):
        found: Dict[Tuple[int, int], object] = {}
        for layer in spatial_layers(model):
            shape = _output_shape(layer)
            found[(shape[1], shape[2])] = layer
        return found

    s, t = last_by_size(student), last_by_size(teacher)
    common = sorted(set(s) & set(t), key=lambda hw: -hw[0] * hw[1])
    if not common:
        raise FeatureLayerError(f"student sizes {sorted(s)} and teacher sizes {sorted(t)} share no spatial size",
                                "name the layers with --feature-layers student_layer:teacher_layer")
    return [(s[hw].name, t[hw].name) for hw in common]


def check_pairs(student, teacher, pairs: Sequence[Tuple[str, str]], need_same_size: bool = True) -> None:
    for s_name, t_name in pairs:
        s_shape = _output_shape(get_layer(student, s_name, "the student"))
        t_shape = _output_shape(get_layer(teacher, t_name, "the teacher"))
        if len(s_shape) != 4 or len(t_shape) != 4:
            raise FeatureLayerError(f"feature layers must output (batch, H, W, C): {s_name} gives {s_shape}, {t_name} gives {t_shape}")
        if need_same_size and s_shape[1:3] != t_shape[1:3]:
            raise FeatureLayerError(f"student layer {s_name} is {s_shape[1]}x{s_shape[2]} but teacher layer {t_name} is {t_shape[1]}x{t_shape[2]}",
                                    "pair layers of the same spatial size")


def penultimate_layer(model):
    """The layer feeding the last Dense layer (the features the classifier reads)."""
    for layer in reversed(model.layers):
        if type(layer).__name__ == "Dense":
            inbound = layer.input
            return inbound
    raise FeatureLayerError(f"{model.name} has no Dense classifier layer", "CRD reads the input of the final Dense layer")


def submodel(model, outputs):
    """A model sharing ``model``'s weights with the given outputs (tf_keras or Keras 3, like ``model``)."""
    import tf_keras as keras

    if isinstance(model, keras.Model):
        return keras.Model(model.inputs, outputs)
    import keras as keras3

    return keras3.Model(model.inputs, outputs)


def teacher_model_of(teacher, method: str):
    if teacher.keras_model is None:
        raise TeacherError(f"{method} needs the teacher's intermediate layers, but {teacher.name} is a {teacher.kind} teacher",
                           "pass the teacher as a Keras model file (.keras/.h5) or a tf_keras SavedModel")
    return teacher.keras_model


def estimate_bytes(shapes: Sequence[tuple], n: int) -> int:
    """float16 bytes to cache targets of these per-sample shapes for n samples."""
    return int(sum(int(np.prod([d for d in s[1:]])) for s in shapes) * n * 2)
