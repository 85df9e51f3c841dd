"""Reports: a versioned JSON document per profile or monitor run, written to a file and/or sent to the
host's collector, spooled on disk when the host cannot be reached and sent again on a later run.

Standard library only (urllib): a device has no business installing an HTTP client for this.

Delivery is at-least-once; the report's ``report_id`` (also sent as the Idempotency-Key header) makes it
exactly-once on the host, which stores a given id once and acknowledges every resend of it. A spooled
report is deleted only after the host acknowledged that it stored it.
"""

import datetime
import errno
import json
import os
import platform
import re
import socket
import time
import uuid
from typing import Any, Dict, List, Optional

from .errors import BadInputError

REPORT_SCHEMA = "edgekd.report"
REPORT_SCHEMA_VERSION = 1
KINDS = ("profile", "monitor")
# The collector refuses larger bodies; a profile report is a few kB.
MAX_REPORT_BYTES = 1 << 20
ENDPOINT = "/v1/reports"
DEFAULT_SPOOL = os.path.join(os.path.expanduser("~"), ".cache", "edgekd", "spool")
# The collector's rule too (edgekd.reports.schema): the id travels as an HTTP header, so no spaces or newlines.
REPORT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


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


def _no_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def parse_report(raw: bytes, source: str = "report") -> Dict[str, Any]:
    """Bytes of a saved or spooled report -> the report, checked enough to be sent; BadInputError otherwise.

    The collector validates the figures; this checks what sending needs: a JSON object of this schema with a
    usable id, that encodes back to strict JSON (no NaN, not nested beyond what json can write).
    """
    if len(raw) > MAX_REPORT_BYTES:
        raise BadInputError("%s is %d bytes, over the collector's %d-byte limit" % (source, len(raw), MAX_REPORT_BYTES))
    try:
        report = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except ValueError as exc:  # UnicodeDecodeError is one too
        raise BadInputError("%s is not a JSON report: %s" % (source, exc))
    except RecursionError:
        raise BadInputError("%s is nested too deeply to be a report" % source)
    if not isinstance(report, dict):
        raise BadInputError("%s is not a JSON object" % source)
    if report.get("schema") != REPORT_SCHEMA or report.get("schema_version") != REPORT_SCHEMA_VERSION:
        raise BadInputError(
            "%s is not an %s version %d report (schema %.40r, version %.20r)"
            % (source, REPORT_SCHEMA, REPORT_SCHEMA_VERSION, report.get("schema"), report.get("schema_version")),
            "only reports written by edgekd-runtime profile or monitor can be sent",
        )
    report_id = report.get("report_id")
    if not (isinstance(report_id, str) and REPORT_ID.match(report_id)):
        raise BadInputError("%s has no valid report_id (8 to 64 letters, digits, _ or -)" % source)
    if report.get("kind") not in KINDS:
        raise BadInputError("%s has kind %.40r, not one of %s" % (source, report.get("kind"), ", ".join(KINDS)))
    try:
        encode(report)
    except ValueError:
        # Python's json reads 1e999 as inf, which strict JSON (and the collector) cannot hold.
        raise BadInputError("%s holds a number out of JSON's range (inf or NaN)" % source)
    except RecursionError:
        raise BadInputError("%s is nested too deeply to be a report" % source)
    return report


def read_report(path: str) -> Dict[str, Any]:
    """A report file (a spooled one, or one written with --json); BadInputError when it cannot be sent."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise BadInputError("cannot read report %s: %s" % (path, exc.strerror or exc))
    return parse_report(raw, os.path.basename(path))


def write_atomic(path: str, data: bytes) -> None:
    """Write, flush to disk, then rename: a crash leaves the old file or the new one, never half of one."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A full disk fails the write or the flush: leave no half-written file behind to fill it further.
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    # The rename is in the folder's own data: without this a power cut can undo it (no file, or the old one).
    _fsync_dir(parent)


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

    if not url.lower().startswith(("http://", "https://")):
        raise BadInputError("collector URL %.80r is not an http:// or https:// URL" % url, "e.g. --report-to http://host:8765")
    data = encode(report)
    try:
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
    except ValueError as exc:
        # urllib and http.client raise ValueError for a URL they cannot parse or a header holding a newline:
        # the URL or the token is wrong, and no resend can fix that.
        raise BadInputError("cannot send to %.80r: %s" % (url, exc), "check --report-to and the token")
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
    path = _spool_path(report, directory)
    write_atomic(path, encode(report))
    return path


