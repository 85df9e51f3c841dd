"""``edgekd firmware``: a bundle's model compiled to C, built into firmware for an emulated Cortex-M, run on every
eval sample, checked byte for byte against the tflite-micro interpreter, and written up as a profile report.

Bit-exact on every sample or it is a failure: no tolerance.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
from edgekd_runtime import Artifact, Bundle, Model
from edgekd_runtime.manifest import MANIFEST_NAME, sha256_file
from edgekd_runtime.report import write_report

from ..errors import EdgekdError
from .build import HEADER, FirmwareImage, build_firmware, core as get_core
from .emulate import EmulatorRun, run_firmware
from .report import firmware_report
from .toolchain import Tools, find_tools

INT8_FORMATS = ("tflm-int8", "tflite-int8")
DEFAULT_TIMEOUT_S = 600.0
# Eval samples per firmware image: a quarter of the board's code memory, so the model always has room beside them.
SAMPLE_BYTES_PER_IMAGE = 1 << 20


class NotBitExactError(EdgekdError):
    exit_code = 7


@dataclass
class FirmwareResult:
    report: Dict[str, Any]
    image: FirmwareImage
    run: EmulatorRun
    reference: np.ndarray  # int8 outputs of the tflite-micro interpreter
    library_dir: Path
    mismatched: int
    # Where the images and the compiled library stay: the caller's out_dir, or None when they were built in a
    # temporary folder that is gone by the time this returns (image.elf then names a deleted file).
    kept_in: Optional[Path] = None

    @property
    def bit_exact(self) -> bool:
        return self.mismatched == 0


def _bundle_of(source: Path, bundle: Optional[str]) -> Path:
    if bundle:
        return Path(bundle)
    for folder in (source, *source.parents[:2]):
        if (folder / MANIFEST_NAME).is_file():
            return folder
    raise EdgekdError(f"{source} holds a C library but no bundle to take the eval samples from", "pass --bundle BUNDLE (the bundle the library was compiled from)")


def _reference(opened: Bundle):
    """(artifact, Model on tflm) of the int8 TFLite model the C library must equal byte for byte: the bundle's
    tflm-int8 / tflite-int8 artifact, else the source model a c-int8 artifact ships beside it."""
    manifest = opened.manifest
    for fmt in INT8_FORMATS:
        if any(a.format == fmt for a in manifest.artifacts):
            model = Model.from_bundle(opened, artifact=fmt, engine="tflm")
            return model.artifact, model
    for art in manifest.artifacts:
        source = (art.settings or {}).get("source")
        if art.engine == "c" and source in manifest.files:
            if art.verification != "passed":
                raise EdgekdError(f"artifact {art.path} ({art.format}) did not pass the host's verification ({art.verification})", "convert the student again")
            ref = Artifact(path=source, format="tflm-int8", engine="tflm", input=art.input, output=art.output)
            model = Model(opened.checked_path(source), ref, manifest.preprocessing, engine="tflm")
            model.raw_dtype = manifest.input.dtype
            return ref, model
    have = ", ".join(a.format for a in manifest.artifacts)
    raise EdgekdError(f"the bundle has no int8 TFLite model (it has {have})", "build it for an MCU profile (--profile cortex-m4f) or convert with --to tflm-int8,c")


def _bundled_library(opened: Bundle) -> Optional[Path]:
    """A C library the bundle carries (checked against the manifest's hashes), if any."""
    for art in opened.manifest.artifacts:
        if art.format.startswith("c"):
            # Every file checked against the manifest's sha256: C code edited after generation is refused here.
            for name in opened.artifact_files(art):
                opened.checked_path(name)
            path = Path(opened.path(art.path))
            folder = path if path.is_dir() else path.parent
            if (folder / HEADER).is_file():
                return folder
    return None


def _compile_library(opened: Bundle, art, out_dir: Path) -> Path:
    try:
        from ..ccompile import compile_tflite
    except ImportError as exc:
        raise EdgekdError(f"the C compiler for models (edgekd.ccompile) is not available: {exc}", "pass a folder written by edgekd convert STUDENT --to c") from None
    blob = Path(opened.checked_path(art.path)).read_bytes()
    return Path(compile_tflite(blob, str(out_dir)).dir)


def _gcc_version(tools: Tools) -> str:
    out = subprocess.run([tools.gcc, "-dumpversion"], capture_output=True, text=True, timeout=30).stdout.strip()
    return f"arm-none-eabi-gcc {out} -O2"


def _library_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.[ch]")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _run_in_images(library: Path, q: np.ndarray, c, folder: Path, tools: Tools, timeout_s: float, by_kernel: bool = False):
    """Build and run as many images as the samples need (SAMPLE_BYTES_PER_IMAGE each), one after another, and
    merge their runs; the flash and RAM figures are the first image's (every image holds the same model)."""
    per_image = max(1, SAMPLE_BYTES_PER_IMAGE // q.shape[1])
    images, runs = [], []
    for k, start in enumerate(range(0, len(q), per_image)):
        images.append(build_firmware(library, q[start:start + per_image], c.name, folder if start == 0 else folder / f"part{k}", tools, kernel_timing=by_kernel))
        runs.append(run_firmware(tools, images[-1], timeout_s=timeout_s))
    if len(runs) == 1:
        return images[0], runs[0]
    merged = EmulatorRun(
        outputs=np.concatenate([r.outputs for r in runs]), instructions=np.concatenate([r.instructions for r in runs]),
        stack_bytes=np.concatenate([r.stack_bytes for r in runs]), instructions_per_tick=runs[0].instructions_per_tick,
        wall_seconds=sum(r.wall_seconds for r in runs), command=runs[0].command,
    )
    for r in runs:
        for name, (calls, insns) in r.kernels.items():
            total = merged.kernels.setdefault(name, [0, 0.0])
            total[0] += calls
            total[1] += insns
    return images[0], merged


def firmware(
    source, core: str = "cortex-m4f", samples: Optional[int] = None, bundle: Optional[str] = None,
    out_dir: Optional[str] = None, report_out: Optional[str] = None, timeout_s: float = DEFAULT_TIMEOUT_S,
    tools: Optional[Tools] = None, device: Optional[str] = None, by_kernel: bool = False,
) -> FirmwareResult:
    """Build, emulate and check the model of ``source`` (a bundle, or a C library folder with ``bundle``) on
    ``core``; NotBitExactError unless every sample's output bytes equal tflite-micro's. More samples than one image
holds run in several images. ``timeout_s`` bounds each emulator run. ``by_kernel`` adds instructions per kernel
(``report["instructions"]["by_kernel"]``). ``out_dir`` keeps the
    firmware and the compiled library (``result.kept_in``); without it they are built in a temporary folder and
    deleted, and only the report remains. ``report_out`` writes the profile report there."""
    c = get_core(core)
    if samples is not None and samples < 1:
        raise EdgekdError(f"--samples must be at least 1 (got {samples})")
    if timeout_s <= 0:
        raise EdgekdError(f"--timeout must be positive (got {timeout_s:g})")
    tools = tools or find_tools()
    source = Path(source)
    if not source.exists():
        raise EdgekdError(f"{source} does not exist", "pass a bundle folder or .zip, or a C library folder")
    library = source if source.is_dir() and (source / HEADER).is_file() else None
    work = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="edgekd-firmware-"))
    try:
        with Bundle.open(str(_bundle_of(source, bundle) if library else source)) as opened:
            art, model = _reference(opened)
            library = library or _bundled_library(opened) or _compile_library(opened, art, work / "c")
            x, y, host = opened.load_eval()
            n = min(samples or len(x), len(x))
            q = np.asarray(model.prepare(x[:n]))
            reference = np.asarray(model.backend.invoke(q)).reshape(n, -1).astype(np.int8)
            tflm_arena = model.backend.describe().get("arena_used")
            image, run = _run_in_images(library, q.reshape(n, -1), c, work / c.name, tools, timeout_s, by_kernel)
            if run.outputs.shape != reference.shape:
                raise NotBitExactError(f"the firmware prints {run.outputs.shape[1]} output bytes per sample, tflite-micro gives {reference.shape[1]}", "the C library was compiled from another model")
            mismatched = int(np.sum(np.any(run.outputs != reference, axis=1)))
            scores = (run.outputs.astype(np.float32) - np.float32(art.output.zero_point)) * np.float32(art.output.scale)
            report = firmware_report(
                manifest=opened.manifest, manifest_sha256=sha256_file(opened.path(MANIFEST_NAME)), core=c,
                emulator=tools.qemu_version(), compiler=_gcc_version(tools), image=image, run=run,
                outputs_float=scores, y=y, host_outputs=host, bit_exact=n - mismatched, tflm_arena=tflm_arena,
                library=f"{library.name} (sha256 {_library_digest(library)[:16]})", device=device,
            )
    finally:
        if not out_dir:
            shutil.rmtree(work, ignore_errors=True)
    if mismatched:
        first = int(np.argmax(np.any(run.outputs != reference, axis=1)))
        raise NotBitExactError(
            f"the {c.name} firmware's outputs differ from tflite-micro's on {mismatched} of {n} samples (first: sample {first}); no report written",
            "a C kernel does not follow TFLite's int8 arithmetic: report it with the bundle",
        )
    if report_out:
        write_report(report, report_out)
    return FirmwareResult(report=report, image=image, run=run, reference=reference, library_dir=library, mismatched=mismatched,
                          kept_in=Path(out_dir) if out_dir else None)
