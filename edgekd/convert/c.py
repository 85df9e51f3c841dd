"""The C engine's artifact (format ``c-int8``, engine ``c``): the verified int8 TFLite model compiled by
:mod:`edgekd.ccompile` into a folder of C99 sources (no interpreter, weights in flash, one static arena).

It compiles the very bytes of the bundle's TFLite Micro (or full-int8 TFLite) artifact when there is one, so the
two artifacts run the same model; ``check_bit_exact`` (called by the bundle assembler on every eval sample) then
proves the C library's output bytes equal tflite-micro's. Less than all of them is an error, not a tolerance.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from ..errors import ConversionError

LIB_NAME = "edgekd_model"
# Flash the kernels and the invoke function take beside the weights: measured with arm-none-eabi-gcc -O2 for
# Cortex-M4 (about 10 KB for all kernels); rounded up, since the exact figure depends on the toolchain.
CODE_BYTES_ESTIMATE = 16 * 1024
STACK_BYTES_ESTIMATE = 1024
SOURCE_SUFFIX = "_c_source_int8.tflite"
NO_COMPILER_HINT = "install a C compiler: apt-get install gcc (Debian/Ubuntu: build-essential), or set CC"


def _source(student, calibration, previous) -> tuple:
    """(int8 TFLite bytes, the format of the bundle artifact holding them or None)."""
    from .tflite import tflite_bytes

    for fmt in ("tflm-int8", "tflite-int8"):
        conv = (previous or {}).get(fmt)
        if conv is not None and conv.artifact.input.dtype == "int8" and conv.artifact.path in conv.files:
            return Path(conv.files[conv.artifact.path]).read_bytes(), fmt
    return tflite_bytes(student, "tflite-int8", calibration), None


def check_fits(lib, profile) -> Dict[str, int]:
    """The library against ``profile``'s flash and RAM budgets; ConversionError saying by how much it misses."""
    flash = lib.weight_bytes + CODE_BYTES_ESTIMATE
    ram = lib.arena_bytes + lib.input_size + lib.output_size + STACK_BYTES_ESTIMATE
    budgets = profile.budgets
    misses = []
    if budgets.model_bytes is not None and flash > budgets.model_bytes:
        misses.append(f"flash ~{flash:,} bytes (weights {lib.weight_bytes:,} + ~{CODE_BYTES_ESTIMATE:,} code) is {flash - budgets.model_bytes:,} bytes over the {budgets.model_bytes:,} of {profile.name}")
    if budgets.memory_bytes is not None and ram > budgets.memory_bytes:
        misses.append(f"RAM ~{ram:,} bytes (arena {lib.arena_bytes:,} + input/output {lib.input_size + lib.output_size:,} + ~{STACK_BYTES_ESTIMATE:,} stack) is {ram - budgets.memory_bytes:,} bytes over the {budgets.memory_bytes:,} of {profile.name}")
    if misses:
        raise ConversionError("the C library does not fit: " + "; ".join(misses), "choose a smaller student (edgekd size shows the ones that fit) or a larger profile")
    return {"flash_bytes_estimate": flash, "ram_bytes_estimate": ram}


