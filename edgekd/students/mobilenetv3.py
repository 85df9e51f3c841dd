"""A MobileNetV3-style image classifier: inverted residuals, hard-swish, optional squeeze-excite.

Hard-swish is written as x * relu6(x + 3) / 6 so the TFLite converter fuses it into HARD_SWISH,
an op TFLite Micro also runs.
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


@keras.utils.register_keras_serializable(package="edgekd")
class HardSwish(layers.Layer):
    def call(self, x):
        return x * keras.activations.relu(x + 3.0, max_value=6.0) / 6.0


def _channels(base: int, width: float) -> int:
    return max(8, int(round(base * width / 8.0)) * 8)


def _squeeze_excite(x, channels: int):
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Conv2D(max(8, channels // 4), 1, activation="relu")(s)
    s = layers.Conv2D(channels, 1, activation="hard_sigmoid")(s)
    return layers.Multiply()([x, s])


def _block(x, expansion, out_ch, stride, use_se, name):
    in_ch = x.shape[-1]
    h = x
    if expansion != 1:
        h = layers.Conv2D(in_ch * expansion, 1, use_bias=False, name=f"{name}_expand")(h)
        h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_expand_bn")(h)
        h = HardSwish(name=f"{name}_expand_hs")(h)
    h = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(h)
    h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(h)
    h = HardSwish(name=f"{name}_dw_hs")(h)
    if use_se:
        h = _squeeze_excite(h, h.shape[-1])
    h = layers.Conv2D(out_ch, 1, use_bias=False, name=f"{name}_project")(h)
    h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_project_bn")(h)
    if stride == 1 and in_ch == out_ch:
        h = layers.Add(name=f"{name}_add")([x, h])
    return h


def build(spec, input_shape, num_classes):
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    if spec.resolution and spec.resolution != input_shape[0]:
        x = layers.Resizing(spec.resolution, spec.resolution, name="resize")(x)
    resolution = spec.resolution or input_shape[0]
    x = layers.Conv2D(_channels(STEM_CHANNELS, spec.width), 3, strides=1 if resolution <= 32 else 2, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = HardSwish(name="stem_hs")(x)
    size = resolution if resolution <= 32 else resolution // 2
    for i, (expansion, base, stride, use_se) in enumerate(BLOCKS[: spec.depth]):
        # Never shrink the feature map below 2x2: tiny inputs (8x8 digits) keep some spatial detail.
        if stride == 2 and size <= 2:
            stride = 1
        size = (size + stride - 1) // stride
        x = _block(x, expansion, _channels(base, spec.width), stride, use_se and not spec.mcu_safe, f"block{i}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"mobilenetv3_w{spec.width:g}_d{spec.depth}")
