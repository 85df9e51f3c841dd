"""What a student costs, priced from its architecture: parameters, MACs, peak activation memory, and the
model-file and TFLite Micro arena bytes those imply (fitted constants below, with where they come from).

Peak activation memory is the largest set of tensors alive at once over the op order the TFLite converter
emits - the same lifetime analysis as ``measure.converted_cost`` runs on a real ``.tflite`` file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from ..profiles import BYTES_PER_WEIGHT
from ..students import StudentSpec, student_graph
from ..students.nn import Graph, peak_live

# Model-file bytes beyond the weights, fitted on int8 conversions of ten students of all three families
# (TF 2.21): each tensor costs ~100 bytes of flatbuffer metadata (name, shape, buffer entry), each output
# channel of an int8 conv/dense stores an int32 bias plus a float32 scale and an int64 zero point for
# its weights and for its bias (4 + 2 x 12 = 28 bytes), and the file has ~3 KB of fixed structure.
TENSOR_METADATA_BYTES = 100
INT8_CHANNEL_BYTES = 28
FILE_FIXED_BYTES = 3000

# TFLite Micro's arena = the planner's activation area (the "head": equal to the lifetime peak on every
# student measured) + persistent allocations (the "tail"). The tail was fitted by least squares on eight
# int8 students against tflite-micro's own allocation report (max error 1.6%): a TfLiteEvalTensor and
# bookkeeping per tensor, a NodeAndRegistration and op data per op, 8 bytes of per-channel requantization
# parameters (multiplier + shift) per output channel, and a fixed part.
TFLM_TENSOR_BYTES = 52
TFLM_OP_BYTES = 81
TFLM_CHANNEL_BYTES = 8
TFLM_FIXED_BYTES = 800


@dataclass
class Cost:
    params: int  # as Keras counts them (batch-norm statistics included)
    macs: int
    peak_activation_elems: int  # largest set of activation elements alive at once
    weights: int = 0  # stored kernel elements (batch norm folded)
    biases: int = 0  # stored bias elements = output channels of every conv/dense
    tensors: int = 0  # tensors of the converted graph, activations and constants
    ops: int = 0
    op_kinds: Tuple[str, ...] = ()
    activation_traffic_elems: int = 0  # activation elements read + written over all ops

    @classmethod
    def from_graph(cls, g: Graph) -> "Cost":
        return cls(
            params=g.params, macs=g.macs, peak_activation_elems=g.peak_elems(), weights=g.weights, biases=g.biases,
            tensors=len(g.tensors) + g.constant_tensors, ops=len(g.ops), op_kinds=tuple(g.op_kinds()),
            activation_traffic_elems=g.traffic_elems(),
        )

    def model_bytes(self, precision: str) -> int:
        """Estimated size of the model file at ``precision``."""
        weights = self.weights or self.params
        if precision == "int8":
            body = weights + INT8_CHANNEL_BYTES * self.biases
        else:
            body = BYTES_PER_WEIGHT[precision] * (weights + self.biases)
        return int(body + TENSOR_METADATA_BYTES * self.tensors + FILE_FIXED_BYTES)

    def activation_bytes(self, precision: str) -> int:
        return self.peak_activation_elems * BYTES_PER_WEIGHT[precision]

    def tflm_arena_bytes(self) -> int:
        """Estimated TFLite Micro arena for the int8 model (see the TFLM_* constants)."""
        tail = TFLM_TENSOR_BYTES * self.tensors + TFLM_OP_BYTES * self.ops + TFLM_CHANNEL_BYTES * self.biases + TFLM_FIXED_BYTES
        return int(self.activation_bytes("int8") + tail)

    def to_dict(self):
        return {
            "params": self.params, "macs": self.macs, "peak_activation_elems": self.peak_activation_elems, "weights": self.weights,
            "biases": self.biases, "tensors": self.tensors, "ops": self.ops, "activation_traffic_elems": self.activation_traffic_elems,
        }


def student_cost(spec: StudentSpec, input_shape, num_classes: int) -> Cost:
    """The cost of ``spec`` from its architecture, without building a model."""
    return Cost.from_graph(student_graph(spec, input_shape, num_classes))


# tf_keras layers the converter folds into their producer (batch norm into the conv's bias, ReLU into its
# fused activation) or drops: their output aliases their input.
_FOLDED = ("BatchNormalization", "Dropout", "ReLU", "Activation", "InputLayer")
_OP_KIND = {
    "Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D", "Dense": "FULLY_CONNECTED", "HardSwish": "HARD_SWISH",
    "Add": "ADD", "Multiply": "MUL", "GlobalAveragePooling2D": "MEAN", "AveragePooling2D": "AVERAGE_POOL_2D",
    "MaxPooling2D": "MAX_POOL_2D", "Resizing": "RESIZE_BILINEAR", "Reshape": "RESHAPE", "Flatten": "RESHAPE",
}


def model_cost(model) -> Cost:
    """The cost of any single-input tf_keras functional model, read from its layers.

    MACs count convolutions, depthwise convolutions and dense layers (the rest is negligible on these
    nets). Activation memory is the lifetime peak over the layers in order, with the layers the TFLite
    converter folds treated as aliases of their input.
    """
    def elems(shape):
        n = 1
        for v in shape[1:]:
            n *= int(v)
        return n

    alias: Dict[int, int] = {}
    sizes: Dict[int, int] = {}
    ops: List[Tuple[Tuple[int, ...], Tuple[int, ...]]] = []
    kinds = set()
    macs = weights = biases = constants = 0
    inputs = [id(t) for t in model.inputs]
    for t in model.inputs:
        sizes[id(t)] = elems(t.shape)
    for layer in model.layers:
        name = type(layer).__name__
        if name == "InputLayer":
            continue
        node = layer._inbound_nodes[0]
        ins = [alias.get(id(t), id(t)) for t in node.keras_inputs]
        out = node.outputs if not isinstance(node.outputs, (list, tuple)) else node.outputs[0]
        if name in _FOLDED and len(ins) == 1:
            alias[id(out)] = ins[0]
            continue
        sizes[id(out)] = elems(out.shape)
        ops.append((tuple(ins), (id(out),)))
        kinds.add(_OP_KIND.get(name, name))
        out_shape = [int(v) for v in out.shape[1:]]
        if name in ("Conv2D", "DepthwiseConv2D", "Dense"):
            kernel = layer.kernel if name != "DepthwiseConv2D" else layer.depthwise_kernel
            k = int(np.prod(kernel.shape))
            cout = out_shape[-1]
            positions = int(np.prod(out_shape[:-1])) if out_shape[:-1] else 1
            weights += k
            biases += cout
            constants += 2
            macs += positions * k  # each output position multiplies the whole kernel once
        elif name in ("GlobalAveragePooling2D", "Reshape", "Flatten", "Resizing"):
            constants += 1
    outputs = [alias.get(id(t), id(t)) for t in model.outputs]
    peak = peak_live(sizes, ops, inputs, outputs)
    traffic = sum(sum(sizes[t] for t in ins if t in sizes) + sum(sizes[t] for t in outs) for ins, outs in ops)
    return Cost(
        params=int(model.count_params()), macs=int(macs), peak_activation_elems=int(peak), weights=weights, biases=biases,
        tensors=len(sizes) + constants, ops=len(ops), op_kinds=tuple(sorted(kinds)), activation_traffic_elems=int(traffic),
    )