def convert(student, fmt, out_dir: Path, calibration=None, name="model", previous=None, preprocessing=None, profile=None, **_):
    from edgekd_runtime import Artifact
    from edgekd_runtime.backends.c import find_compiler

    from ..ccompile import compile_tflite
    from . import Converted
    from .tflite import tensor_specs

    if find_compiler() is None:
        raise ConversionError("the C engine's artifact is checked by compiling it, and no C compiler (cc, gcc or clang) is on PATH", NO_COMPILER_HINT)
    blob, source_fmt = _source(student, calibration, previous)
    folder = Path(out_dir) / f"{name}_c"
    if folder.exists():
        shutil.rmtree(folder)
    try:
        lib = compile_tflite(blob, folder, name=LIB_NAME, preprocessing=preprocessing)
    except ConversionError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    settings = {
        "name": LIB_NAME, "arena_bytes": lib.arena_bytes, "unshared_arena_bytes": lib.unshared_arena_bytes,
        "weight_bytes": lib.weight_bytes, "input_size": lib.input_size, "output_size": lib.output_size, "macs": lib.macs,
        "inplace_ops": lib.inplace_ops, "ops": lib.ops, "sha256": lib.sha256, "files": sorted(lib.sha256),
        "source_sha256": hashlib.sha256(blob).hexdigest(), "io": "input read from and output written to the caller's buffers",
    }
    if profile is not None:
        from ..profiles import load_profile

        settings.update(check_fits(lib, load_profile(profile)))
    files = {f"{folder.name}/{p.name}": p for p in sorted(folder.iterdir()) if p.is_file()}
    if source_fmt is None:  # no TFLite artifact beside it: ship the model it was compiled from, to check against
        src = Path(out_dir) / f"{name}{SOURCE_SUFFIX}"
        src.write_bytes(blob)
        files[src.name] = src
        settings["source"] = src.name
    else:
        settings["source"] = source_fmt
    inp, out = tensor_specs(blob)
    art = Artifact(path=folder.name, format=fmt, engine="c", input=inp, output=out,
                   bytes=sum(p.stat().st_size for p in files.values()), settings=settings)
    return Converted(art, files)


def _source_artifact(conv, converted: Sequence):
    """The artifact whose file holds the model ``conv`` was compiled from: (Artifact, path)."""
    from edgekd_runtime import Artifact

    want = conv.artifact.settings.get("source_sha256")
    for other in converted:
        path = other.files.get(other.artifact.path)
        if other is not conv and path is not None and Path(path).is_file() and hashlib.sha256(Path(path).read_bytes()).hexdigest() == want:
            return other.artifact, Path(path)
    name = conv.artifact.settings.get("source", "")
    if name in conv.files:
        art = Artifact(path=name, format="tflm-int8", engine="tflm", input=conv.artifact.input, output=conv.artifact.output)
        return art, Path(conv.files[name])
    raise ConversionError("the int8 TFLite model the C library was compiled from is not in the bundle", "convert again with --to c")


def check_bit_exact(conv, converted: Sequence, preprocessing, eval_x, tflm_arena: int = 8 << 20) -> Dict[str, object]:
    """Run the C library and tflite-micro on every raw eval sample (the same quantized tensors) and demand equal
    output bytes; the count goes into the artifact's settings and host metrics. ConversionError on any difference."""
    from edgekd_runtime import Model

    src_art, src_path = _source_artifact(conv, converted)
    folder = next(Path(p).parent for k, p in conv.files.items() if k.startswith(conv.artifact.path + "/"))
    cmodel = Model(str(folder), conv.artifact, preprocessing, engine="c")
    ref = Model(str(src_path), src_art, preprocessing, engine="tflm", arena_size=max(tflm_arena, int(src_art.settings.get("arena_size") or 0)))
    q = cmodel.prepare(eval_x)
    mine = np.asarray(cmodel.backend.invoke(q)).reshape(len(q), -1)
    theirs = np.asarray(ref.backend.invoke(q)).reshape(len(q), -1).astype(np.int8)
    equal = int(np.sum(np.all(mine == theirs, axis=1)))
    record = {"reference": "tflite-micro", "samples": int(len(q)), "equal": equal}
    conv.artifact.settings["bit_exact"] = record
    conv.artifact.host_metrics["bit_exact_with_tflm"] = f"{equal}/{len(q)}"
    if equal != len(q):
        conv.artifact.verification = "failed"
        raise ConversionError(f"the C library's outputs differ from tflite-micro's on {len(q) - equal} of {len(q)} eval samples (it must equal them all)",
                              "this is an edgekd bug: please report it with the student; ship the tflm-int8 artifact alone meanwhile (--to tflm-int8)")
    return record


def c_artifacts(converted: Sequence) -> List:
    return [c for c in converted if c.artifact.format == "c-int8"]
