"""``edgekd app BUNDLE --out DIR`` (write the phone app) and ``edgekd app serve DIR``: thin commands over
edgekd.app.writer and edgekd.app.serve."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import click
import typer
from typer.core import TyperGroup


class _DefaultMake(TyperGroup):
    """``edgekd app BUNDLE ...`` means ``edgekd app make BUNDLE ...``: the common case needs no sub-command name."""

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["make"] + list(args)
        return super().parse_args(ctx, args)


app_app = typer.Typer(cls=_DefaultMake, no_args_is_help=True,
                      help="The phone app: `edgekd app BUNDLE --out DIR` writes it, `edgekd app serve DIR` serves it.")


def describe(result) -> str:
    art = result.artifact
    return (f"phone app: {result.out} ({len(result.files)} files, {result.bytes / 1e6:.1f} MB) running {art.format} "
            f"({art.bytes} bytes) on LiteRT.js; {result.eval_samples} eval samples for its self-check")


@app_app.command("make")
def app_make(
    bundle: Path = typer.Argument(..., help="bundle folder or .zip (a phone bundle with a TFLite artifact of float or uint8 inputs and outputs)"),
    out: Path = typer.Option(..., help="folder to write the app to"),
    artifact: Optional[str] = typer.Option(None, help="format of the artifact to run (default: the first one LiteRT.js can run)"),
    public_key: Optional[Path] = typer.Option(None, help="check the bundle's ed25519 signature with this public key first"),
    force: bool = typer.Option(False, help="replace an app already in --out"),
):
    """Write a static installable web app that runs BUNDLE in the phone's browser (LiteRT.js) and works offline."""
    from .writer import write_app

    result = write_app(bundle, out, artifact=artifact, force=force, public_key=str(public_key) if public_key else None)
    typer.echo(describe(result))
    typer.echo(f"try it: edgekd app serve {result.out}  (a phone on this network needs --host 0.0.0.0 --cert/--key: see the README)")


@app_app.command("serve")
def app_serve(
    directory: Path = typer.Argument(..., help="the app folder written by `edgekd app BUNDLE --out DIR`"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 for phones on the network)"),
    port: int = typer.Option(8443),
    cert: Optional[Path] = typer.Option(None, help="PEM certificate: serve HTTPS (phones start the camera only on HTTPS or localhost)"),
    key: Optional[Path] = typer.Option(None, help="the certificate's PEM private key"),
):
    """Serve the app folder (HTTPS with --cert/--key) until interrupted."""
    from .serve import serve_app

    serve_app(directory, host=host, port=port, cert=str(cert) if cert else None, key=str(key) if key else None)
