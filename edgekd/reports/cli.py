"""`edgekd reports ...` (the collector and its tables) and `edgekd bundle ...` (signing): thin commands
over edgekd.reports and edgekd_runtime.signing. Bundle signing sits here because it is the other half
of the device trust loop: the host signs, the device verifies and reports back."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import EdgekdError

reports_app = typer.Typer(no_args_is_help=True, help="Collect device reports and compare them with what the host expected.")
bundle_app = typer.Typer(no_args_is_help=True, help="Sign bundles (ed25519) and check their signatures.")

DB_HELP = "sqlite:///PATH, a file path, or postgresql://... (default: $EDGEKD_REPORTS_DB or ./edgekd-reports.sqlite)"


@reports_app.command("serve")
def reports_serve(
    token: str = typer.Option(..., envvar="EDGEKD_REPORTS_TOKEN", help="bearer token devices must send (or $EDGEKD_REPORTS_TOKEN)"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 to accept devices on the network)"),
    port: int = typer.Option(8765),
    max_bytes: int = typer.Option(1 << 20, help="largest report accepted, in bytes"),
):
    """Run the HTTP collector: POST /v1/reports (validated, stored, then acknowledged), GET /v1/health."""
    from .server import serve

    typer.echo(f"collector on http://{host}:{port}/v1/reports", err=True)
    serve(db, host, port, token, max_bytes=max_bytes)


@reports_app.command("show")
def reports_show(
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    bundle: Optional[str] = typer.Option(None, help="only this bundle (its name)"),
    device: Optional[str] = typer.Option(None, help="only this device id"),
    html: Optional[Path] = typer.Option(None, help="also write an HTML page with plots here"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the comparison as JSON here"),
):
    """Host-expected vs device-measured latency and accuracy per bundle and device, gaps flagged."""
    from .analysis import compare, latency_calibration, table
    from .store import open_store

    store = open_store(db)
    try:
        comparisons = compare(store, bundle=bundle, device=device)
        if not comparisons:
            raise EdgekdError("no reports match" + (f" bundle {bundle}" if bundle else "") + (f" device {device}" if device else ""), "send some with edgekd-runtime profile --report-to")
        rows = table(comparisons)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        calibration = latency_calibration(store)
        for name, c in calibration.items():
            typer.echo(f"calibration {name}: measured p50 = {c['factor']:.2f} x the profile's estimate ({int(c['reports'])} reports)")
        if json_out:
            json_out.write_text(json.dumps({"comparisons": [c.to_dict() for c in comparisons], "latency_calibration": calibration}, indent=2))
        if html:
            from .html import render_html

            typer.echo(f"html: {render_html(store, comparisons, html, bundle=bundle, device=device)}")
    finally:
        store.close()


@reports_app.command("calibrate")
def reports_calibrate(
    profile: str = typer.Argument(..., help="device profile name (as the reports name it)"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    bundle: Optional[str] = typer.Option(None, help="only reports of this bundle"),
    device: Optional[str] = typer.Option(None, help="only reports of this device id"),
    out: Optional[Path] = typer.Option(None, help="where to write the calibrated profile (default: PROFILE.calibrated.yaml here)"),
):
    """Fit PROFILE's compute efficiency to the latency its devices reported (edgekd profiles calibrate, from the store)."""
    from ..profiles import save_profile
    from .analysis import calibrate_from_store
    from .store import open_store

    store = open_store(db)
    try:
        cal = calibrate_from_store(store, profile, bundle=bundle, device=device)
    finally:
        store.close()
    target = out or Path(f"{cal.profile.name}.calibrated.yaml")
    save_profile(cal.profile, target, f"{cal.profile.name} calibrated by edgekd from {len(cal.points)} stored report(s)")
    typer.echo(f"efficiency {cal.efficiency_before:.4g} -> {cal.efficiency_after:.4g}, overhead {cal.overhead_before_ms:.4g} -> {cal.overhead_after_ms:.4g} ms ({len(cal.points)} reports)")
    typer.echo(f"calibrated profile: {target}")


@bundle_app.command("keygen")
def bundle_keygen(key: Path = typer.Argument(..., help="private key file to create; the public key goes to KEY.pub")):
    """Make an ed25519 key pair for signing bundles."""
    from edgekd_runtime.signing import generate_keypair

    private, public = generate_keypair(str(key))
    typer.echo(f"private key {private} (keep it on the host)\npublic key  {public} (give it to devices: --public-key)")


@bundle_app.command("sign")
def bundle_sign(
    bundle: Path = typer.Argument(..., help="bundle folder or .zip"),
    key: Path = typer.Option(..., help="ed25519 private key (PEM) from `edgekd bundle keygen`"),
):
    """Sign a bundle in place: signature.json over manifest.json, which holds every file's sha256."""
    from edgekd_runtime import Bundle
    from edgekd_runtime.signing import sign_bundle

    # Sign only what verifies: a signature over a damaged bundle would vouch for the damage.
    Bundle.open(str(bundle)).close()
    doc = sign_bundle(str(bundle), str(key))
    typer.echo(f"signed {bundle} with key {doc['key_id']}")


@bundle_app.command("verify")
def bundle_verify(
    bundle: Path = typer.Argument(..., help="bundle folder or .zip"),
    public_key: Path = typer.Option(..., help="ed25519 public key (PEM)"),
):
    """Check a bundle's files and signature as a device would with --require-signature."""
    from edgekd_runtime import Bundle

    with Bundle.open(str(bundle), public_key=str(public_key), require_signature=True) as b:
        typer.echo(f"{bundle}: {len(b.manifest.files)} files match manifest.json; signature {b.signature}")
