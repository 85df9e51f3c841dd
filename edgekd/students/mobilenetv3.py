"""A MobileNetV3-style image classifier: inverted residuals, hard-swish, optional squeeze-excite.

Hard-swish is written as x * relu6(x + 3) / 6 so the TFLite converter fuses it into HARD_SWISH,
an op TFLite Micro also runs. The MCU-safe variant drops squeeze-excite and lowers the input resolution
with average pooling (AVERAGE_POOL_2D) instead of a bilinear resize, so every op is in TFLite Micro's set.
"""
from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

# (expansion, base output channels, stride, squeeze-excite) for up to six blocks.
BLOCKS = [(1, 16, 1, False), (4, 24, 2, False), (3, 24, 1, True), (3, 40, 2, True), (3, 40, 1, True), (6, 80, 2, True)]
STEM_CHANNELS = 16
# Small data sets give few steps per epoch: a shorter moving-average horizon lets the inference
# statistics catch up with the weights.
BN_MOMENTUM = 0.9

# The sizing search grid. Widths step by ~12% so that the largest fitting candidate lands close to a
# binding budget (MACs grow with width squared: one step is ~25% more compute). Width stops at 4x: past
# that, "most MACs" would buy absurdly wide two-block nets; a device with compute to spare gets a higher
# input resolution instead (EfficientNet-style), as MobileNets do at 128-224 px.
WIDTHS = tuple(round(0.25 * 1.122 ** k, 3) for k in range(0, 25))
DEPTHS = (2, 3, 4, 5, 6)
DOWN_SCALES = (0.75, 0.5)
UP_SCALES = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0)
# Upscaling tiny inputs (8x8 digits) adds compute without information; only images of 16 px and up.
MIN_SIDE_TO_UPSCALE = 16


@keras.utils.register_keras_serializable(package="edgekd")
class HardSwish(layers.Layer):
    def call(self, x):
        return x * keras.activations.relu(x + 3.0, max_value=6.0) / 6.0


def _channels(base: int, width: float) -> int:
    return max(8, int(round(base * width / 8.0)) * 8)


def resolutions(input_shape, mcu_safe: bool):
    """Input resolutions the search tries: the data's own, smaller ones, and for images larger ones.

    The MCU-safe variant only divides by whole factors (average pooling) and never upscales; the
    others resize bilinearly inside the model.
    """
    if len(input_shape) != 3:
        return [None]
    side = int(input_shape[0])
    scales = DOWN_SCALES if mcu_safe or side < MIN_SIDE_TO_UPSCALE else DOWN_SCALES + UP_SCALES
    out = [None]
    for scale in scales:
        r = int(round(side * scale))
        if mcu_safe and side % r:
            continue
        if r >= 8 and r != side and r not in out:
            out.append(r)
    return out


def to_resolution(nn, x, spec, side: int):
    """The image at the spec's resolution, and that resolution: average pooling by a whole factor on an
    MCU-safe student (TFLite Micro has no resize), else a bilinear resize inside the model."""
    resolution = spec.resolution or side
    if resolution != side:
        if spec.mcu_safe:
            if side % resolution:
                from ..errors import EdgekdError

                raise EdgekdError(f"an MCU-safe student lowers resolution by whole factors only: {side} -> {resolution} is not one", f"pick a resolution that divides {side}")
            x = nn.avg_pool(x, side // resolution, name="downsample")
        else:
            x = nn.resize(x, resolution, resolution, name="resize")
    return x, resolution


def _squeeze_excite(nn, x, channels: int):
    s = nn.global_pool(x, keepdims=True)
    s = nn.conv(s, max(8, channels // 4), 1, bn=False, activation="relu")
    s = nn.conv(s, channels, 1, bn=False, activation="hard_sigmoid")
    return nn.multiply(x, s)


def _block(nn, x, expansion, out_ch, stride, use_se, name):
    in_ch = x.shape[-1]
    h = x
    if expansion != 1:
        h = nn.conv(h, in_ch * expansion, 1, name=f"{name}_expand", bn_momentum=BN_MOMENTUM)
        h = nn.hard_swish(h, name=f"{name}_expand_hs")
    h = nn.dwconv(h, 3, stride, name=f"{name}_dw", bn_momentum=BN_MOMENTUM)
    h = nn.hard_swish(h, name=f"{name}_dw_hs")
    if use_se:
        h = _squeeze_excite(nn, h, h.shape[-1])
    h = nn.conv(h, out_ch, 1, name=f"{name}_project", bn_momentum=BN_MOMENTUM)
    if stride == 1 and in_ch == out_ch:
        h = nn.add(x, h, name=f"{name}_add")
    return h


def network(nn, spec, input_shape, num_classes):
    inputs = nn.input(input_shape)
    x, resolution = to_resolution(nn, inputs, spec, int(input_shape[0]))
    x = nn.conv(x, _channels(STEM_CHANNELS, spec.width), 3, 1 if resolution <= 32 else 2, name="stem", bn_momentum=BN_MOMENTUM)
    x = nn.hard_swish(x, name="stem_hs")
    size = resolution if resolution <= 32 else (resolution + 1) // 2
    for i, (expansion, base, stride, use_se) in enumerate(BLOCKS[: spec.depth]):
        # Never shrink the feature map below 2x2: tiny inputs (8x8 digits) keep some spatial detail.
        if stride == 2 and size <= 2:
            stride = 1
        size = (size + stride - 1) // stride
        x = _block(nn, x, expansion, _channels(base, spec.width), stride, use_se and not spec.mcu_safe, f"block{i}")
    x = nn.global_pool(x, name="pool")
    outputs = nn.dense(x, num_classes, name="logits")
    return nn.model(inputs, outputs, name=f"mobilenetv3_w{spec.width:g}_d{spec.depth}")


def build(spec, input_shape, num_classes):
    from .nn import KerasNN

    return network(KerasNN(), spec, input_shape, num_classes)
