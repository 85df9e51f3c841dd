"""TFLite's quantization set-up arithmetic, reproduced in Python so the generated C carries the very multipliers,
shifts and clamps that tflite-micro's Prepare functions compute on the device.

Bit-exactness depends on matching the precision of each step: TFLite computes some products in double (conv's
per-channel scales) and some in float (the fully-connected per-tensor product, hard-swish's multipliers, the
activation clamps); ``f32`` rounds a value to float32 exactly as C does.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def f32(value) -> float:
    """``value`` rounded to float32, returned as the Python float (a double) that holds it exactly."""
    return float(np.float32(value))


def round_away(value: float) -> int:
    """std::round: halves away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_multiplier(real: float) -> Tuple[int, int]:
    """TFLite's QuantizeMultiplier: ``real`` ~= m * 2^(shift - 31) with m a Q31 significand in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return int(q_fixed), int(shift)


def downscale_to_int16(m32: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (m32 + (1 << 15)) >> 16


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """CalculateInputRadius: the largest input (in quantized steps) whose rescaled value stays representable."""
    rescaled = 1.0 * ((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits)) / (1 << left_shift)
    return int(math.floor(rescaled))


def activation_range(activation: Optional[str], scale: float, zero_point: int) -> Tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs (the clamp a fused activation becomes)."""
    def q(value: float) -> int:
        return zero_point + int(round_away(f32(np.float32(value) / np.float32(scale))))

    if activation is None:
        return INT8_MIN, INT8_MAX
    if activation == "RELU":
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if activation == "RELU6":
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(INT8_MIN, q(-1.0)), min(INT8_MAX, q(1.0))
    raise ValueError(activation)


def float_to_int8(value: float, scale: float, zero_point: int) -> int:
    """FloatToQuantizedType<int8_t>: round(value / scale) + zero_point, clamped."""
    r = round_away(f32(np.float32(value) / np.float32(scale))) + zero_point
    return max(INT8_MIN, min(INT8_MAX, r))


def conv_multipliers(input_scale: float, filter_scales, output_scale: float, channels: int):
    """PopulateConvolutionQuantizationParams: per output channel, in double."""
    mults, shifts = [], []
    scales = list(filter_scales)
    for c in range(channels):
        fs = scales[c] if len(scales) > 1 else scales[0]
        m, s = quantize_multiplier(input_scale * fs / output_scale)
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def fc_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> Tuple[int, int]:
    """GetQuantizedConvolutionMultipler (per-tensor fully connected): the input*filter product in float."""
    product = f32(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / output_scale)


def add_params(s1: float, s2: float, so: float):
    """The ADD rescaling (left shift 20 for int8): both inputs onto twice the larger scale, then onto the output."""
    left_shift = 20
    twice_max = 2 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    return left_shift, (m1, sh1), (m2, sh2), (mo, sho)


def hard_swish_params(in_scale: float, out_scale: float):
    """HardSwishPrepare: (reluish m16, reluish exponent, output m16, output exponent), the ratios in float."""
    hires = np.float32(1.0 / 128.0) * np.float32(in_scale)
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    out_m, out_e = quantize_multiplier(f32(hires / np.float32(out_scale)))
    rel_m, rel_e = quantize_multiplier(f32(hires / reluish_scale))
    return downscale_to_int16(rel_m), rel_e, downscale_to_int16(out_m), out_e


def logistic_params(in_scale: float):
    """CalculateArithmeticOpDataLogistic for int8: (multiplier, left shift, input range radius)."""
    real = in_scale * (1 << (31 - 4))
    q, left_shift = math.frexp(real)
    mult = round_away(q * (1 << 31))
    return int(mult), int(left_shift), input_radius(4, left_shift, 31)


def softmax_params(beta: float, in_scale: float):
    """PreprocessSoftmaxScaling (5 integer bits for the scaled difference): (multiplier, left shift, diff_min)."""
    real = min(beta * in_scale * (1 << (31 - 5)), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    diff_min = int(-1.0 * input_radius(5, shift, 31))
    return mult, shift, diff_min


def mean_multiplier(in_scale: float, out_scale: float, count: int) -> Tuple[int, int]:
    """QuantizedMeanOrSum's rescale with 1/count folded into the multiplier (shift capped at 32 and at 31 + shift)."""
    mult, shift = quantize_multiplier(in_scale / out_scale)
    n = min(count.bit_length() - 1, 32, 31 + shift)
    return int(((mult << n) // count) if count > 0 else mult), shift - n


def _int16(v: int) -> int:
    return ((v + 32768) & 0xFFFF) - 32768


def _tdiv(a: int, b: int) -> int:
    """C's integer division (towards zero)."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _srdhm16(a: int, b: int) -> int:
    if a == b == -32768:
        return 32767
    ab = a * b
    return _int16(_tdiv(ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14)), 1 << 15))


def _rdbpot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    return (x >> exponent) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


def _sat_left16(v: int, amount: int) -> int:
    return max(-32768, min(32767, v * (1 << amount)))


def hard_swish_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> List[int]:
    """HARD_SWISH's int8 output for each of the 256 inputs (index: the input byte as unsigned), computed with the
    reference kernel's 16-bit fixed point step by step (the C kernel edgekd_hard_swish_s8 computes the same)."""
    rel_m, rel_e, out_m, out_e = hard_swish_params(in_scale, out_scale)
    table = [0] * 256
    for q in range(-128, 128):
        hires = _int16(_int16(q - in_zp) * 128)
        preshift = _srdhm16(hires, out_m)
        rel = hires
        if rel_e > 0:
            rel = _sat_left16(rel, rel_e - 1)
        rel = _srdhm16(rel, rel_m)
        if rel_e > 0:
            rel = _sat_left16(rel, 1)
        if rel_e < 0:
            rel = _rdbpot(rel, -rel_e)
        rel = _int16((rel + (1 << 15)) >> 1)
        prod = 32767 if rel == preshift == -32768 else _int16(_tdiv(rel * preshift, 1 << 15))
        out = _int16(_rdbpot(prod, -out_e) + out_zp)
        table[q & 0xFF] = max(-128, min(127, out))
    return table
