"""Each TFLite operator lowered to one kernel call: its parameters computed here (as tflite-micro's Prepare would on
the device), its weights and biases as constant arrays, and what the planner may do with its buffers (alias a
reshape, run an element-wise op in place).

An op the C engine has no kernel for, a float model and a tensor type other than int8 are refused here with a
ConversionError naming the op and the way out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ConversionError
from . import quant
from .graph import Graph, Op, Tensor

ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "MINIMUM", "MAXIMUM", "AVERAGE_POOL_2D",
             "MAX_POOL_2D", "MEAN", "PAD", "PADV2", "SOFTMAX", "HARD_SWISH", "RELU", "RELU6", "LOGISTIC", "QUANTIZE",
             "CONCATENATION") + ALIAS_OPS
# The kernel source each op needs (copied beside the generated model).
KERNEL_FILES = {
    "CONV_2D": "edgekd_conv.c", "DEPTHWISE_CONV_2D": "edgekd_conv.c", "FULLY_CONNECTED": "edgekd_conv.c",
    "ADD": "edgekd_elementwise.c", "MUL": "edgekd_elementwise.c", "MINIMUM": "edgekd_elementwise.c",
    "MAXIMUM": "edgekd_elementwise.c", "RELU": "edgekd_elementwise.c", "RELU6": "edgekd_elementwise.c",
    "HARD_SWISH": "edgekd_elementwise.c", "LOGISTIC": "edgekd_elementwise.c", "QUANTIZE": "edgekd_elementwise.c",
    "AVERAGE_POOL_2D": "edgekd_reduce.c", "MAX_POOL_2D": "edgekd_reduce.c", "MEAN": "edgekd_reduce.c",
    "PAD": "edgekd_reduce.c", "PADV2": "edgekd_reduce.c", "CONCATENATION": "edgekd_reduce.c",
    "SOFTMAX": "edgekd_elementwise.c",
}
WAY_OUT = ("choose a student family whose ops it compiles (e.g. mobilenetv3 with mcu_safe=1, dscnn, mlp), "
           "or ship the TFLite Micro artifact (tflm-int8) alone")


@dataclass
class Const:
    name: str
    ctype: str  # int8_t / int32_t
    values: np.ndarray


@dataclass
class Step:
    op: Op
    call: str  # a C statement; {in0}, {in1}.. are activation inputs, {out} the output
    inputs: List[int]  # activation tensors, in placeholder order
    output: int
    consts: List[Const] = field(default_factory=list)
    params: Optional[Tuple[str, str, Dict[str, object]]] = None  # (struct type, name, fields)
    inplace: Tuple[int, ...] = ()  # input positions whose buffer the output may reuse
    alias: bool = False
    macs: int = 0
    # Ops that read their input and write their output row by row, in order: (output rows, output row bytes, input
    # row bytes, stride, top padding). The planner may then let the output start below the input and overlap it.
    rows: Optional[Tuple[int, int, int, int, int]] = None


def _act(graph: Graph, op: Op) -> Tuple[int, int]:
    out = graph.t(op.outputs[0])
    act = op.options.get("activation")
    if act not in (None, "RELU", "RELU6", "RELU_N1_TO_1"):
        raise ConversionError(f"the C engine has no fused activation {act} (op {op.name})", WAY_OUT)
    return quant.activation_range(act, out.s, out.zp)


def _check_int8(t: Tensor, op: Op) -> None:
    if np.dtype(t.dtype) != np.int8 or t.scale is None:
        raise ConversionError(f"op {op.name} works on a {np.dtype(t.dtype).name if t.dtype else 'unknown'} tensor ({t.name}); the C engine compiles int8 models only",
                              "convert the student to full int8 (tflite-int8 with int8 inputs and outputs), as the tflm-int8 artifact is")


def _padding(in_size: int, k: int, stride: int, dil: int, out_size: int, padding: str) -> int:
    """ComputePaddingWithOffset: the top/left padding (the reference kernels take no other)."""
    eff = (k - 1) * dil + 1
    expected = (in_size + stride - 1) // stride if padding == "SAME" else (in_size + stride - eff) // stride
    if expected != out_size:
        raise ConversionError(f"output size {out_size} does not follow from input {in_size}, kernel {k}, stride {stride} ({padding})")
    return max(0, (out_size - 1) * stride + eff - in_size) // 2


def _nhwc(t: Tensor, op: Op) -> List[int]:
    if len(t.shape) != 4 or t.shape[0] != 1:
        raise ConversionError(f"op {op.name} on a tensor of shape {t.shape}: the C engine runs batch 1, NHWC", "convert with a fixed batch of 1 (edgekd's converters do)")
    return t.shape


def _i32(values, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64)
    if values.size and (values.max() > 2**31 - 1 or values.min() < -(2**31)):
        raise ConversionError(f"{what} overflows int32")
    return values.astype(np.int32)


def _conv(graph: Graph, op: Op, k: str, depthwise: bool) -> Step:
    x, w, out = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    _, ih, iw, ic = _nhwc(x, op)
    _, oh, ow, oc = _nhwc(out, op)
    kh, kw = w.shape[1], w.shape[2]
    if w.data is None or np.dtype(w.dtype) != np.int8 or np.any(w.zero_point != 0):
        raise ConversionError(f"{op.name} needs constant int8 weights with zero point 0 (symmetric)", WAY_OUT)
    bias = graph.t(op.inputs[2]).data.astype(np.int64) if len(op.inputs) > 2 and op.inputs[2] >= 0 else np.zeros(oc, np.int64)
    o = op.options
    sh, sw, dh, dw = o.get("stride_h", 1), o.get("stride_w", 1), o.get("dilation_h", 1), o.get("dilation_w", 1)
    pad_h = _padding(ih, kh, sh, dh, oh, o["padding"])
    pad_w = _padding(iw, kw, sw, dw, ow, o["padding"])
    mults, shifts = quant.conv_multipliers(x.s, [float(v) for v in w.scale], out.s, oc)
    lo, hi = _act(graph, op)
    wdata = w.data.astype(np.int64)
    if depthwise:
        if oc % ic:
            raise ConversionError(f"depthwise output channels {oc} are not a multiple of the input's {ic}")
        filt = w.data.reshape(kh * kw * oc)
        wsum = wdata.reshape(kh * kw, oc).sum(axis=0)
        macs = oh * ow * oc * kh * kw
    else:
        filt = w.data.reshape(-1)
        wsum = wdata.reshape(oc, -1).sum(axis=1)
        macs = oh * ow * oc * kh * kw * ic
    in_offset = -x.zp
    consts = [Const(f"{k}_w", "int8_t", filt), Const(f"{k}_b", "int32_t", _i32(bias, "bias")),
              Const(f"{k}_fb", "int32_t", _i32(bias + in_offset * wsum, "folded bias")),
              Const(f"{k}_m", "int32_t", _i32(mults, "multiplier")), Const(f"{k}_s", "int8_t", np.array(shifts, np.int8))]
    fields = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                  dil_h=dh, dil_w=dw, pad_h=pad_h, pad_w=pad_w, in_offset=in_offset, out_offset=out.zp, act_min=lo,
                  act_max=hi, filter=f"{k}_w", bias=f"{k}_b", folded_bias=f"{k}_fb", mult=f"{k}_m", shift=f"{k}_s")
    fn = "edgekd_dwconv2d_s8" if depthwise else "edgekd_conv2d_s8"
    return Step(op, f"{fn}({{in0}}, {{out}}, &{k});", [op.inputs[0]], op.outputs[0], consts, ("edgekd_conv_params", k, fields), macs=macs,
                rows=(oh, ow * oc, iw * ic, sh, pad_h))


def _fc(graph: Graph, op: Op, k: str) -> Step:
    x, w, out = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    if w.data is None or np.dtype(w.dtype) != np.int8 or len(w.shape) != 2 or np.any(w.zero_point != 0):
        raise ConversionError("FULLY_CONNECTED needs constant int8 weights [units, depth] with zero point 0", WAY_OUT)
    units, depth = w.shape
    if x.size % depth:
        raise ConversionError(f"FULLY_CONNECTED input of {x.size} values does not divide into rows of {depth}")
    rows = x.size // depth
    bias = graph.t(op.inputs[2]).data.astype(np.int64) if len(op.inputs) > 2 and op.inputs[2] >= 0 else np.zeros(units, np.int64)
    per_channel = len(w.scale) > 1
    if per_channel:
        mults, shifts = quant.conv_multipliers(x.s, [float(v) for v in w.scale], out.s, units)
    else:
        m, s = quant.fc_multiplier(x.s, w.s, out.s)
        mults, shifts = [m], [s]
    lo, hi = _act(graph, op)
    folded = bias + (-x.zp) * w.data.astype(np.int64).sum(axis=1)
    consts = [Const(f"{k}_w", "int8_t", w.data.reshape(-1)), Const(f"{k}_fb", "int32_t", _i32(folded, "folded bias")),
              Const(f"{k}_m", "int32_t", _i32(mults, "multiplier")), Const(f"{k}_s", "int8_t", np.array(shifts, np.int8))]
    fields = dict(rows=rows, depth=depth, units=units, per_channel=int(per_channel), out_offset=out.zp, act_min=lo, act_max=hi,
                  filter=f"{k}_w", folded_bias=f"{k}_fb", mult=f"{k}_m", shift=f"{k}_s")
    return Step(op, f"edgekd_fc_s8({{in0}}, {{out}}, &{k});", [op.inputs[0]], op.outputs[0], consts, ("edgekd_fc_params", k, fields), macs=rows * units * depth)


def _bcast(a: Tensor, b: Tensor, out: Tensor, op: Op) -> Dict[str, object]:
    if len(out.shape) > 4:
        raise ConversionError(f"{op.name} on {len(out.shape)}-D tensors: the C engine broadcasts up to 4-D")
    dims = [1] * (4 - len(out.shape)) + list(out.shape)

    def strides(t: Tensor):
        shape = [1] * (4 - len(t.shape)) + list(t.shape)
        st, acc = [0] * 4, 1
        for i in range(3, -1, -1):
            st[i] = 0 if shape[i] == 1 and dims[i] != 1 else acc
            acc *= shape[i]
        return st

    flat = a.size == out.size and b.size == out.size
    return dict(flat=int(flat), size=out.size, dims=dims, s1=strides(a), s2=strides(b))


def _binary(graph: Graph, op: Op, k: str, consts: List[Const], names: List[str]) -> Step:
    a, b, out = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    bc = _bcast(a, b, out, op)
    inplace = tuple(i for i, t in enumerate((a, b)) if t.size == out.size and t.data is None)
    if op.name == "ADD":
        shift, (m1, s1), (m2, s2), (mo, so) = quant.add_params(a.s, b.s, out.s)
        lo, hi = _act(graph, op)
        fields = dict(b=bc, in1_offset=-a.zp, in2_offset=-b.zp, out_offset=out.zp, left_shift=shift, in1_mult=m1, in1_shift=s1,
                      in2_mult=m2, in2_shift=s2, out_mult=mo, out_shift=so, act_min=lo, act_max=hi)
        params = ("edgekd_add_params", k, fields)
        fn = "edgekd_add_s8"
    elif op.name == "MUL":
        mo, so = quant.quantize_multiplier(a.s * b.s / out.s)
        lo, hi = _act(graph, op)
        fields = dict(b=bc, in1_offset=-a.zp, in2_offset=-b.zp, out_offset=out.zp, out_mult=mo, out_shift=so, act_min=lo, act_max=hi)
        params = ("edgekd_mul_params", k, fields)
        fn = "edgekd_mul_s8"
    else:  # MINIMUM / MAXIMUM compare the raw values (tflite-micro requires one quantization for all three)
        params = ("edgekd_bcast", k, bc)
        fn = "edgekd_min_s8" if op.name == "MINIMUM" else "edgekd_max_s8"
    act_inputs = [op.inputs[i] for i in range(2) if graph.t(op.inputs[i]).data is None]
    # Activation inputs are placeholders; constant inputs are arrays of their own.
    placeholders = [names[i] or "{in%d}" % act_inputs.index(op.inputs[i]) for i in range(2)]
    inplace = tuple(sum(1 for q in range(i) if graph.t(op.inputs[q]).data is None) for i in inplace)
    return Step(op, f"{fn}({placeholders[0]}, {placeholders[1]}, {{out}}, &{k});", act_inputs, op.outputs[0], consts, params, inplace)


def _pool(graph: Graph, op: Op, k: str) -> Step:
    x, out = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    _, ih, iw, c = _nhwc(x, op)
    _, oh, ow, _ = _nhwc(out, op)
    o = op.options
    if x.zp != out.zp or x.s != out.s:
        raise ConversionError(f"{op.name} with different input and output quantization", WAY_OUT)
    lo, hi = _act(graph, op)
    fields = dict(in_h=ih, in_w=iw, c=c, out_h=oh, out_w=ow, k_h=o["filter_h"], k_w=o["filter_w"], stride_h=o["stride_h"],
                  stride_w=o["stride_w"], pad_h=_padding(ih, o["filter_h"], o["stride_h"], 1, oh, o["padding"]),
                  pad_w=_padding(iw, o["filter_w"], o["stride_w"], 1, ow, o["padding"]), act_min=lo, act_max=hi)
    fn = "edgekd_avgpool_s8" if op.name == "AVERAGE_POOL_2D" else "edgekd_maxpool_s8"
    return Step(op, f"{fn}({{in0}}, {{out}}, &{k});", [op.inputs[0]], op.outputs[0], [], ("edgekd_pool_params", k, fields),
                rows=(oh, ow * c, iw * c, fields["stride_h"], fields["pad_h"]))


def _mean(graph: Graph, op: Op, k: str) -> Step:
    x, axes_t, out = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    if axes_t.data is None:
        raise ConversionError("MEAN with axes computed at run time", WAY_OUT)
    rank = len(x.shape)
    axes = sorted({int(a) % rank for a in np.asarray(axes_t.data).reshape(-1)})
    if axes != list(range(axes[0], axes[-1] + 1)):
        raise ConversionError(f"MEAN over non-adjacent axes {axes}", WAY_OUT)
    outer = int(np.prod(x.shape[: axes[0]]))
    reduce = int(np.prod([x.shape[a] for a in axes]))
    inner = int(np.prod(x.shape[axes[-1] + 1 :]))
    same = x.zp == out.zp and x.s == out.s
    mult, shift = quant.mean_multiplier(x.s, out.s, reduce)
    fields = dict(outer=outer, reduce=reduce, inner=inner, same_quant=int(same), in_zp=x.zp, out_zp=out.zp, mult=mult, shift=shift)
    return Step(op, f"edgekd_mean_s8({{in0}}, {{out}}, &{k});", [op.inputs[0]], op.outputs[0], [], ("edgekd_mean_params", k, fields))


def _unary(graph: Graph, op: Op, k: str) -> Step:
    x, out = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    n = out.size
    call = None
    if op.name in ("RELU", "QUANTIZE"):
        m, s = quant.quantize_multiplier(x.s / out.s)
        lo = max(-128, out.zp) if op.name == "RELU" else -128
        params = ("edgekd_requant_params", k, dict(size=n, in_zp=x.zp, out_zp=out.zp, mult=m, shift=s, act_min=lo, act_max=127))
        call = f"edgekd_requant_s8({{in0}}, {{out}}, &{k});"
    elif op.name == "RELU6":
        six = quant.float_to_int8(6.0, x.s, x.zp)
        return Step(op, f"edgekd_clip_s8({{in0}}, {{out}}, {n}, {x.zp}, {six});", [op.inputs[0]], op.outputs[0], inplace=(0,))
    elif op.name == "HARD_SWISH":
        rm, re, om, oe = quant.hard_swish_params(x.s, out.s)
        if oe > 0:
            raise ConversionError("HARD_SWISH with an output scale below the input's /128 (tflite-micro refuses it too)", WAY_OUT)
        # A 256-entry table (flash) computed with the reference kernel's fixed point: a load per element instead of
        # some forty instructions; edgekd_hard_swish_s8 computes the same values on the device (tests compare them).
        table = np.array(quant.hard_swish_table(x.s, x.zp, out.s, out.zp), np.int8)
        return Step(op, f"edgekd_lut_s8({{in0}}, {{out}}, {n}, {k}_lut);", [op.inputs[0]], op.outputs[0],
                    [Const(f"{k}_lut", "int8_t", table)], inplace=(0,))
    elif op.name == "LOGISTIC":
        m, ls, radius = quant.logistic_params(x.s)
        params = ("edgekd_logistic_params", k, dict(size=n, in_zp=x.zp, radius=radius, mult=m, left_shift=ls))
        call = f"edgekd_logistic_s8({{in0}}, {{out}}, &{k});"
    else:  # SOFTMAX over the last axis
        depth = x.shape[-1]
        m, ls, diff_min = quant.softmax_params(float(op.options.get("beta", 1.0)), x.s)
        params = ("edgekd_softmax_params", k, dict(rows=n // depth, depth=depth, mult=m, left_shift=ls, diff_min=diff_min))
        call = f"edgekd_softmax_s8({{in0}}, {{out}}, &{k});"
    return Step(op, call, [op.inputs[0]], op.outputs[0], [], params, inplace=(0,))


def _pad(graph: Graph, op: Op, k: str) -> Step:
    x, pads_t, out = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    if pads_t.data is None or len(x.shape) > 4:
        raise ConversionError("PAD with paddings computed at run time or over more than 4 dimensions", WAY_OUT)
    pads = np.asarray(pads_t.data).reshape(-1, 2)
    lead = 4 - len(x.shape)
    before = [0] * lead + [int(v) for v in pads[:, 0]]
    after = [0] * lead + [int(v) for v in pads[:, 1]]
    value = out.zp
    if op.name == "PADV2" and len(op.inputs) > 2:
        value = int(np.asarray(graph.t(op.inputs[2]).data).reshape(-1)[0])
    dims = [1] * lead + list(x.shape)
    fields = dict(in_dims=dims, before=before, after=after, value=value)
    return Step(op, f"edgekd_pad_s8({{in0}}, {{out}}, &{k});", [op.inputs[0]], op.outputs[0], [], ("edgekd_pad_params", k, fields))


def _concat(graph: Graph, op: Op, k: str) -> Step:
    out = graph.t(op.outputs[0])
    ins = [graph.t(i) for i in op.inputs]
    if len(ins) > 8 or any(t.data is not None for t in ins):
        raise ConversionError("CONCATENATION of more than 8 inputs or of constants", WAY_OUT)
    if any(t.zp != out.zp or t.s != out.s for t in ins) or op.options.get("activation"):
        raise ConversionError("CONCATENATION of inputs quantized differently from its output (or with an activation)", WAY_OUT)
    axis = int(op.options.get("axis", -1)) % len(out.shape)
    outer = int(np.prod(out.shape[:axis]))
    inner = [int(np.prod(t.shape[axis:])) for t in ins] + [0] * (8 - len(ins))
    arr = ", ".join("{in%d}" % i for i in range(len(ins)))
    # Literal braces are doubled: the emitter fills {inN}/{out} with str.format.
    call = "{{ const int8_t *const ins[%d] = {{%s}}; edgekd_concat_s8(ins, {out}, &%s); }}" % (len(ins), arr, k)
    fields = dict(count=len(ins), outer=outer, inner=inner)
    return Step(op, call, list(op.inputs), op.outputs[0], [], ("edgekd_concat_params", k, fields))


def lower(graph: Graph) -> List[Step]:
    """One Step per operator, in execution order; ConversionError for anything the kernels cannot run."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ConversionError(f"the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; the C engine compiles one of each")
    gin, gout = graph.t(graph.inputs[0]), graph.t(graph.outputs[0])
    if np.dtype(gin.dtype) != np.int8 or np.dtype(gout.dtype) != np.int8:
        raise ConversionError(f"the model's input is {np.dtype(gin.dtype).name} and its output {np.dtype(gout.dtype).name}: the C engine compiles full-int8 models (int8 in and out), not float ones",
                              "convert to tflite-int8 with int8 inputs and outputs (the tflm-int8 artifact is one); the float wrapper quantizes for you")
    missing = sorted({op.name for op in graph.ops if op.name not in SUPPORTED})
    if missing:
        raise ConversionError(f"the C engine has no kernel for op{'s' if len(missing) > 1 else ''} {', '.join(missing)} used by the model", WAY_OUT)
    steps: List[Step] = []
    for op in graph.ops:
        k = f"op{op.index}"
        for i in op.inputs:
            if i >= 0 and graph.t(i).data is None:
                _check_int8(graph.t(i), op)
        _check_int8(graph.t(op.outputs[0]), op)
        if op.name in ALIAS_OPS:
            steps.append(Step(op, "", [op.inputs[0]], op.outputs[0], alias=True))
        elif op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            steps.append(_conv(graph, op, k, op.name == "DEPTHWISE_CONV_2D"))
        elif op.name == "FULLY_CONNECTED":
            steps.append(_fc(graph, op, k))
        elif op.name in ("ADD", "MUL", "MINIMUM", "MAXIMUM"):
            consts, names = [], []
            for j, i in enumerate(op.inputs[:2]):
                t = graph.t(i)
                if t.data is not None:
                    _check_int8(t, op)
                    consts.append(Const(f"{k}_c{j}", "int8_t", t.data.reshape(-1)))
                    names.append(f"{k}_c{j}")
                else:
                    names.append("")
            steps.append(_binary(graph, op, k, consts, names))
        elif op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            steps.append(_pool(graph, op, k))
        elif op.name == "MEAN":
            steps.append(_mean(graph, op, k))
        elif op.name in ("PAD", "PADV2"):
            steps.append(_pad(graph, op, k))
        elif op.name == "CONCATENATION":
            steps.append(_concat(graph, op, k))
        else:
            steps.append(_unary(graph, op, k))
    return steps
