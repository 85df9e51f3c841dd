"""DS-CNN (Zhang et al., "Hello Edge", 2017) for audio features and 1-D signals.

A strided 10x4 convolution, then ``depth`` depthwise-separable blocks (3x3 depthwise + 1x1 pointwise,
batch norm and ReLU after each), global average pooling and a dense classifier. ``width`` scales the
64 base filters. Inputs are (time, features, channels), e.g. 49x10x1 MFCCs for keyword spotting, or
(time, channels) for a 1-D signal such as an accelerometer trace, which is viewed as (time, 1, channels).
``resolution`` is the number of time steps the network sees: the input is average-pooled along time
by a whole factor. Every op (CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MEAN, FULLY_CONNECTED, RESHAPE)
is in TFLite Micro's set, so the family is MCU-safe as it is.
"""
from __future__ import annotations

BASE_FILTERS = 64
# Up to ~4.4x: the paper's DS-CNN-L has 276 filters; wider buys little for 10 MFCC bands.
WIDTHS = tuple(round(0.125 * 1.122 ** k, 3) for k in range(0, 32))
DEPTHS = (1, 2, 3, 4, 5, 6)


def _filters(width: float) -> int:
    return max(8, int(round(BASE_FILTERS * width / 8.0)) * 8)


def _as_2d(input_shape):
    if len(input_shape) == 2:
        return (int(input_shape[0]), 1, int(input_shape[1]))
    if len(input_shape) == 3:
        return tuple(int(v) for v in input_shape)
    from ..errors import EdgekdError

    raise EdgekdError(f"DS-CNN takes (time, features, channels) or (time, channels) inputs, not {tuple(input_shape)}", "use the mlp family for flat feature vectors")


def resolutions(input_shape, mcu_safe: bool):
    steps = _as_2d(input_shape)[0]
    return [None] + [steps // f for f in (2, 4) if steps % f == 0 and steps // f >= 8]


def network(nn, spec, input_shape, num_classes):
    steps, feats, chans = _as_2d(input_shape)
    inputs = nn.input(input_shape)
    x = inputs if len(input_shape) == 3 else nn.reshape(inputs, (steps, 1, chans), name="as_2d")
    resolution = spec.resolution or steps
    if resolution != steps:
        if steps % resolution:
            from ..errors import EdgekdError

            raise EdgekdError(f"DS-CNN lowers the time resolution by whole factors only: {steps} -> {resolution} is not one", f"pick a resolution that divides {steps}")
        x = nn.avg_pool(x, (steps // resolution, 1), name="downsample")
    filters = _filters(spec.width)
    # The paper's 10x4 stem (time x frequency), narrowed to what the input has.
    kernel = (min(10, resolution), min(4, feats))
    x = nn.conv(x, filters, kernel, (2, 2 if feats > 1 else 1), name="stem", activation="relu")
    for i in range(spec.depth):
        x = nn.dwconv(x, 3 if feats > 1 else (3, 1), name=f"block{i}_dw", activation="relu")
        x = nn.conv(x, filters, 1, name=f"block{i}_pw", activation="relu")
    x = nn.global_pool(x, name="pool")
    outputs = nn.dense(x, num_classes, name="logits")
    return nn.model(inputs, outputs, name=f"dscnn_w{spec.width:g}_d{spec.depth}")


def build(spec, input_shape, num_classes):
    from .nn import KerasNN

    return network(KerasNN(), spec, input_shape, num_classes)
