"""One architecture description, two readings: a tf_keras model, or its cost without building anything.

Each family writes its network once against the small interface below. ``KerasNN`` turns the calls into
tf_keras layers; ``CostNN`` only tracks shapes and records the ops the TFLite converter will emit for them
(batch norm folded into the convolution, ReLU fused, hard-swish as one HARD_SWISH op), so the sizing
search can price hundreds of candidates in well under a second instead of building each Keras model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple


def _prod(shape) -> int:
    n = 1
    for v in shape:
        n *= int(v)
    return n


def _same(size: int, stride: int) -> int:
    return (size + stride - 1) // stride


class KerasNN:
    """Builds tf_keras layers; the names match the students saved by earlier versions."""

    def __init__(self):
        import tf_keras as keras

        self.keras = keras
        self.layers = keras.layers

    def input(self, shape):
        return self.keras.Input(shape=tuple(shape), name="input")

    def conv(self, x, filters, kernel, stride=1, name=None, bn=True, activation=None, bn_momentum=0.99):
        L = self.layers
        if bn:
            x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
            x = L.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn" if name else None)(x)
            if activation == "relu":
                x = L.ReLU(name=f"{name}_relu" if name else None)(x)
            return x
        return L.Conv2D(filters, kernel, strides=stride, padding="same", activation=activation, name=name)(x)

    def dwconv(self, x, kernel, stride=1, name=None, bn=True, activation=None, bn_momentum=0.99):
        L = self.layers
        x = L.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=not bn, name=name)(x)
        if bn:
            x = L.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn" if name else None)(x)
        if activation == "relu":
            x = L.ReLU(name=f"{name}_relu" if name else None)(x)
        return x

    def hard_swish(self, x, name=None):
        from .mobilenetv3 import HardSwish

        return HardSwish(name=name)(x)

    def add(self, a, b, name=None):
        return self.layers.Add(name=name)([a, b])

    def multiply(self, a, b, name=None):
        return self.layers.Multiply(name=name)([a, b])

    def global_pool(self, x, keepdims=False, name=None):
        return self.layers.GlobalAveragePooling2D(keepdims=keepdims, name=name)(x)

    def avg_pool(self, x, pool, name=None):
        return self.layers.AveragePooling2D(pool_size=pool, strides=pool, name=name)(x)

    def max_pool(self, x, pool, name=None):
        return self.layers.MaxPooling2D(pool_size=pool, strides=pool, name=name)(x)

    def resize(self, x, height, width, name=None):
        return self.layers.Resizing(height, width, name=name)(x)

    def reshape(self, x, shape, name=None):
        return self.layers.Reshape(tuple(shape), name=name)(x)

    def flatten(self, x, name=None):
        return self.layers.Flatten(name=name)(x)

    def dense(self, x, units, activation=None, name=None):
        return self.layers.Dense(units, activation=activation, name=name)(x)

    def model(self, inputs, outputs, name):
        return self.keras.Model(inputs, outputs, name=name)


@dataclass(frozen=True)
class T:
    """A symbolic activation tensor: shape without the batch axis, and the id that tracks its lifetime."""

    shape: Tuple[int, ...]
    id: int

    @property
    def elems(self) -> int:
        return _prod(self.shape)


@dataclass
class Op:
    kind: str  # the TFLite builtin the converter emits
    inputs: Tuple[int, ...]
    output: int
    constants: int = 0  # constant tensors the op reads (weights, bias, axis, shape)


@dataclass
class Graph:
    """The activation graph of a network in the converter's op order, with what it costs."""

    tensors: Dict[int, int] = field(default_factory=dict)  # id -> elements
    ops: List[Op] = field(default_factory=list)
    inputs: List[int] = field(default_factory=list)
    outputs: List[int] = field(default_factory=list)
    params: int = 0  # as Keras counts them (batch-norm statistics included)
    weights: int = 0  # stored kernel elements after batch-norm folding
    biases: int = 0  # stored bias elements after batch-norm folding
    macs: int = 0

    def peak_elems(self) -> int:
        return peak_live(self.tensors, [(op.inputs, (op.output,)) for op in self.ops], self.inputs, self.outputs)

    def traffic_elems(self) -> int:
        """Activation elements read and written over all ops: what elementwise work and memory traffic scale with."""
        return sum(sum(self.tensors[t] for t in op.inputs) + self.tensors[op.output] for op in self.ops)

    @property
    def constant_tensors(self) -> int:
        return sum(op.constants for op in self.ops)

    def op_kinds(self):
        return sorted({op.kind for op in self.ops})


