"""`edgekd firmware`: registered on the main app by ``edgekd.cli``; the work is ``edgekd.firmware.run.firmware``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer


def firmware_command(
    source: Path = typer.Argument(..., help="a bundle (folder or .zip) with an int8 TFLite artifact, or a C library folder (edgekd_model.h + .c)"),
    core: str = typer.Option("cortex-m4f", help="cortex-m4f (QEMU mps2-an386) or cortex-m7 (mps2-an500)"),
    samples: Optional[int] = typer.Option(None, help="run the first N eval samples (default: all)"),
    bundle: Optional[Path] = typer.Option(None, help="with a C library folder: the bundle it was compiled from (its eval samples)"),
    out: Optional[Path] = typer.Option(None, help="keep the C library and firmware images here (default: a temporary folder)"),
    report_out: Optional[Path] = typer.Option(None, help="write the profile report (JSON) here"),
    report_to: Optional[str] = typer.Option(None, help="send the report to this collector (edgekd reports serve); spooled if unreachable"),
    token: Optional[str] = typer.Option(None, help="collector token (or set EDGEKD_REPORT_TOKEN)"),
    timeout: float = typer.Option(600.0, help="seconds the emulator may run before it is killed and reported as hung"),
    by_kernel: bool = typer.Option(False, "--by-kernel", help="also count instructions per kernel (conv, depthwise, fc, ...)"),
):
    """Compile the model to C, build firmware for an emulated Cortex-M, run every eval sample in QEMU, check the
    output bytes against tflite-micro (bit-exact or fail) and report instructions, flash and RAM."""
    from ..errors import EdgekdError
    from .report import NOT_CYCLES
    from .run import firmware

    secret = token or os.environ.get("EDGEKD_REPORT_TOKEN")
    if report_to and not secret:
        raise EdgekdError("--report-to needs a collector token", "pass --token or set EDGEKD_REPORT_TOKEN (edgekd reports token create)")
    result = firmware(source, core=core, samples=samples, bundle=str(bundle) if bundle else None, out_dir=str(out) if out else None,
                      report_out=str(report_out) if report_out else None, timeout_s=timeout, by_kernel=by_kernel)
    rep = result.report
    ins, mem = rep["instructions"], rep["memory"]
    typer.echo(f"{rep['device']['emulator']}: bit-exact on {rep['bit_exact']['equal']}/{rep['bit_exact']['samples']} samples against tflite-micro")
    per_mac = f", {ins['per_mac']:.2f} per MAC" if ins["per_mac"] else ""
    typer.echo(f"  instructions per inference {ins['per_inference_mean']:,.0f}{per_mac} ({NOT_CYCLES})")
    typer.echo(f"  latency estimate p50 {rep['latency']['p50_ms']:.3f} ms at {rep['device']['clock_hz'] / 1e6:g} MHz (one instruction per cycle)")
    for name, k in (ins.get("by_kernel") or {}).items():
        typer.echo(f"    {name:22s} {k['calls']:6.0f} calls {k['instructions']:>14,.0f} instructions ({100 * k['instructions'] / ins['per_inference_mean']:.1f}%)")
    tflm = f" (tflite-micro arena {mem['tflm_arena_bytes']} B)" if mem["tflm_arena_bytes"] else ""
    typer.echo(f"  flash {mem['flash_bytes']} B, RAM {mem['ram_bytes']} B = arena/static {mem['static_ram_bytes']} B + stack {mem['stack_high_water_bytes']} B"
               f" + caller's buffers {mem['input_output_bytes']} B{tflm}")
    if "accuracy" in rep:
        typer.echo(f"  accuracy {100 * rep['accuracy']:.2f}%, agreement with the host {100 * rep.get('agreement_with_host', 0):.2f}%")
    if result.kept_in:
        compiled_here = result.kept_in in result.library_dir.parents
        typer.echo(f"firmware images{' and the compiled C library' if compiled_here else ''} kept in {result.kept_in}")
    if report_out:
        typer.echo(f"report: {report_out}")
    if report_to:
        from edgekd_runtime.report import DeliveryError, send_report, spool_report

        try:
            send_report(rep, report_to, secret)
            typer.echo(f"report sent to {report_to}")
        except DeliveryError as exc:
            if exc.permanent:
                raise EdgekdError(f"the collector refused the report: {exc}") from None
            typer.echo(f"report spooled ({exc}): {spool_report(rep)}; send it later with edgekd-runtime send")
