"""A multilayer perceptron for tabular data and tiny inputs: ``depth`` hidden layers of 64*width units."""
from __future__ import annotations

WIDTHS = tuple(round(0.125 * 1.122 ** k, 3) for k in range(0, 48))
DEPTHS = (1, 2, 3, 4, 5, 6)


def resolutions(input_shape, mcu_safe: bool):
    return [None]  # tabular features have no resolution to lower


def network(nn, spec, input_shape, num_classes):
    inputs = nn.input(input_shape)
    x = nn.flatten(inputs, name="flatten") if len(input_shape) > 1 else inputs
    units = max(8, int(round(64 * spec.width)))
    for i in range(spec.depth):
        x = nn.dense(x, units, activation="relu", name=f"dense{i}")
    outputs = nn.dense(x, num_classes, name="logits")
    return nn.model(inputs, outputs, name=f"mlp_w{spec.width:g}_d{spec.depth}")


def build(spec, input_shape, num_classes):
    from .nn import KerasNN

    return network(KerasNN(), spec, input_shape, num_classes)
