"""A small CIFAR-style ResNet (He et al., 2016): plain 3x3 convolutions with batch norm, ReLU and shortcuts.

For images on CPUs and GPUs (a Jetson, a desktop, a phone's GPU delegate), where dense 3x3 convolutions run
far closer to peak than depthwise ones, and for int8: conv + batch norm + ReLU quantizes with almost no loss.
A 3x3 stem, then ``depth`` stages of one basic block each (two 3x3 convolutions and a shortcut; a strided
1x1 projection where the shape changes). Stage ``s`` has ``16 * 2**s * width`` channels and halves the
feature map after the first. ``resnet:width=1,depth=3`` is the paper's ResNet-8 (78 k parameters).
Every op (CONV_2D, ADD with fused ReLU, MEAN, FULLY_CONNECTED, AVERAGE_POOL_2D) is in TFLite Micro's set.
"""
from __future__ import annotations

from .mobilenetv3 import MIN_SIDE_TO_UPSCALE, resolutions  # noqa: F401  (the same resolution grid)

BASE_CHANNELS = 16
# A multiple of 4 rather than 8: the family is small, and 8-channel steps at 16-32 channels are too coarse
# for a parameter budget to land on.
WIDTHS = tuple(round(0.25 * 1.122 ** k, 3) for k in range(0, 25))
DEPTHS = (1, 2, 3, 4)


def _channels(base: int, width: float) -> int:
    return max(8, int(round(base * width / 4.0)) * 4)


def _basic_block(nn, x, channels: int, stride: int, name: str):
    h = nn.conv(x, channels, 3, stride, name=f"{name}_conv1", activation="relu", bn_momentum=0.9)
    h = nn.conv(h, channels, 3, 1, name=f"{name}_conv2", bn_momentum=0.9)
    shortcut = x
    if stride != 1 or x.shape[-1] != channels:
        shortcut = nn.conv(x, channels, 1, stride, name=f"{name}_proj", bn_momentum=0.9)
    return nn.add(shortcut, h, name=f"{name}_add", activation="relu")


def network(nn, spec, input_shape, num_classes):
    from ..errors import EdgekdError

    if len(input_shape) != 3:
        raise EdgekdError(f"the resnet family takes (height, width, channels) images, not {tuple(input_shape)}", "use dscnn for audio and 1-D signals, mlp for flat features")
    inputs = nn.input(input_shape)
    x = inputs
    side = int(input_shape[0])
    resolution = spec.resolution or side
    if resolution != side:
        if spec.mcu_safe:
            if side % resolution:
                raise EdgekdError(f"an MCU-safe student lowers resolution by whole factors only: {side} -> {resolution} is not one", f"pick a resolution that divides {side}")
            x = nn.avg_pool(x, side // resolution, name="downsample")
        else:
            x = nn.resize(x, resolution, resolution, name="resize")
    x = nn.conv(x, _channels(BASE_CHANNELS, spec.width), 3, 1, name="stem", activation="relu", bn_momentum=0.9)
    size = resolution
    for s in range(spec.depth):
        stride = 2 if s > 0 and size > 2 else 1
        size = (size + stride - 1) // stride
        x = _basic_block(nn, x, _channels(BASE_CHANNELS * 2 ** s, spec.width), stride, f"stage{s}")
    x = nn.global_pool(x, name="pool")
    outputs = nn.dense(x, num_classes, name="logits")
    return nn.model(inputs, outputs, name=f"resnet_w{spec.width:g}_d{spec.depth}")


def build(spec, input_shape, num_classes):
    from .nn import KerasNN

    return network(KerasNN(), spec, input_shape, num_classes)
