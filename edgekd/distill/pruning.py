"""Pruning-aware distillation: tfmot's prune_low_magnitude zeroes the smallest weights on a polynomial schedule
while the student distils, and the wrappers are stripped at the end, leaving a plain tf_keras model whose
kernels hold the target share of zeros (which compresses and, on sparse kernels, runs faster).

Only Conv2D and Dense kernels are pruned. Depthwise kernels (9 weights per channel, a sliver of the parameters
but each one a whole filter) stay dense, as do biases and BatchNorm; tfmot 0.8 also leaves its DepthwiseConv2D
wrapper's mask at zero sparsity here.
"""
from __future__ import annotations

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from ..errors import EdgekdError

sparsity = tfmot.sparsity.keras
PRUNED_TYPES = (keras.layers.Conv2D, keras.layers.Dense)


def prune_student(model, target: float, total_steps: int, begin_fraction: float = 0.0, end_fraction: float = 0.75):
    """Wrap the prunable layers; sparsity ramps from 0 to ``target`` between the given fractions of training
    and holds there, so the last quarter of training recovers accuracy at the final sparsity."""
    if not 0.0 < target < 1.0:
        raise EdgekdError(f"target sparsity must be within (0, 1) (got {target})", "e.g. --prune 0.5 zeroes half of each kernel")
    begin = int(total_steps * begin_fraction)
    end = max(begin + 1, int(total_steps * end_fraction))
    schedule = sparsity.PolynomialDecay(initial_sparsity=0.0, final_sparsity=float(target), begin_step=begin, end_step=end, frequency=max(1, (end - begin) // 20))

    def wrap(layer):
        clone = layer.__class__.from_config(layer.get_config())
        if _pruned(layer):
            return sparsity.prune_low_magnitude(clone, pruning_schedule=schedule)
        return clone

    wrapped = keras.models.clone_model(model, clone_function=wrap)
    # The wrappers add mask and threshold variables, so weights are copied layer by layer, into the inner layer.
    for layer in model.layers:
        if not layer.weights:
            continue
        target = wrapped.get_layer(f"prune_low_magnitude_{layer.name}") if _pruned(layer) else wrapped.get_layer(layer.name)
        (target.layer if hasattr(target, "pruning_vars") else target).set_weights(layer.get_weights())
    return wrapped


def _pruned(layer) -> bool:
    # DepthwiseConv2D subclasses Conv2D in tf_keras: exclude it explicitly.
    return isinstance(layer, PRUNED_TYPES) and not isinstance(layer, keras.layers.DepthwiseConv2D)


def callbacks():
    return [sparsity.UpdatePruningStep()]


def strip(model):
    return sparsity.strip_pruning(model)


def kernel_sparsity(model) -> float:
    """Share of zeros over the kernels of the prunable layers."""
    zeros = total = 0
    for layer in model.layers:
        if _pruned(layer):
            k = layer.get_weights()[0]
            zeros += int(np.sum(k == 0))
            total += k.size
    return zeros / total if total else 0.0
