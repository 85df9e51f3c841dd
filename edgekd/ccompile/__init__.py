"""The C engine's compiler: a verified int8 TFLite model -> a self-contained C99 library, no interpreter.

>>> lib = compile_tflite(open("model_int8.tflite", "rb").read(), Path("out/c"))   # doctest: +SKIP
>>> lib.arena_bytes, lib.weight_bytes, [p.name for p in lib.sources]

``graph`` reads the flatbuffer, ``lower`` turns each op into a kernel call with its parameters computed as
tflite-micro's Prepare computes them, ``plan`` lays the intermediates out in one static arena, ``emit`` writes the
C; the kernels (``kernels/*.c``, TFLite's integer arithmetic) are copied beside it. The result compiles standalone
(``cc -std=c99 -O2 -c *.c``) and its outputs equal tflite-micro's, byte for byte (``edgekd.convert.c`` checks it).
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import ConversionError
from .emit import float_source, header, model_source
from .graph import read_graph
from .lower import KERNEL_FILES, lower
from .plan import plan_arena

KERNEL_DIR = Path(__file__).parent / "kernels"
KERNEL_HEADER = "edgekd_kernels.h"


@dataclass
class CLibrary:
    dir: Path
    sources: List[Path]
    header: Path
    input_size: int
    output_size: int
    arena_bytes: int
    weight_bytes: int  # every const array of the model (weights, biases, multipliers, shifts): flash
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    ops: List[str]
    sha256: Dict[str, str] = field(default_factory=dict)  # file name -> sha256, every file written
    input_shape: List[int] = field(default_factory=list)
    output_shape: List[int] = field(default_factory=list)
    macs: int = 0
    inplace_ops: int = 0
    unshared_arena_bytes: int = 0  # the intermediates without buffer reuse, for comparison

    @property
    def files(self) -> List[Path]:
        return list(self.sources) + [self.header, self.dir / KERNEL_HEADER]


def _preprocessing_dict(pre) -> Optional[Dict]:
    if pre is None:
        return None
    if isinstance(pre, dict):
        return pre
    return {k: getattr(pre, k) for k in ("scale", "offset", "mean", "std")}


def compile_tflite(tflite_bytes: bytes, out_dir: Path, *, name: str = "edgekd_model", preprocessing=None) -> CLibrary:
    """Write ``name.h``, ``name.c``, ``name_float.c`` and the kernel sources the model needs into ``out_dir``.

    ``preprocessing`` (an ``edgekd_runtime.Preprocessing`` or a dict of scale/offset/mean/std): the map from raw
    inputs to the model's, applied by the float wrapper as the runtime applies it; identity when None. Raises a
    ConversionError for a float model, an op without a kernel, or bytes that are not a TFLite model.
    """
    if not name.isidentifier():
        raise ConversionError(f"library name {name!r} is not a C identifier", "use letters, digits and underscores")
    graph = read_graph(bytes(tflite_bytes))
    steps = lower(graph)
    gin, gout = graph.t(graph.inputs[0]), graph.t(graph.outputs[0])
    sizes = {}
    for s in steps:
        for t in s.inputs + [s.output]:
            sizes[t] = graph.t(t).nbytes
    sizes.setdefault(gin.index, gin.nbytes)
    sizes.setdefault(gout.index, gout.nbytes)
    plan = plan_arena(steps, sizes, gin.index, gout.index)
    ops = sorted({s.op.name for s in steps})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    in_q, out_q = (gin.s, gin.zp), (gout.s, gout.zp)
    channels = gin.shape[-1] if gin.shape else 1
    pre = _preprocessing_dict(preprocessing)
    texts = {
        f"{name}.h": header(name, gin.size, gout.size, plan.arena_bytes, in_q, out_q, _describe(pre), ops),
        f"{name}.c": model_source(name, steps, plan, gin.index),
        f"{name}_float.c": float_source(name, in_q, out_q, channels, pre),
    }
    kernel_files = sorted({KERNEL_FILES[o] for o in ops if o in KERNEL_FILES})
    for fname in [KERNEL_HEADER] + kernel_files:
        shutil.copyfile(KERNEL_DIR / fname, out_dir / fname)
    for fname, text in texts.items():
        (out_dir / fname).write_text(text)
    written = list(texts) + [KERNEL_HEADER] + kernel_files
    digests = {f: hashlib.sha256((out_dir / f).read_bytes()).hexdigest() for f in written}
    weight_bytes = sum(np.asarray(c.values).size * (4 if c.ctype == "int32_t" else 1) for s in steps for c in s.consts)
    return CLibrary(
        dir=out_dir,
        sources=[out_dir / f"{name}.c", out_dir / f"{name}_float.c"] + [out_dir / f for f in kernel_files],
        header=out_dir / f"{name}.h",
        input_size=gin.size, output_size=gout.size, arena_bytes=plan.arena_bytes, weight_bytes=int(weight_bytes),
        input_scale=gin.s, input_zero_point=gin.zp, output_scale=gout.s, output_zero_point=gout.zp, ops=ops,
        sha256=digests, input_shape=list(gin.shape), output_shape=list(gout.shape), macs=sum(s.macs for s in steps),
        inplace_ops=plan.inplace_steps, unshared_arena_bytes=plan.naive_bytes,
    )


def _describe(pre: Optional[Dict]) -> str:
    if not pre:
        return "none (identity: the input is the model's float input)"
    text = f"x*{pre.get('scale', 1.0):.8g}{pre.get('offset', 0.0):+.8g}"
    if pre.get("mean") is not None or pre.get("std") is not None:
        text = f"({text} - mean)/std per channel, mean={pre.get('mean')}, std={pre.get('std')}"
    return text


__all__ = ["CLibrary", "compile_tflite"]
