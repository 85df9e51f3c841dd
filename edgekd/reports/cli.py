"""`edgekd reports ...` (the collector and its tables) and `edgekd bundle ...` (signing): thin commands
over edgekd.reports and edgekd_runtime.signing. Bundle signing sits here because it is the other half
of the device trust loop: the host signs, the device verifies and reports back."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import EdgekdError

reports_app = typer.Typer(no_args_is_help=True, help="Collect device reports and compare them with what the host expected.")
token_app = typer.Typer(no_args_is_help=True, help="Per-device tokens for the collector: create (the secret is shown once), list, revoke.")
reports_app.add_typer(token_app, name="token")
bundle_app = typer.Typer(no_args_is_help=True, help="Sign bundles (ed25519) and check their signatures.")

DB_HELP = "sqlite:///PATH, a file path, or postgresql://... (default: $EDGEKD_REPORTS_DB or ./edgekd-reports.sqlite)"


@reports_app.command("serve")
def reports_serve(
    token: Optional[str] = typer.Option(None, envvar="EDGEKD_REPORTS_TOKEN", help="a shared bearer token accepted for any device id (or $EDGEKD_REPORTS_TOKEN); per-device tokens from `edgekd reports token create` need none"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 to accept devices on the network)"),
    port: int = typer.Option(8765),
    max_bytes: int = typer.Option(1 << 20, help="largest report accepted, in bytes"),
    ssl_certfile: Optional[Path] = typer.Option(None, help="serve HTTPS with this PEM certificate (uvicorn's --ssl-certfile)"),
    ssl_keyfile: Optional[Path] = typer.Option(None, help="the certificate's PEM private key (uvicorn's --ssl-keyfile)"),
    allow_origin: Optional[List[str]] = typer.Option(None, help="a web page origin whose browser may send reports, e.g. the phone app's https://192.168.1.20:8443 (repeat for more; never '*')"),
):
    """Run the HTTP collector: POST /v1/reports (validated, stored, then acknowledged), GET /v1/health."""
    from .server import serve

    serve(db, host, port, token, max_bytes=max_bytes,
          ssl_certfile=str(ssl_certfile) if ssl_certfile else None, ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
          allow_origins=allow_origin)


@token_app.command("create")
def token_create(
    device_id: str = typer.Argument(..., help="the device id its reports carry (edgekd-runtime --device-id)"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
):
    """Make a token for one device. The secret is printed once, here, and stored only as a hash."""
    from .databases import open_store

    store = open_store(db)
    try:
        made = store.create_token(device_id)
    finally:
        store.close()
    # The secret alone on stdout, so `T=$(edgekd reports token create cam-07)` captures just it.
    typer.echo(f"token {made['token_id']} for device {made['device_id']}: shown once, store it on the device now", err=True)
    typer.echo(made["token"])


@token_app.command("list")
def token_list(
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    device: Optional[str] = typer.Option(None, help="only this device id"),
):
    """Every token's id, device, creation and revocation time (never a secret)."""
    from .databases import open_store

    store = open_store(db)
    try:
        tokens = store.list_tokens(device=device)
    finally:
        store.close()
    if not tokens:
        typer.echo("no tokens" + (f" for device {device}" if device else ""), err=True)
        return
    rows = [("token", "device", "created", "revoked")]
    rows += [(t["token_id"], t["device_id"], t["created"], t["revoked"] or "-") for t in tokens]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


@token_app.command("revoke")
def token_revoke(
    token_ids: Optional[List[str]] = typer.Argument(None, help="token ids (as listed) or whole tokens"),
    device: Optional[str] = typer.Option(None, help="revoke every token of this device id"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
):
    """Revoke tokens: a running collector answers 401 to them from the next request on."""
    from .databases import open_store

    if not token_ids and not device:
        raise EdgekdError("nothing to revoke", "name token ids (edgekd reports token list) or pass --device")
    store = open_store(db)
    try:
        done = store.revoke_tokens(token_ids or [], device=device)
    finally:
        store.close()
    typer.echo(f"revoked {len(done)} token(s)" + (f": {', '.join(done)}" if done else ": none named was still active"))


@reports_app.command("show")
def reports_show(
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    bundle: Optional[str] = typer.Option(None, help="only this bundle (its name)"),
    device: Optional[str] = typer.Option(None, help="only this device id"),
    html: Optional[Path] = typer.Option(None, help="also write an HTML page with plots here"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the comparison as JSON here"),
):
    """Host-expected vs device-measured latency and accuracy per bundle and device, gaps flagged."""
    from .analysis import host_vs_device, latency_factors, table
    from .databases import open_store

    store = open_store(db)
    try:
        comparisons = host_vs_device(store, bundle=bundle, device=device)
        if not comparisons:
            raise EdgekdError("no reports match" + (f" bundle {bundle}" if bundle else "") + (f" device {device}" if device else ""), "send some with edgekd-runtime profile --report-to")
        rows = table(comparisons)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        factors = latency_factors(store)
        for name, c in factors.items():
            typer.echo(f"latency factor {name}: measured p50 = {c['factor']:.2f} x the profile's estimate ({int(c['reports'])} reports)")
        if json_out:
            json_out.write_text(json.dumps({"comparisons": [c.to_dict() for c in comparisons], "latency_factors": factors}, indent=2))
        if html:
            from .html import render_html

            typer.echo(f"html: {render_html(store, comparisons, html, bundle=bundle, device=device)}")
    finally:
        store.close()


@reports_app.command("fit-latency")
def reports_fit_latency(
    profile: str = typer.Argument(..., help="device profile name (as the reports name it)"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    bundle: Optional[str] = typer.Option(None, help="only reports of this bundle"),
    device: Optional[str] = typer.Option(None, help="only reports of this device id"),
    out: Optional[Path] = typer.Option(None, help="where to write the fitted profile (default: PROFILE.latency-fit.yaml here)"),
):
    """Fit PROFILE's compute efficiency to the latency its devices reported (edgekd profiles fit-latency, from the store)."""
    from ..profiles import save_profile
    from .analysis import fit_latency_from_store
    from .databases import open_store

    store = open_store(db)
    try:
        cal = fit_latency_from_store(store, profile, bundle=bundle, device=device)
    finally:
        store.close()
    target = out or Path(f"{cal.profile.name}.latency-fit.yaml")
    save_profile(cal.profile, target, f"{cal.profile.name} latency fitted by edgekd from {len(cal.points)} stored report(s)")
    typer.echo(f"efficiency {cal.efficiency_before:.4g} -> {cal.efficiency_after:.4g}, overhead {cal.overhead_before_ms:.4g} -> {cal.overhead_after_ms:.4g} ms ({len(cal.points)} reports)")
    typer.echo(f"latency-fitted profile: {target}")


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


# The command's first name, kept so that scripts written against it still run ("calibration" now means int8 data).
reports_app.command("calibrate", hidden=True)(reports_fit_latency)
