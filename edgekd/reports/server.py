"""The collector: devices POST reports to /v1/reports; each is checked (token, size, schema), stored,
and acknowledged only once it is committed.

Tokens: per-device tokens from ``edgekd reports token create DEVICE_ID`` (kept as hashes in the store,
looked up on every request, so one created or revoked while the collector runs counts at once), and
optionally one shared token (``--token``) that any device may use for any device id.

Answers: 201 stored; 200 already stored (a resend of the same report id: counted once); 401 wrong,
missing or revoked token; 403 a device token used for a report of another device; 400 not JSON or an
Idempotency-Key that differs from the report id; 409 a report id reused for different contents; 413
over the size limit; 422 not a valid report; 503 the store failed (nothing stored: the device keeps the
report and resends it). Never a 500 for anything a client sends.

Browsers (the phone app, ``edgekd app``): the collector answers the CORS preflight of the origins named with
``allow_origins`` (``--allow-origin``) and no other; never ``*``, since every request carries a token.
"""
from __future__ import annotations

import hmac
import os
import re
import ssl
import sys
from typing import List, Optional, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import EdgekdError
from .schema import MAX_REPORT_BYTES, ReportError, parse_report
from .databases import open_store
from .store import DuplicateMismatch, Store, StoreError, token_id_of

TOKEN_ENV = "EDGEKD_REPORTS_TOKEN"
# An origin as a browser sends it: scheme, host and optional port; no path, no trailing slash.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def check_origins(origins: Optional[Sequence[str]]) -> List[str]:
    """The browser origins allowed to send reports, checked once; '*' refused (requests carry tokens)."""
    checked = []
    for origin in origins or ():
        if origin.strip() == "*":
            raise EdgekdError("--allow-origin '*' would let any web page send reports with a token a user typed in",
                              "name the phone app's origin instead, e.g. --allow-origin https://192.168.1.20:8443")
        if not _ORIGIN.match(origin.strip()):
            raise EdgekdError(f"--allow-origin {origin!r} is not an origin (scheme://host[:port], no path or trailing slash)",
                              "e.g. --allow-origin https://192.168.1.20:8443, as the browser's address bar shows the app")
        checked.append(origin.strip().lower())
    return checked


def _error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


def _unauthorized(message: str = "missing or wrong token") -> JSONResponse:
    return _error(401, message, **{"WWW-Authenticate": "Bearer"})


def create_app(store: Store, token: Optional[str] = None, max_bytes: int = MAX_REPORT_BYTES,
               allow_origins: Optional[Sequence[str]] = None) -> FastAPI:
    """The ASGI app over ``store``. Devices authenticate with their own token (``store.create_token``);
    ``token``, if given, is a shared bearer token accepted for any device id. ``allow_origins``: the web
    pages (the phone app's origin) whose browsers may post reports."""
    shared = ("Bearer " + token).encode("utf-8") if token else None
    origins = check_origins(allow_origins)
    app = FastAPI(title="edgekd report collector", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    if origins:
        from starlette.middleware.cors import CORSMiddleware

        # No credentials (cookies): the token travels in the Authorization header the preflight allows.
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key"], max_age=600)

    @app.post("/v1/reports")
    async def post_report(request: Request):
        given = request.headers.get("authorization", "")
        device_token = None
        if shared is None or not hmac.compare_digest(given.encode("utf-8"), shared):
            scheme, _, secret = given.partition(" ")
            secret = secret.strip()
            # Only strings shaped like our tokens reach the store: garbage costs no query.
            if scheme.lower() != "bearer" or token_id_of(secret) is None:
                return _unauthorized()
            try:
                device_token = await run_in_threadpool(store.find_token, secret)
            except StoreError as exc:
                return _error(503, f"not stored: {exc}")
            if device_token is None:
                return _unauthorized()
            if device_token["revoked"]:
                return _unauthorized(f"token {device_token['token_id']} was revoked on {device_token['revoked']}")
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _error(400, "Content-Length is not a number")
            if int(declared) > max_bytes:
                return _error(413, f"report is {declared} bytes, over the {max_bytes}-byte limit")
        body = bytearray()
        # Read in chunks and stop at the limit: a chunked upload has no Content-Length to check first.
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                return _error(413, f"report is over the {max_bytes}-byte limit")
        try:
            report = parse_report(bytes(body), max_bytes)
        except ReportError as exc:
            return _error(exc.status, str(exc))
        if device_token is not None and report["device_id"] != device_token["device_id"]:
            # A device's token vouches for that device only: one stolen token cannot speak for the fleet.
            return _error(403, f"token {device_token['token_id']} belongs to device {device_token['device_id']!r}, "
                               f"not to {report['device_id']!r} named in the report")
        key = request.headers.get("idempotency-key")
        if key is not None and key != report["report_id"]:
            return _error(400, "Idempotency-Key does not match the report's report_id")
        try:
            row_id, duplicate = await run_in_threadpool(store.add, report)
        except DuplicateMismatch as exc:
            return _error(409, str(exc))
        except StoreError as exc:
            return _error(503, f"not stored: {exc}")
        ack = {"stored": True, "report_id": report["report_id"], "id": row_id, "duplicate": duplicate}
        return JSONResponse(ack, status_code=200 if duplicate else 201)

    @app.get("/v1/health")
    async def health():
        try:
            count = await run_in_threadpool(store.count)
        except StoreError as exc:
            return _error(503, str(exc))
        return {"ok": True, "reports": count}

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # pragma: no cover - a bug, but never lose the store
        return _error(503, f"not stored: internal error {type(exc).__name__}")

    return app


def _check_certificate(certfile: str, keyfile: Optional[str]) -> None:
    # uvicorn would load these only once it starts, and fail with a traceback: check them first, in one line.
    for path in (certfile, keyfile):
        if path and not os.path.isfile(path):
            raise EdgekdError(f"no such file: {path}", "make a certificate first (see the README's collector section)")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise EdgekdError(f"cannot use the certificate {certfile}" + (f" with the key {keyfile}" if keyfile else "") + f": {exc}",
                          "pass a PEM certificate and its unencrypted PEM private key")


def serve(db: Optional[str], host: str, port: int, token: Optional[str] = None, max_bytes: int = MAX_REPORT_BYTES,
          log_level: str = "warning", ssl_certfile: Optional[str] = None, ssl_keyfile: Optional[str] = None,
          allow_origins: Optional[Sequence[str]] = None) -> None:
    """Run the collector until interrupted (uvicorn, one process; SQLite serialises writes anyway).
    With ``ssl_certfile`` (and ``ssl_keyfile`` unless the key is in the same PEM) it speaks HTTPS."""
    import uvicorn

    if ssl_keyfile and not ssl_certfile:
        raise EdgekdError("--ssl-keyfile needs --ssl-certfile", "pass the certificate too")
    if ssl_certfile:
        _check_certificate(ssl_certfile, ssl_keyfile)
    check_origins(allow_origins)
    store = open_store(db)
    try:
        if not token and store.active_tokens() == 0:
            # Started like this, the collector would answer 401 to every device: say why now, not per request.
            raise EdgekdError("no device can authenticate: there is no active device token and no --token",
                              f"create one with `edgekd reports token create DEVICE_ID`, or pass --token / set {TOKEN_ENV}")
        scheme = "https" if ssl_certfile else "http"
        sys.stderr.write(f"collector on {scheme}://{host}:{port}/v1/reports\n")
        uvicorn.run(create_app(store, token, max_bytes, allow_origins), host=host, port=port, log_level=log_level,
                    ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    finally:
        store.close()
