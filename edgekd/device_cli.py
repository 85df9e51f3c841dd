"""`edgekd size` and `edgekd profiles ...`: the commands about devices (which student fits one, what a profile
says, a profile fitted to what devices measured). Registered on the main app by ``edgekd.cli``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

profiles_app = typer.Typer(no_args_is_help=True, help="List and inspect device profiles.")


def size(
    profile: str = typer.Option(..., help="device profile name or YAML path"),
    input_shape: Optional[str] = typer.Option(None, help="H,W,C (or T,C for signals, or a single length for tabular data); read from --data when given"),
    classes: Optional[int] = typer.Option(None, help="number of classes (read from --data when given)"),
    family: Optional[str] = typer.Option(None, help="mobilenetv3 (images on phones, MCUs), resnet (images on GPUs, desktop CPUs), dscnn (audio, 1-D signals) or mlp (tabular); default: by input shape"),
    upscale: bool = typer.Option(False, "--upscale", help="also try input resolutions above the data's own"),
    data: Optional[str] = typer.Option(None, help="labelled data: rank the fitting students by accuracy (a short tournament) instead of by cost"),
    teacher: Optional[Path] = typer.Option(None, help="with --data: the teacher whose soft labels the tournament trains on and whose accuracy sets the target"),
    time_budget: str = typer.Option("5m", help="with --data: wall time for the tournament"),
    retain: float = typer.Option(0.97, help="with --data: the accuracy target, a fraction of the teacher's"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the fit report here"),
    verify: bool = typer.Option(True, help="convert the best candidates and check measured size and memory"),
):
    """Without --data: the largest student of FAMILY that fits every budget of PROFILE. With --data (and --teacher):
    the smallest fitting student that keeps --retain of the teacher's accuracy, ranked by a short tournament."""
    from .errors import EdgekdError
    from .profiles import load_profile
    from .sizing import size_student

    if data is not None:
        from .ranking import rank_by_accuracy

        if teacher is None:
            raise EdgekdError("--data ranks students against a teacher's accuracy", "pass --teacher too")
        ranked = rank_by_accuracy(load_profile(profile), teacher, data, family=family, upscale=upscale, time_budget=time_budget, retain=retain)
        typer.echo(ranked.table())
        if json_out:
            json_out.write_text(json.dumps(ranked.to_dict(), indent=2))
        return
    if input_shape is None or classes is None:
        raise EdgekdError("size needs --input-shape and --classes (or --data and --teacher)", "e.g. --input-shape 32,32,3 --classes 10")
    try:
        shape = tuple(int(v) for v in input_shape.split(","))
    except ValueError:
        raise EdgekdError(f"--input-shape {input_shape!r} is not a comma-separated list of integers", "e.g. --input-shape 32,32,3")
    if not shape or any(v <= 0 for v in shape) or classes < 2:
        raise EdgekdError(f"--input-shape {input_shape!r} / --classes {classes}: sizes must be positive and classes at least 2", "e.g. --input-shape 32,32,3 --classes 10")
    report = size_student(load_profile(profile), shape, classes, family=family, verify=verify, upscale=upscale)
    typer.echo(f"student {report.spec}: {report.cost.params} params, {report.cost.macs} MACs ({report.precision}), best of {report.searched} candidates")
    for key, u in report.usage.items():
        source = f"measured; estimate {u['estimate']:.4g}" if u["source"] == "measured" else "estimate"
        typer.echo(f"  {key:13s} {u['used']:>14.4g} of {u['limit']:>12.4g}  {u['percent']:6.1f}%  ({source})")
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))


@profiles_app.command("list")
def profiles_list():
    """Built-in device profiles."""
    from .profiles import available_profiles, load_profile

    for name in available_profiles():
        p = load_profile(name)
        typer.echo(f"{name:18s} {p.device_class:9s} {', '.join(p.formats):36s} {p.description}")


@profiles_app.command("show")
def profiles_show(name: str):
    """Print one profile, validated."""
    import yaml

    from .profiles import load_profile

    typer.echo(yaml.safe_dump(load_profile(name).model_dump(), sort_keys=False))


@profiles_app.command("fit-latency")
def profiles_fit_latency(
    name: str = typer.Argument(..., help="device profile name or YAML path"),
    more_reports: Optional[List[Path]] = typer.Argument(None, hidden=True),
    reports: List[Path] = typer.Option(..., "--reports", help="runtime report JSON(s) measured on the device"),
    bundle: Optional[List[Path]] = typer.Option(None, "--bundle", help="the bundle(s) the reports measured, for the model's MACs"),
    out: Optional[Path] = typer.Option(None, help="where to write the fitted profile (default: NAME.latency-fit.yaml here)"),
):
    """Fit PROFILE's compute efficiency to measured latency and write the fitted profile."""
    from .profiles import save_profile
    from .sizing import fit_latency

    files = list(reports) + list(more_reports or [])
    cal = fit_latency(name, [str(f) for f in files], [str(b) for b in bundle] if bundle else None)
    target = out or Path(f"{cal.profile.name}.latency-fit.yaml")
    save_profile(cal.profile, target, f"{cal.profile.name} latency fitted by edgekd from {len(files)} report(s): " + ", ".join(str(f) for f in files))
    typer.echo(f"efficiency {cal.efficiency_before:.4g} -> {cal.efficiency_after:.4g}, overhead {cal.overhead_before_ms:.4g} -> {cal.overhead_after_ms:.4g} ms")
    for p in cal.points:
        typer.echo(f"  {p['source']}: {p['macs']:.4g} MACs, measured p50 {p['p50_ms']:.4g} ms, estimate {p['estimate_before_ms']:.4g} -> {p['estimate_after_ms']:.4g} ms")
    typer.echo(f"latency-fitted profile: {target}")


# The command's first name, kept so that scripts written against it still run ("calibration" now means int8 data).
profiles_app.command("calibrate", hidden=True)(profiles_fit_latency)