def peak_live(sizes: Dict[int, int], ops, inputs, outputs) -> int:
    """Largest total size of tensors alive at once while ``ops`` run in order.

    A tensor is alive from the op that writes it (graph inputs: from the start) to the last op that reads
    it (graph outputs: to the end) - the lifetimes an arena planner packs. This is the planner's lower
    bound: a real arena adds alignment and whatever fragmentation its packing leaves.
    """
    first: Dict[int, int] = {t: 0 for t in inputs}
    last: Dict[int, int] = {t: 0 for t in inputs}
    for i, (ins, outs) in enumerate(ops):
        for t in outs:
            first.setdefault(t, i)
            last[t] = max(last.get(t, i), i)
        for t in ins:
            if t in first:
                last[t] = max(last[t], i)
    end = max(len(ops) - 1, 0)
    for t in outputs:
        if t in first:
            last[t] = end
    peak = 0
    for i in range(max(len(ops), 1)):
        live = sum(sizes[t] for t in first if first[t] <= i <= last[t])
        peak = max(peak, live)
    return peak


class CostNN:
    """Tracks shapes and records TFLite-equivalent ops; builds nothing."""

    def __init__(self):
        self.graph = Graph()
        self._next = 0

    def _tensor(self, shape) -> T:
        t = T(tuple(int(v) for v in shape), self._next)
        self._next += 1
        self.graph.tensors[t.id] = t.elems
        return t

    def _op(self, kind, inputs, shape, constants=0) -> T:
        out = self._tensor(shape)
        self.graph.ops.append(Op(kind, tuple(t.id for t in inputs), out.id, constants))
        return out

    def input(self, shape):
        t = self._tensor(shape)
        self.graph.inputs.append(t.id)
        return t

    def conv(self, x, filters, kernel, stride=1, name=None, bn=True, activation=None, bn_momentum=0.99):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        h, w, cin = x.shape
        oh, ow = _same(h, sh), _same(w, sw)
        g = self.graph
        g.weights += kh * kw * cin * filters
        g.biases += filters
        g.params += kh * kw * cin * filters + (4 * filters if bn else filters)
        g.macs += oh * ow * filters * kh * kw * cin
        out = self._op("CONV_2D", [x], (oh, ow, filters), constants=2)
        if activation == "hard_sigmoid":  # the converter emits it as two elementwise ops after the conv
            out = self._op("RELU", [out], out.shape)
            out = self._op("MINIMUM", [out], out.shape, constants=1)
        return out

    def dwconv(self, x, kernel, stride=1, name=None, bn=True, activation=None, bn_momentum=0.99):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        h, w, c = x.shape
        oh, ow = _same(h, stride), _same(w, stride)
        g = self.graph
        g.weights += kh * kw * c
        g.biases += c
        g.params += kh * kw * c + (4 * c if bn else c)
        g.macs += oh * ow * c * kh * kw
        return self._op("DEPTHWISE_CONV_2D", [x], (oh, ow, c), constants=2)

    def hard_swish(self, x, name=None):
        return self._op("HARD_SWISH", [x], x.shape)

    def add(self, a, b, name=None):
        return self._op("ADD", [a, b], a.shape)

    def multiply(self, a, b, name=None):
        return self._op("MUL", [a, b], a.shape)

    def global_pool(self, x, keepdims=False, name=None):
        shape = (1, 1, x.shape[-1]) if keepdims else (x.shape[-1],)
        return self._op("MEAN", [x], shape, constants=1)

    def avg_pool(self, x, pool, name=None):
        ph, pw = (pool, pool) if isinstance(pool, int) else pool
        return self._op("AVERAGE_POOL_2D", [x], (x.shape[0] // ph, x.shape[1] // pw, x.shape[2]))

    def max_pool(self, x, pool, name=None):
        return self._op("MAX_POOL_2D", [x], (x.shape[0] // pool, x.shape[1] // pool, x.shape[2]))

    def resize(self, x, height, width, name=None):
        return self._op("RESIZE_BILINEAR", [x], (height, width, x.shape[2]), constants=1)

    def reshape(self, x, shape, name=None):
        return self._op("RESHAPE", [x], tuple(shape), constants=1)

    def flatten(self, x, name=None):
        return self._op("RESHAPE", [x], (x.elems,), constants=1)

    def dense(self, x, units, activation=None, name=None):
        cin = x.shape[-1]
        g = self.graph
        g.weights += cin * units
        g.biases += units
        g.params += cin * units + units
        g.macs += _prod(x.shape[:-1]) * cin * units
        # Dense weights are quantized per tensor, not per channel.
        return self._op("FULLY_CONNECTED", [x], tuple(x.shape[:-1]) + (units,), constants=2)

    def model(self, inputs, outputs, name):
        self.graph.outputs.append(outputs.id)
        return self.graph
