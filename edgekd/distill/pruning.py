"""Magnitude pruning, the one wrapper edgekd uses: tfmot's prune_low_magnitude zeroes the smallest weights on a
polynomial schedule while the model trains (a student distilling, or the teacher `edgekd compare` fine-tunes), and
the wrappers are stripped at the end, leaving a plain tf_keras model whose kernels hold the target share of zeros
(which compresses and, on sparse kernels, runs faster).

Only Conv2D and Dense kernels are pruned. Depthwise kernels (9 weights per channel, a sliver of the parameters
but each one a whole filter) stay dense, as do biases and BatchNorm; tfmot 0.8 also leaves its DepthwiseConv2D
wrapper's mask at zero sparsity here.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from ..errors import EdgekdError

sparsity = tfmot.sparsity.keras


def prune_model(model, target: float, total_steps: int, end_fraction: float = 0.75, frequency: Optional[int] = None):
    """A copy of ``model`` with its prunable layers wrapped (weights carried over). Sparsity ramps from 0 to
    ``target`` over the first ``end_fraction`` of ``total_steps`` and holds there, so the remaining steps recover
    accuracy at the final sparsity; the masks update every ``frequency`` steps (default: 20 times over the ramp)."""
    if not 0.0 < target < 1.0:
        raise EdgekdError(f"target sparsity must be within (0, 1) (got {target})", "e.g. --prune 0.5 zeroes half of each kernel")
    end = max(1, int(total_steps * end_fraction))
    schedule = sparsity.PolynomialDecay(initial_sparsity=0.0, final_sparsity=float(target), begin_step=0, end_step=end,
                                        frequency=frequency if frequency is not None else max(1, end // 20))

    def wrap(layer):
        clone = layer.__class__.from_config(layer.get_config())
        if prunable(layer):
            return sparsity.prune_low_magnitude(clone, pruning_schedule=schedule)
        return clone

    wrapped = keras.models.clone_model(model, clone_function=wrap)
    # The wrappers add mask and threshold variables, so weights are copied layer by layer, into the inner layer.
    for layer in model.layers:
        if not layer.weights:
            continue
        inner = wrapped.get_layer(f"prune_low_magnitude_{layer.name}") if prunable(layer) else wrapped.get_layer(layer.name)
        (inner.layer if hasattr(inner, "pruning_vars") else inner).set_weights(layer.get_weights())
    return wrapped


def prunable(layer) -> bool:
    """A Conv2D or Dense layer (or a subclass), told by class names so that Keras 3 models count too."""
    # DepthwiseConv2D subclasses Conv2D in tf_keras: excluded explicitly.
    names = {cls.__name__ for cls in type(layer).__mro__}
    return bool(names & {"Conv2D", "Dense"}) and "DepthwiseConv2D" not in names


def callbacks():
    return [sparsity.UpdatePruningStep()]


def strip(model):
    return sparsity.strip_pruning(model)


def kernel_sparsity(model) -> float:
    """Share of exact zeros over the kernels of the prunable layers: what "X% sparse" means in every edgekd record.

    Counted over the kernels pruning touches, and only those, so a model pruned to 50% reads 50%: counting the
    depthwise kernels (always left dense), biases or normalization would report less than the pruning did, by an
    amount that depends on the architecture rather than on the pruning."""
    zeros = total = 0
    for layer in model.layers:
        if prunable(layer):
            k = layer.get_weights()[0]
            zeros += int(np.sum(k == 0))
            total += k.size
    return zeros / total if total else 0.0
