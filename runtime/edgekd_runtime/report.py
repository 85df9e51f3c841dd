"""Reports: a versioned JSON document per profile or monitor run, written to a file and/or sent to the
host's collector, spooled on disk when the host cannot be reached and sent again on a later run.

Standard library only (urllib): a device has no business installing an HTTP client for this.

Delivery is at-least-once; the report's ``report_id`` (also sent as the Idempotency-Key header) makes it
exactly-once on the host, which stores a given id once and acknowledges every resend of it. A spooled
report is deleted only after the host acknowledged that it stored it.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import time
import uuid
from typing import Any, Dict, List, Optional

REPORT_SCHEMA = "edgekd.report"
REPORT_SCHEMA_VERSION = 1
KINDS = ("profile", "monitor")
# The collector refuses larger bodies; a profile report is a few kB.
MAX_REPORT_BYTES = 1 << 20
ENDPOINT = "/v1/reports"
DEFAULT_SPOOL = os.path.join(os.path.expanduser("~"), ".cache", "edgekd", "spool")


def spool_dir(path: Optional[str] = None) -> str:
    return path or os.environ.get("EDGEKD_SPOOL") or DEFAULT_SPOOL


def device_id(explicit: Optional[str] = None) -> str:
    return explicit or os.environ.get("EDGEKD_DEVICE_ID") or platform.node() or "unknown"


def make_report(body: Dict[str, Any], kind: str = "profile", device: Optional[str] = None) -> Dict[str, Any]:
    """Wrap a profile() or monitor body into a report: the body's keys plus the envelope's.

    Flat rather than nested so that a report file reads like the profile itself (``report["latency"]``).
    """
    from . import __version__

    if kind not in KINDS:
        raise ValueError("report kind must be one of %s" % (KINDS,))
    report = dict(body)
    report.update({
        "schema": REPORT_SCHEMA,
        "schema_version": REPORT_SCHEMA_VERSION,
        "report_id": uuid.uuid4().hex,
        "kind": kind,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "device_id": device_id(device),
        "runtime_version": __version__,
    })
    return report


def encode(report: Dict[str, Any]) -> bytes:
    # allow_nan=False: NaN is not JSON, and the collector would refuse it anyway.
    return json.dumps(report, sort_keys=True, allow_nan=False).encode("utf-8")


def write_atomic(path: str, data: bytes) -> None:
    """Write, flush to disk, then rename: a crash leaves the old file or the new one, never half of one."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_report(report: Dict[str, Any], path: str) -> None:
    write_atomic(path, json.dumps(report, indent=2, sort_keys=True, allow_nan=False).encode("utf-8"))


class DeliveryError(Exception):
    """The report did not reach the host's store. ``permanent`` when resending cannot help (the host
    refused the report itself); otherwise it stays in the spool for a later run."""

    def __init__(self, message, permanent=False, status=None):
        super(DeliveryError, self).__init__(message)
        self.permanent = permanent
        self.status = status


def endpoint(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith(ENDPOINT) else url + ENDPOINT


def send_report(report: Dict[str, Any], url: str, token: str, timeout: float = 10.0) -> Dict[str, Any]:
    """POST one report; returns the host's acknowledgement or raises DeliveryError."""
    import http.client
    import urllib.error
    import urllib.request

    data = encode(report)
    request = urllib.request.Request(
        endpoint(url),
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer " + token,
            "Idempotency-Key": str(report.get("report_id", "")),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc)
        # 401/403: the token may be fixed; 408/429/5xx: the host is busy or down. Keep those for later.
        permanent = 400 <= exc.code < 500 and exc.code not in (401, 403, 408, 429)
        raise DeliveryError("host answered %d: %s" % (exc.code, detail), permanent=permanent, status=exc.code)
    except (urllib.error.URLError, socket.timeout, OSError, http.client.HTTPException) as exc:
        # HTTPException: the connection broke mid-answer (IncompleteRead, BadStatusLine): not acknowledged.
        reason = getattr(exc, "reason", exc)
        raise DeliveryError("host unreachable: %s" % reason)
    try:
        ack = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise DeliveryError("host answered without a JSON acknowledgement")
    if not (isinstance(ack, dict) and ack.get("stored") is True and ack.get("report_id") == report.get("report_id")):
        raise DeliveryError("host did not acknowledge storing report %s" % report.get("report_id"))
    return ack


def _error_detail(exc) -> str:
    try:
        body = exc.read().decode("utf-8", "replace")
        parsed = json.loads(body)
        detail = parsed.get("detail", body) if isinstance(parsed, dict) else body
        return detail if isinstance(detail, str) else json.dumps(detail)[:300]
    except Exception:  # the error body is a courtesy; its absence must not hide the status
        return str(exc.reason)


def spool_report(report: Dict[str, Any], directory: Optional[str] = None) -> str:
    """Keep a report on disk for a later run; file names sort oldest first."""
    directory = spool_dir(directory)
    name = "%017.6f-%s.json" % (time.time(), report["report_id"])
    path = os.path.join(directory, name)
    write_atomic(path, encode(report))
    return path


def spooled(directory: Optional[str] = None) -> List[str]:
    directory = spool_dir(directory)
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, n) for n in sorted(os.listdir(directory)) if n.endswith(".json")]


def flush_spool(url: str, token: str, directory: Optional[str] = None, timeout: float = 10.0) -> Dict[str, Any]:
    """Send every spooled report, oldest first; stop at the first transient failure (the host is still down).

    Reports the host refuses for good move to ``rejected/`` beside them, so they neither block the queue
    nor vanish. Returns {"sent": [...], "duplicates": [...], "rejected": [...], "waiting": n, "error": message or None}.
    """
    result = {"sent": [], "duplicates": [], "rejected": [], "waiting": 0, "error": None}  # type: Dict[str, Any]
    pending = spooled(directory)
    for index, path in enumerate(pending):
        try:
            with open(path, "rb") as handle:
                report = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            _reject(path, directory)
            result["rejected"].append("%s (unreadable: %s)" % (os.path.basename(path), exc))
            continue
        try:
            ack = send_report(report, url, token, timeout=timeout)
        except DeliveryError as exc:
            if exc.permanent:
                _reject(path, directory)
                result["rejected"].append("%s (%s)" % (report.get("report_id"), exc))
                continue
            result["error"] = str(exc)
            result["waiting"] = len(pending) - index
            return result
        os.remove(path)
        result["sent"].append(report["report_id"])
        if ack.get("duplicate"):
            # Stored by an earlier attempt whose acknowledgement never arrived: counted once, as it should be.
            result["duplicates"].append(report["report_id"])
    return result


def _reject(path: str, directory: Optional[str]) -> None:
    target = os.path.join(spool_dir(directory), "rejected")
    os.makedirs(target, exist_ok=True)
    os.replace(path, os.path.join(target, os.path.basename(path)))


def deliver(report: Dict[str, Any], url: str, token: str, directory: Optional[str] = None, timeout: float = 10.0) -> Dict[str, Any]:
    """Send ``report`` after whatever an earlier run left in the spool; spool it if the host is unreachable.

    The new report goes to the spool first and is sent from there, so a crash between sending and
    acknowledging leaves it on disk to be resent (and counted once, by its id).
    """
    spool_report(report, directory)
    result = flush_spool(url, token, directory, timeout=timeout)
    result["report_id"] = report["report_id"]
    result["delivered"] = report["report_id"] in result["sent"]
    return result
