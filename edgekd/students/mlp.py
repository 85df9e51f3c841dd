"""A multilayer perceptron for tabular data and tiny inputs: ``depth`` hidden layers of 64*width units."""
from __future__ import annotations

import tf_keras as keras
from tf_keras import layers


def build(spec, input_shape, num_classes):
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs
    units = max(8, int(round(64 * spec.width)))
    for i in range(spec.depth):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"mlp_w{spec.width:g}_d{spec.depth}")
