"""``edgekd app serve DIR``: serve a written phone app over HTTP or, with a certificate, HTTPS.

A phone's browser turns the camera and the service worker on only in a secure context: HTTPS, or localhost on
the phone itself. So from a phone on the same network the app needs ``--cert``/``--key`` (a local certificate
the phone trusts; the README shows how to make one). Standard library only: a static folder needs no framework.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import socket
import ssl
import sys
from pathlib import Path
from typing import Optional, Union

from ..errors import EdgekdError
from .writer import APP_CONFIG

MIME = {
    ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming refuses any other type
    ".webmanifest": "application/manifest+json",
    ".js": "text/javascript",
    ".json": "application/json",
    ".bin": "application/octet-stream",
    ".tflite": "application/octet-stream",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}

    def end_headers(self):
        # The service worker decides what is cached; the browser's HTTP cache must not pin an old sw.js or app.json.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if os.environ.get("EDGEKD_APP_LOG"):
            super().log_message(format, *args)


def check_app_dir(directory: Union[str, Path]) -> Path:
    directory = Path(directory)
    config = directory / APP_CONFIG
    try:
        producer = json.loads(config.read_text()).get("producer", "")
    except (OSError, ValueError, AttributeError):
        producer = ""
    if not str(producer).startswith("edgekd "):
        raise EdgekdError(f"{directory} is not a phone app written by edgekd (no readable {APP_CONFIG})", "write one with `edgekd app BUNDLE --out DIR`")
    return directory


def _tls_context(cert: str, key: Optional[str]) -> ssl.SSLContext:
    for path in (cert, key):
        if path and not os.path.isfile(path):
            raise EdgekdError(f"no such file: {path}", "make a certificate first (see the README's phone app section)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise EdgekdError(f"cannot use the certificate {cert}" + (f" with the key {key}" if key else "") + f": {exc}",
                          "pass a PEM certificate and its unencrypted PEM private key")
    return context


def make_server(directory: Union[str, Path], host: str = "127.0.0.1", port: int = 8443, cert: Optional[str] = None,
                key: Optional[str] = None) -> http.server.ThreadingHTTPServer:
    """A server for the app in ``directory``, bound (port 0: any free port) but not yet serving."""
    directory = check_app_dir(directory)
    if key and not cert:
        raise EdgekdError("--key needs --cert", "pass the certificate too")
    context = _tls_context(cert, key) if cert else None
    handler = functools.partial(_Handler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except (OSError, socket.gaierror) as exc:
        raise EdgekdError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", "choose another --port or --host")
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def serve_app(directory: Union[str, Path], host: str = "127.0.0.1", port: int = 8443, cert: Optional[str] = None,
              key: Optional[str] = None) -> None:
    """Serve until interrupted; says where to open it and, on plain http off localhost, why the camera stays off."""
    server = make_server(directory, host, port, cert, key)
    scheme = "https" if cert else "http"
    bound = server.server_address[1]
    shown = host if host not in ("0.0.0.0", "::") else _lan_address()
    sys.stderr.write(f"phone app on {scheme}://{shown}:{bound}/\n")
    if scheme == "http" and host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write("plain http off localhost: phones will not start the camera or work offline; pass --cert and --key\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _lan_address() -> str:
    # The address this machine would use to reach the network (no packet is sent by a UDP connect).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"
