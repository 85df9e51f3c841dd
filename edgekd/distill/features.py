"""Intermediate layers: finding them by name, pairing student and teacher layers by spatial size, and
the teacher-side extractor whose outputs become training targets (cached when small, online otherwise).

The feature targets are kept by the teachers' cache (:mod:`edgekd.teachers.cache`) beside the soft labels, keyed
also by the layers and transforms a method reads.
"""
from __future__ import annotations

import difflib
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import EdgekdError, TeacherError

FEATURE_CACHE_LIMIT = 512 << 20  # bytes of float16 feature targets kept in memory; above it the teacher runs online


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


def find_layer(student, name: str):
    """A student layer by name, also inside tfmot's wrappers (quant_NAME, prune_low_magnitude_NAME)."""
    for candidate in (name, f"quant_{name}", f"prune_low_magnitude_{name}"):
        try:
            return student.get_layer(candidate)
        except ValueError:
            continue
    return get_layer(student, name, "the student")


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


def check_pairs(student, teacher, pairs: Sequence[Tuple[str, str]]) -> None:
    """Both layers of every pair exist, output (batch, H, W, C) and agree on H and W."""
    for s_name, t_name in pairs:
        s_shape = _output_shape(get_layer(student, s_name, "the student"))
        t_shape = _output_shape(get_layer(teacher, t_name, "the teacher"))
        if len(s_shape) != 4 or len(t_shape) != 4:
            raise FeatureLayerError(f"feature layers must output (batch, H, W, C): {s_name} gives {s_shape}, {t_name} gives {t_shape}")
        if s_shape[1:3] != t_shape[1:3]:
            raise FeatureLayerError(f"student layer {s_name} is {s_shape[1]}x{s_shape[2]} but teacher layer {t_name} is {t_shape[1]}x{t_shape[2]}",
                                    "pair layers of the same spatial size")


def penultimate_layer(model):
    """The layer feeding the last Dense layer (the features the classifier reads)."""
    for layer in reversed(model.layers):
        if type(layer).__name__ == "Dense":
            return layer.input
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


def teacher_targets(teacher, outputs: Dict[str, Tuple[object, Optional[Callable]]], x: np.ndarray, data_fp: str, tag: str,
                    *, online: bool, cache: bool):
    """The teacher's intermediate outputs as training targets: ``(arrays, None, mode, seconds)`` when cached,
    ``(None, fn, mode, 0.0)`` when the teacher must run online, ``fn(x batch)`` then returning them with the logits.

    ``outputs`` maps a target key to (keras tensor of the teacher, transform applied in TF, or None); ``tag``
    names the layers and transforms in the cache key; ``seconds`` is the teacher time spent here."""
    import tensorflow as tf

    from ..teachers import cache as teacher_cache

    keys = list(outputs)
    tm = teacher.keras_model
    # The teacher's own output rides along, so an online step runs the teacher once for logits and features.
    extractor = submodel(tm, [tm.outputs[0], *[outputs[k][0] for k in keys]])
    transforms = [outputs[k][1] for k in keys]

    def compute(xb, with_logits=False):
        outs = list(extractor(xb, training=False))
        found = {k: (f(o) if f is not None else tf.cast(o, tf.float32)) for k, o, f in zip(keys, outs[1:], transforms)}
        if with_logits:
            z = tf.cast(outs[0], tf.float32)
            found["logits"] = tf.math.log(tf.clip_by_value(z, 1e-7, 1.0)) if teacher.outputs_probabilities else z
        return found

    probe = compute(tf.constant(x[:1]))
    shapes = {k: (len(x), *probe[k].shape[1:]) for k in keys}
    too_big = estimate_bytes([tuple(probe[k].shape) for k in keys], len(x)) > FEATURE_CACHE_LIMIT
    if online or too_big:
        return None, lambda xb: compute(xb, with_logits=True), ("online: targets would take more than 512 MB" if too_big and not online else "online"), 0.0
    key = teacher_cache.cache_key(teacher, data_fp, "features", tag) if cache else None
    if key is not None:
        hit = teacher_cache.read_entry(key, "features", shapes, label=tag)
        if hit is not None:
            return {k: hit[k].astype(np.float32) for k in keys}, None, "cached", 0.0
    start = time.perf_counter()
    chunks = [compute(tf.constant(x[i : i + 256])) for i in range(0, len(x), 256)]
    elapsed = time.perf_counter() - start
    teacher.inference_seconds += elapsed
    arrays = {k: np.concatenate([c[k].numpy() for c in chunks]).astype(np.float16) for k in keys}
    if key is not None:
        teacher_cache.write_entry(key, "features", arrays, label=tag)
    # Rounded through float16 on every path, so a run from the cache trains exactly like the first one.
    return {k: v.astype(np.float32) for k, v in arrays.items()}, None, "cached", elapsed


def distill_pairs(ctx, student, method: str, pairs: Sequence[Tuple[str, str]], default_beta: float,
                  transform: Optional[Callable], make_term: Callable):
    """Train ``student`` with one feature term per (student layer, teacher layer) pair, as fitnet and at do.

    The teacher's targets are its paired layers' outputs through ``transform`` (keys t0, t1...);
    ``make_term(i, student feature tensor, teacher layer name, beta)`` builds the term of pair ``i``."""
    tm = teacher_model_of(ctx.teacher, method)
    check_pairs(student, tm, pairs)
    ctx.config["feature_layers"] = [list(p) for p in pairs]
    beta = ctx.beta_or(default_beta)
    outputs = {f"t{i}": (tm.get_layer(t_name).output, transform) for i, (_, t_name) in enumerate(pairs)}
    targets, online_fn = ctx.feature_targets(outputs, f"{method}-{'-'.join(t_name for _, t_name in pairs)}")

    def terms(model):
        feats = [find_layer(model, s_name).output for s_name, _ in pairs]
        return [make_term(i, f, t_name, beta) for i, (f, (_, t_name)) in enumerate(zip(feats, pairs))], feats

    return ctx.fit(student, method, targets=targets, online_teacher=online_fn, terms=terms)
