"""Mixed precision for distillation: float16 only on a GPU, bfloat16 only on a CPU with native bf16 instructions.

Elsewhere both would run in emulation, slower than float32, so they are refused instead of silently slowing down.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import EdgekdError

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def cpu_supports_bf16() -> bool:
    """True when the CPU advertises AVX512-BF16 or AMX-BF16 (x86) or BF16 (Arm) in /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve(precision: Optional[str]) -> Optional[str]:
    """The Keras dtype policy for ``precision`` (None or "float32": full precision), refusing what this machine lacks."""
    if precision in (None, "", "float32", "fp32"):
        return None
    if precision not in POLICIES:
        raise EdgekdError(f"unknown precision {precision!r}", f"choose one of {', '.join(POLICIES)}")
    import tensorflow as tf

    if precision == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        raise EdgekdError("mixed_float16 needs a GPU and TensorFlow sees none here",
                          "drop --precision, or use mixed_bfloat16 on a CPU with bf16 instructions")
    if precision == "mixed_bfloat16" and not tf.config.list_physical_devices("GPU") and not cpu_supports_bf16():
        raise EdgekdError("mixed_bfloat16 needs a CPU with bf16 instructions (avx512_bf16/amx_bf16) and this one has none",
                          "drop --precision; float32 is faster than emulated bfloat16")
    return precision
