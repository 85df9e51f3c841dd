"""An emulated firmware run as an ordinary profile report (the runtime's schema, ``edgekd_runtime.report``), so
that ``edgekd reports serve`` stores it and ``edgekd profiles fit-latency`` reads it like any device's.

Latency is an estimate: the instructions QEMU counted divided by the profile's clock (``compute.clock_hz``), as if
the core ran one instruction per cycle. Instructions are not cycles (no pipeline, cache or flash wait states are
modelled); every figure says so.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
from edgekd_runtime import latency_stats
from edgekd_runtime.report import make_report

from ..errors import ProfileError
from ..profiles import load_profile

NOT_CYCLES = "instructions, not cycles: QEMU -icount counts executed instructions; latency = instructions / clock"
FORMAT = "c-int8"


def estimate_seconds(instructions: np.ndarray, profile) -> np.ndarray:
    if not profile.compute.clock_hz:
        raise ProfileError(f"profile {profile.name} has no compute.clock_hz", "add the core clock (Hz) to the profile to estimate latency from instructions")
    return np.asarray(instructions, dtype=np.float64) / profile.compute.clock_hz


def firmware_report(
    *, manifest, manifest_sha256: str, core, emulator: str, compiler: str, image, run, outputs_float: np.ndarray,
    y: Optional[np.ndarray], host_outputs: Optional[np.ndarray], bit_exact: int, tflm_arena: Optional[int],
    library: str, device: Optional[str] = None,
) -> Dict[str, Any]:
    """The profile report of one firmware run; ``run`` is an emulate.EmulatorRun, ``image`` a build.FirmwareImage."""
    profile = load_profile(core.name)
    seconds = estimate_seconds(run.instructions, profile)
    n = len(run.instructions)
    student = {k: manifest.student[k] for k in ("spec", "params", "macs", "activation_elems") if k in manifest.student}
    macs = float(student.get("macs") or 0)
    mean_insns = float(np.mean(run.instructions))
    # tflite-micro's arena holds the input and output tensors, so they count here too for a like-for-like figure:
    # the output is the caller's buffer, and so is the input unless the library's arena has a slot for it.
    io_bytes = image.output_bytes + (0 if image.input_in_arena else image.input_bytes)
    ram = image.static_ram_bytes + run.stack_high_water + io_bytes
    body: Dict[str, Any] = {
        "bundle": manifest.name,
        "manifest_sha256": manifest_sha256,
        "artifact": library,
        "format": FORMAT,
        "runtime": {
            "engine": "c",
            "firmware": f"edgekd harness on {core.board}",
            "compiler": compiler,
            "arena_used": image.arena_bytes,
            "threads": 1,
        },
        "device": {
            "kind": "emulated-mcu",
            "emulator": f"{emulator} {core.machine}",
            "core": core.name,
            "clock_hz": profile.compute.clock_hz,
            "note": NOT_CYCLES,
        },
        "latency": dict(latency_stats(seconds), estimated_from="instructions", note=NOT_CYCLES),
        "instructions": {
            "per_inference_mean": mean_insns,
            "per_inference_p50": float(np.median(run.instructions)),
            "per_inference_max": float(np.max(run.instructions)),
            "per_mac": mean_insns / macs if macs else None,
            "resolution": run.instructions_per_tick,
            # Per inference, from the --by-kernel build: each kernel's calls and the instructions inside them.
            "by_kernel": {k: {"calls": calls / n, "instructions": insns / n} for k, (calls, insns) in sorted(run.kernels.items())} or None,
            "note": NOT_CYCLES,
        },
        "memory": {
            "flash_bytes": image.flash_bytes,
            "ram_bytes": ram,
            "arena_bytes": image.arena_bytes,
            "static_ram_bytes": image.static_ram_bytes,
            "stack_high_water_bytes": run.stack_high_water,
            "input_output_bytes": io_bytes,
            "tflm_arena_bytes": tflm_arena,
            "ram_vs_tflm_arena": (ram / tflm_arena) if tflm_arena else None,
            "how": "flash = .text+.rodata+.data of the firmware minus the harness built alone; RAM = the library's .data+.bss (its arena) + stack high-water mark (painted stack) + the output buffer (and the input's, unless the arena holds it)",
        },
        "bit_exact": {"samples": n, "equal": bit_exact, "reference": "tflite-micro interpreter on the same int8 inputs"},
        "host_expected": {
            "profile": profile.name,
            "latency_ms_estimate": profile.estimate_latency_ms(macs, "int8", float(student.get("activation_elems") or 0)) if macs else None,
        },
        "student": student,
        "eval_samples": n,
    }
    pred = np.argmax(outputs_float, axis=1)
    if y is not None:
        body["accuracy"] = float(np.mean(pred == np.asarray(y[:n]).astype(np.int64)))
    if host_outputs is not None:
        body["agreement_with_host"] = float(np.mean(pred == np.argmax(host_outputs[:n], axis=1)))
    return make_report(body, kind="profile", device=device or f"qemu-{core.machine}")