def _spool_path(report: Dict[str, Any], directory: Optional[str]) -> str:
    directory = spool_dir(directory)
    if not os.path.isdir(directory):
        os.makedirs(directory, exist_ok=True)
        # A new spool folder is itself a name in its parent: make it durable, or a power cut loses the folder.
        _fsync_dir(os.path.dirname(os.path.abspath(directory)))
    return os.path.join(directory, "%017.6f-%s.json" % (time.time(), report["report_id"]))


def spooled(directory: Optional[str] = None) -> List[str]:
    directory = spool_dir(directory)
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, n) for n in sorted(os.listdir(directory)) if n.endswith(".json")]


# Concurrent flushers (two runs at once, a cron `send` beside a `profile`) share one spool. Each takes a report
# by renaming it to a name of its own before sending it: rename is atomic, so exactly one flusher wins and the
# others see it gone and skip it. A claim names its process; one left by a process that died mid-send is
# renamed back by the next flush, so a crash never strands a report.
CLAIM_SUFFIX = ".sending"
_held = set()  # type: set  # claim file names this process holds now (set.add/discard are atomic under the GIL)


def _fsync_dir(directory: str) -> None:
    """Make the renames and removals done in ``directory`` durable: fsync of a file does not cover its name."""
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows cannot open a folder; NTFS journals its names itself
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # the folder is gone (another flusher's rejected/ never made): nothing of ours to persist
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems (network, FUSE) cannot fsync a folder; they give no stronger promise to rely on.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES, errno.EPERM):
            raise
    finally:
        os.close(fd)


def _claim_name(path: str) -> str:
    return "%s.%d-%s%s" % (path, os.getpid(), uuid.uuid4().hex[:12], CLAIM_SUFFIX)


def _claim(path: str) -> Optional[str]:
    """Take ``path`` for this flusher; None when another flusher took (or sent) it first."""
    claimed = _claim_name(path)
    _held.add(os.path.basename(claimed))
    try:
        os.rename(path, claimed)
    except OSError as exc:
        _held.discard(os.path.basename(claimed))
        if exc.errno == errno.ENOENT:
            return None
        raise
    # No folder fsync here: after a power cut the report is back under either name, and both are sent again.
    return claimed


def _unclaimed_name(claimed: str) -> str:
    # name.json.<pid>-<nonce>.sending -> name.json
    return claimed[:-len(CLAIM_SUFFIX)].rsplit(".", 1)[0]


def _release(claimed: str) -> None:
    os.rename(claimed, _unclaimed_name(claimed))
    _held.discard(os.path.basename(claimed))
    _fsync_dir(os.path.dirname(claimed))


