"""The int8 TFLite flatbuffer read once, at compile time, into plain Python: tensors (shape, type, quantization,
constant data) and operators (name, inputs, outputs, options) of the first subgraph.

The schema module is LiteRT's own (``ai_edge_litert.schema_py_generated``), so reading a model needs neither
TensorFlow nor the interpreter. Nothing here runs on the device: the generated C has no flatbuffer parser.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import ConversionError

# TFLite TensorType codes -> numpy dtypes (the ones an int8 student can hold).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
_ACTIVATIONS = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_PADDING = {0: "SAME", 1: "VALID"}


@dataclass
class Tensor:
    index: int
    name: str
    shape: List[int]
    dtype: Any  # a numpy dtype
    scale: Optional[np.ndarray] = None  # float32 per channel (length 1 for per-tensor)
    zero_point: Optional[np.ndarray] = None
    quantized_dimension: int = 0
    data: Optional[np.ndarray] = None  # constant tensors only

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    @property
    def s(self) -> float:
        """The per-tensor scale as the float32 value TFLite stores (a Python float holds it exactly)."""
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        return int(self.zero_point[0])


@dataclass
class Op:
    index: int
    name: str
    inputs: List[int]
    outputs: List[int]
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    tensors: List[Tensor]
    ops: List[Op]
    inputs: List[int]
    outputs: List[int]

    def t(self, index: int) -> Tensor:
        return self.tensors[index]


def _op_names(schema) -> Dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _options(schema, op, name: str) -> Dict[str, Any]:
    """The builtin options the kernels need, as a dict (padding and fused activation as words)."""
    table = op.BuiltinOptions()
    if table is None:
        return {}
    kinds = {
        "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions", "FULLY_CONNECTED": "FullyConnectedOptions",
        "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "ADD": "AddOptions", "MUL": "MulOptions",
        "SOFTMAX": "SoftmaxOptions", "CONCATENATION": "ConcatenationOptions", "MEAN": "ReducerOptions",
    }
    kind = kinds.get(name)
    if kind is None:
        return {}
    opts = getattr(schema, kind)()
    opts.Init(table.Bytes, table.Pos)
    out: Dict[str, Any] = {}
    getters = {
        "padding": "Padding", "stride_w": "StrideW", "stride_h": "StrideH", "dilation_w": "DilationWFactor",
        "dilation_h": "DilationHFactor", "filter_w": "FilterWidth", "filter_h": "FilterHeight", "beta": "Beta",
        "axis": "Axis", "keep_dims": "KeepDims", "keep_num_dims": "KeepNumDims", "activation": "FusedActivationFunction",
        "weights_format": "WeightsFormat",
    }
    for key, method in getters.items():
        if hasattr(opts, method):
            out[key] = getattr(opts, method)()
    if "padding" in out:
        out["padding"] = _PADDING[out["padding"]]
    out["activation"] = _ACTIVATIONS.get(out.get("activation", 0), "UNKNOWN")
    return out


def read_graph(tflite_bytes: bytes) -> Graph:
    """The first subgraph of ``tflite_bytes``; a ConversionError when the bytes are not a TFLite model."""
    from ai_edge_litert import schema_py_generated as schema

    buf = bytearray(tflite_bytes)
    try:
        if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
            raise ValueError("no TFL3 identifier")
        model = schema.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        sub = model.Subgraphs(0)
        names = _op_names(schema)
        tensors = []
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            dtype = _DTYPES.get(t.Type())
            q = t.Quantization()
            scale = zp = None
            qdim = 0
            if q is not None and q.ScaleLength() > 0:
                scale = q.ScaleAsNumpy().astype(np.float32)
                zp = q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(len(scale), np.int64)
                qdim = q.QuantizedDimension()
            data = None
            b = model.Buffers(t.Buffer())
            if b is not None and b.DataLength() > 0 and dtype is not None:
                data = np.frombuffer(b.DataAsNumpy().tobytes(), dtype=dtype).reshape([int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else [])
            shape = [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []
            tensors.append(Tensor(i, t.Name().decode(errors="replace") if t.Name() else f"t{i}", shape, dtype, scale, zp, qdim, data))
        ops = []
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                name = "CUSTOM:" + (code.CustomCode() or b"?").decode(errors="replace")
            ins = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []
            ops.append(Op(i, name, ins, outs, _options(schema, op, name)))
        inputs = [int(v) for v in sub.InputsAsNumpy()]
        outputs = [int(v) for v in sub.OutputsAsNumpy()]
    except ConversionError:
        raise
    except Exception as exc:  # the generated reader raises whatever a malformed buffer provokes
        raise ConversionError(f"not a readable TFLite model ({type(exc).__name__}: {str(exc)[:120]})", "pass the bytes of a .tflite file (the verified int8 model)")
    return Graph(tensors, ops, inputs, outputs)
