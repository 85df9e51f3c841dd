"""Running a firmware image on qemu-system-arm and reading what its harness printed.

QEMU runs with ``-icount shift=0`` (virtual time advances 1 ns per guest instruction), so the harness's timer
ticks count instructions, not cycles. A run is bounded by a wall-clock timeout: a firmware that hangs is killed
and reported as an error with the last line it printed.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from ..errors import EdgekdError
from .build import FirmwareImage
from .toolchain import Tools

_HEADER = re.compile(r"^EDGEKD_FW 1 samples=(\d+) input=(\d+) output=(\d+)$")
_CAL = re.compile(r"^CAL insns=(\d+) ticks=(\d+)$")
_SAMPLE = re.compile(r"^S (\d+) ([01]) (\d+) (\d+) ([0-9a-f]*)$")
_DONE = re.compile(r"^DONE stack=(\d+) failures=(\d+)$")
_KERNEL = re.compile(r"^K (\w+) (\d+) (\d+)$")


class EmulatorError(EdgekdError):
    exit_code = 6


@dataclass
class EmulatorRun:
    outputs: np.ndarray  # int8 (samples, output bytes), as the firmware computed them
    instructions: np.ndarray  # per inference (from timer ticks x instructions per tick)
    stack_bytes: np.ndarray  # per inference: stack the model's invoke used (painted words overwritten)
    instructions_per_tick: float
    wall_seconds: float
    command: List[str] = field(default_factory=list)
    # With kernel timing: kernel -> [calls, instructions], summed over all samples.
    kernels: Dict[str, List[float]] = field(default_factory=dict)

    @property
    def stack_high_water(self) -> int:
        return int(self.stack_bytes.max()) if self.stack_bytes.size else 0


def qemu_command(tools: Tools, image: FirmwareImage) -> List[str]:
    # Semihosting output goes to its own stdio chardev (without one QEMU writes it to stderr, mixed with its warnings).
    return [tools.qemu, "-M", image.core.machine, "-display", "none", "-serial", "null", "-monitor", "none",
            "-chardev", "stdio,id=semihosting", "-icount", "shift=0",
            "-semihosting-config", "enable=on,target=native,chardev=semihosting", "-kernel", str(image.elf)]


def run_firmware(tools: Tools, image: FirmwareImage, timeout_s: float = 300.0) -> EmulatorRun:
    """Run ``image`` in QEMU until the harness exits through semihosting; EmulatorError on a hang, a fault or
    output that is not the harness's."""
    import time

    cmd = qemu_command(tools, image)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        last = _last_line(exc.stdout)
        raise EmulatorError(
            f"the {image.core.name} firmware did not finish within {timeout_s:g} s in {image.core.machine} (killed; last line: {last})",
            "a model this slow needs fewer --samples or a larger --timeout; a hang is a bug in the C library",
        ) from None
    wall = time.perf_counter() - start
    text = proc.stdout.decode("utf-8", "replace")
    if "EDGEKD_FAULT" in text:
        raise EmulatorError(f"the {image.core.name} firmware crashed with a hard fault after {text.count(chr(10) + 'S ')} samples", "a fault in the C library is a bug: report it with the model")
    run = parse_output(text, image.samples)
    if proc.returncode != 0:
        raise EmulatorError(f"qemu-system-arm exited with status {proc.returncode}: {proc.stderr.decode('utf-8', 'replace').strip()[:300] or _last_line(proc.stdout)}")
    run.wall_seconds, run.command = wall, cmd
    return run


def _last_line(raw) -> str:
    lines = (raw or b"").decode("utf-8", "replace").strip().splitlines()
    return repr(lines[-1][:120]) if lines else "nothing printed"


def parse_output(text: str, expected_samples: int) -> EmulatorRun:
    """The harness's printed lines -> outputs, instruction counts and stack use; EmulatorError if incomplete."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    head = next((m for m in map(_HEADER.match, lines) if m), None)
    cal = next((m for m in map(_CAL.match, lines) if m), None)
    done = next((m for m in map(_DONE.match, lines) if m), None)
    if head is None or cal is None:
        raise EmulatorError(f"the emulator printed no harness header (first line: {lines[0][:120] if lines else 'nothing'!r})", "is the image built by edgekd.firmware.build?")
    samples, output_size = int(head.group(1)), int(head.group(3))
    if samples != expected_samples:
        raise EmulatorError(f"the firmware holds {samples} samples, {expected_samples} expected")
    if done is None:
        raise EmulatorError(f"the firmware stopped before its last sample (last line: {lines[-1][:120]!r})")
    cal_insns, cal_ticks = int(cal.group(1)), int(cal.group(2))
    if cal_ticks <= 0:
        raise EmulatorError("the harness's timer did not advance: was QEMU run with -icount shift=0?")
    per_tick = cal_insns / cal_ticks
    rows = [m for m in map(_SAMPLE.match, lines) if m]
    if [int(m.group(1)) for m in rows] != list(range(samples)):
        raise EmulatorError(f"the firmware printed {len(rows)} sample lines out of order or incomplete, {samples} expected")
    failed = [int(m.group(1)) for m in rows if m.group(2) != "0"]
    if failed:
        raise EmulatorError(f"edgekd_model_invoke returned an error on {len(failed)} of {samples} samples (first: sample {failed[0]})")
    outputs = np.empty((samples, output_size), dtype=np.int8)
    for i, m in enumerate(rows):
        raw = bytes.fromhex(m.group(5))
        if len(raw) != output_size:
            raise EmulatorError(f"sample {i} printed {len(raw)} output bytes, {output_size} expected")
        outputs[i] = np.frombuffer(raw, dtype=np.int8)
    ticks = np.array([int(m.group(3)) for m in rows], dtype=np.float64)
    kernels = {m.group(1): [int(m.group(2)), int(m.group(3)) * per_tick] for m in map(_KERNEL.match, lines) if m}
    return EmulatorRun(outputs=outputs, instructions=np.round(ticks * per_tick), stack_bytes=np.array([int(m.group(4)) for m in rows]),
                       instructions_per_tick=per_tick, wall_seconds=0.0, kernels=kernels)
