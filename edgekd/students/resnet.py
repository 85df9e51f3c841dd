"""A ResNet-9-style image classifier (the DAWNBench CIFAR-10 shape): plain 3x3 convolutions, batch norm,
ReLU, max pooling and two residual blocks.

For images where dense convolutions run close to peak (GPUs such as a Jetson's, desktop CPUs) and for
int8: conv + batch norm + ReLU quantizes with little loss. Early max pooling keeps the compute of a wide
first stage low, which is what lets this shape train to high CIFAR-10 accuracy in few epochs.

``depth`` takes 1-3 stages: a 3x3 "prep" convolution, then stage 1 (conv, max pool, residual block),
stage 2 (conv, max pool), stage 3 (conv, max pool, residual block), then global average pooling and a
dense classifier. ``width`` scales 16/32/64/128 channels. Every op (CONV_2D, MAX_POOL_2D, ADD, MEAN,
FULLY_CONNECTED, AVERAGE_POOL_2D) is in TFLite Micro's set.
"""
from __future__ import annotations

from .mobilenetv3 import resolutions, to_resolution  # noqa: F401  (the same input-resolution grid)

CHANNELS = (16, 32, 64, 128)  # prep, stage 1, stage 2, stage 3 at width 1
WIDTHS = tuple(round(0.25 * 1.122 ** k, 3) for k in range(0, 25))
DEPTHS = (1, 2, 3)
BN_MOMENTUM = 0.9


def _channels(base: int, width: float) -> int:
    # Multiples of 4 (rounded half up), not 8: at 8-24 channels, steps of 8 are too coarse for a budget.
    return max(4, int(base * width / 4.0 + 0.5) * 4)


def _cbr(nn, x, channels, name):
    return nn.conv(x, channels, 3, 1, name=name, activation="relu", bn_momentum=BN_MOMENTUM)


def network(nn, spec, input_shape, num_classes):
    from ..errors import EdgekdError

    if len(input_shape) != 3:
        raise EdgekdError(f"the resnet family takes (height, width, channels) images, not {tuple(input_shape)}", "use dscnn for audio and 1-D signals, mlp for flat features")
    if spec.depth > max(DEPTHS):
        raise EdgekdError(f"the resnet family has at most {max(DEPTHS)} stages (got depth={spec.depth})", "widen it instead: raise width")
    inputs = nn.input(input_shape)
    x, resolution = to_resolution(nn, inputs, spec, int(input_shape[0]))
    c = [_channels(base, spec.width) for base in CHANNELS]
    x = _cbr(nn, x, c[0], "prep")
    size = resolution
    for s in range(1, spec.depth + 1):
        x = _cbr(nn, x, c[s], f"stage{s}_conv")
        if size >= 4:  # never pool below 2x2: tiny inputs (8x8 digits) keep some spatial detail
            x = nn.max_pool(x, 2, name=f"stage{s}_pool")
            size //= 2
        if s != 2:
            h = _cbr(nn, _cbr(nn, x, c[s], f"stage{s}_res1"), c[s], f"stage{s}_res2")
            x = nn.add(x, h, name=f"stage{s}_add")
    x = nn.global_pool(x, name="pool")
    outputs = nn.dense(x, num_classes, name="logits")
    return nn.model(inputs, outputs, name=f"resnet_w{spec.width:g}_d{spec.depth}")


def build(spec, input_shape, num_classes):
    from .nn import KerasNN

    return network(KerasNN(), spec, input_shape, num_classes)
