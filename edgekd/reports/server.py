"""The collector: devices POST reports to /v1/reports; each is checked (token, size, schema), stored,
and acknowledged only once it is committed.

Answers: 201 stored; 200 already stored (a resend of the same report id: counted once); 401 wrong or
missing token; 400 not JSON or an Idempotency-Key that differs from the report id; 409 a report id
reused for different contents; 413 over the size limit; 422 not a valid report; 503 the store failed
(nothing stored: the device keeps the report and resends it). Never a 500 for anything a client sends.
"""
from __future__ import annotations

import hmac
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import EdgekdError
from .schema import MAX_REPORT_BYTES, ReportError, parse_report
from .store import DuplicateMismatch, Store, StoreError, open_store

TOKEN_ENV = "EDGEKD_REPORTS_TOKEN"


def _error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


def create_app(store: Store, token: str, max_bytes: int = MAX_REPORT_BYTES) -> FastAPI:
    """The ASGI app over ``store``; ``token`` is the shared bearer token devices send."""
    if not token:
        raise EdgekdError("the collector needs a token", f"pass --token or set {TOKEN_ENV}")
    expected = ("Bearer " + token).encode("utf-8")
    app = FastAPI(title="edgekd report collector", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store

    @app.post("/v1/reports")
    async def post_report(request: Request):
        given = request.headers.get("authorization", "").encode("utf-8")
        if not hmac.compare_digest(given, expected):
            return _error(401, "missing or wrong token", **{"WWW-Authenticate": "Bearer"})
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


def serve(db: Optional[str], host: str, port: int, token: str, max_bytes: int = MAX_REPORT_BYTES, log_level: str = "warning") -> None:
    """Run the collector until interrupted (uvicorn, one process; SQLite serialises writes anyway)."""
    import uvicorn

    store = open_store(db)
    try:
        uvicorn.run(create_app(store, token, max_bytes), host=host, port=port, log_level=log_level)
    finally:
        store.close()