def _claim_is_stale(name: str) -> bool:
    try:
        pid = int(name[:-len(CLAIM_SUFFIX)].rsplit(".", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return True  # not a name this module makes: give the report back rather than strand it
    if pid == os.getpid():
        return name not in _held  # an earlier process that had our pid, or a claim this process dropped
    if os.name != "posix":
        return False  # os.kill(pid, 0) would terminate the process on Windows; leave other live claims be
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (owned by another user): alive
    return False


def _recover_claims(directory: str) -> None:
    """Give back the reports that flushers which died mid-send had claimed."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    recovered = False
    for name in names:
        if name.endswith(CLAIM_SUFFIX) and _claim_is_stale(name):
            try:
                os.rename(os.path.join(directory, name), os.path.join(directory, _unclaimed_name(name)))
                recovered = True
            except OSError:
                pass  # another flusher recovered it first
    if recovered:
        _fsync_dir(directory)


def flush_spool(url: str, token: str, directory: Optional[str] = None, timeout: float = 10.0) -> Dict[str, Any]:
    """Send every spooled report, oldest first; stop at the first transient failure (the host is still down).

    Safe to run while other flushers work on the same spool: each report is sent by one of them, and the
    ones another flusher took are skipped (counted in "skipped"). Reports the host refuses for good move to
    ``rejected/`` beside them, so they neither block the queue nor vanish.
    Returns {"sent": [...], "duplicates": [...], "rejected": [...], "skipped": n, "waiting": n, "error": message or None}.
    """
    directory = spool_dir(directory)
    result = {"sent": [], "duplicates": [], "rejected": [], "skipped": 0, "waiting": 0, "error": None}  # type: Dict[str, Any]
    _recover_claims(directory)
    for path in spooled(directory):
        try:
            claimed = _claim(path)
        except OSError as exc:
            result["error"] = "cannot take %s from the spool: %s" % (os.path.basename(path), exc)
            break
        if claimed is None:
            result["skipped"] += 1
            continue
        if not _send_claimed(claimed, url, token, timeout, result):
            break
    if result["error"]:
        result["waiting"] = len(spooled(directory))
    return result


def _send_claimed(claimed: str, url: str, token: str, timeout: float, result: Dict[str, Any]) -> bool:
    """Send one claimed report and settle its file: removed once acknowledged, moved to rejected/ if refused for
    good, given back to the spool otherwise. False when flushing should stop (the host is unreachable)."""
    try:
        try:
            report = read_report(claimed)
        except BadInputError as exc:
            _reject(claimed)
            result["rejected"].append("%s (unreadable: %s)" % (os.path.basename(_unclaimed_name(claimed)), exc))
            return True
        try:
            ack = send_report(report, url, token, timeout=timeout)
        except DeliveryError as exc:
            if exc.permanent:
                _reject(claimed)
                result["rejected"].append("%s (%s)" % (report.get("report_id"), exc))
                return True
            _release(claimed)
            result["error"] = str(exc)
            return False
        os.remove(claimed)
        # Only a removal that reached the disk may be called sent: otherwise a power cut brings the file back.
        _fsync_dir(os.path.dirname(claimed))
        _held.discard(os.path.basename(claimed))
    except BaseException:
        # Interrupted (Ctrl-C, a disk error): give the report back to the spool rather than leave it claimed.
        if os.path.exists(claimed):
            try:
                _release(claimed)
            except OSError:
                pass  # still claimed by a pid that will be gone: the next flush gives it back
        raise
    result["sent"].append(report["report_id"])
    if ack.get("duplicate"):
        # Stored by an earlier attempt whose acknowledgement never arrived: counted once, as it should be.
        result["duplicates"].append(report["report_id"])
    return True


def _reject(claimed: str) -> None:
    directory = os.path.dirname(claimed)
    target = os.path.join(directory, "rejected")
    os.makedirs(target, exist_ok=True)
    os.replace(claimed, os.path.join(target, os.path.basename(_unclaimed_name(claimed))))
    _held.discard(os.path.basename(claimed))
    _fsync_dir(target)
    _fsync_dir(directory)


def deliver(report: Dict[str, Any], url: str, token: str, directory: Optional[str] = None, timeout: float = 10.0) -> Dict[str, Any]:
    """Send ``report`` after whatever an earlier run left in the spool; spool it if the host is unreachable.

    The new report goes to the spool first and is sent from there, so a crash between sending and
    acknowledging leaves it on disk to be resent (and counted once, by its id). It is written straight
    under this flusher's claim, so a flusher running beside this one cannot send it in its stead (and
    leave this one unable to say whether it arrived).
    """
    claimed = _claim_name(_spool_path(report, directory))
    _held.add(os.path.basename(claimed))
    try:
        write_atomic(claimed, encode(report))
    except BaseException:
        _held.discard(os.path.basename(claimed))
        raise
    try:
        result = flush_spool(url, token, directory, timeout=timeout)
    except BaseException:
        _release(claimed)
        raise
    if result["error"]:
        _release(claimed)
        result["waiting"] += 1
    else:
        _send_claimed(claimed, url, token, timeout, result)
        if result["error"]:
            result["waiting"] = len(spooled(directory))
    result["report_id"] = report["report_id"]
    result["delivered"] = report["report_id"] in result["sent"]
    return result
