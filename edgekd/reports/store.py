"""Where device reports are kept: SQLite in WAL mode by default, PostgreSQL for a fleet.

Table ``reports``: one row per report id. The full report is kept as JSON; the figures that the tables and
plots need are copied into columns when it is stored. ``add`` returns only after the row is committed,
which is what lets the collector acknowledge a report (and the device delete its spooled copy).

Table ``tokens``: the per-device bearer tokens. Only a SHA-256 of each secret is kept: the secret is 256
random bits, so a fast hash is enough (nothing to brute-force), and a stolen database holds no usable token.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import re
import secrets
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..errors import EdgekdError

DEFAULT_DB = "edgekd-reports.sqlite"
DB_ENV = "EDGEKD_REPORTS_DB"

# Columns filled from a report (name, SQL type, how to read it from the report).
COLUMNS: List[Tuple[str, str]] = [
    ("report_id", "TEXT NOT NULL UNIQUE"),
    ("received", "TEXT NOT NULL"),
    ("created", "TEXT NOT NULL"),
    ("kind", "TEXT NOT NULL"),
    ("schema_version", "INTEGER NOT NULL"),
    ("device_id", "TEXT NOT NULL"),
    ("bundle", "TEXT NOT NULL"),
    ("manifest_sha256", "TEXT"),
    ("profile", "TEXT"),
    ("format", "TEXT"),
    ("engine", "TEXT"),
    ("p50_ms", "DOUBLE PRECISION"),
    ("p90_ms", "DOUBLE PRECISION"),
    ("p99_ms", "DOUBLE PRECISION"),
    ("mean_ms", "DOUBLE PRECISION"),
    ("accuracy", "DOUBLE PRECISION"),
    ("agreement", "DOUBLE PRECISION"),
    ("host_accuracy", "DOUBLE PRECISION"),
    ("host_latency_ms", "DOUBLE PRECISION"),
    ("input_psi", "DOUBLE PRECISION"),
    ("confidence_psi", "DOUBLE PRECISION"),
    ("drift_status", "TEXT"),
    ("body", "TEXT NOT NULL"),
]
NAMES = [c for c, _ in COLUMNS]

TOKENS_DDL = """CREATE TABLE IF NOT EXISTS tokens (
  token_id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  secret_sha256 TEXT NOT NULL UNIQUE,
  created TEXT NOT NULL,
  revoked TEXT
)"""
TOKEN_PREFIX = "ekd_"
# ekd_<public id>_<secret>: the id in the token lets an operator tell which one a device holds (and revoke it)
# without the secret ever being listed anywhere.
TOKEN_RE = re.compile(r"^ekd_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
MAX_DEVICE_ID = 200  # the schema's limit on a report's device_id


class StoreError(EdgekdError):
    """The store cannot be opened or written (the collector answers 503 and stores nothing)."""


class DuplicateMismatch(EdgekdError):
    """A report id already stored with a different body: the idempotency key was reused."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_id_of(token: str) -> Optional[str]:
    """The public id inside a token string (None if it is not one of ours)."""
    match = TOKEN_RE.match(token)
    return match.group(1) if match else None


def _get(report: Dict[str, Any], *path):
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def canonical(report: Dict[str, Any]) -> str:
    return json.dumps(report, sort_keys=True, separators=(",", ":"))


def row_for(report: Dict[str, Any], received: Optional[str] = None) -> Dict[str, Any]:
    """The column values of one validated report."""
    drift = report.get("drift") or {}
    summary = drift.get("summary") or {}
    return {
        "report_id": report["report_id"],
        "received": received or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "created": str(report["created"]),
        "kind": report["kind"],
        "schema_version": int(report["schema_version"]),
        "device_id": report["device_id"],
        "bundle": report["bundle"],
        "manifest_sha256": report.get("manifest_sha256"),
        "profile": _get(report, "host_expected", "profile"),
        "format": report.get("format"),
        "engine": _get(report, "runtime", "engine"),
        "p50_ms": _get(report, "latency", "p50_ms"),
        "p90_ms": _get(report, "latency", "p90_ms"),
        "p99_ms": _get(report, "latency", "p99_ms"),
        "mean_ms": _get(report, "latency", "mean_ms"),
        "accuracy": report.get("accuracy"),
        "agreement": report.get("agreement_with_host"),
        "host_accuracy": _get(report, "host_expected", "accuracy"),
        "host_latency_ms": _get(report, "host_expected", "latency_ms_estimate"),
        "input_psi": summary.get("input_psi_mean"),
        "confidence_psi": summary.get("confidence_psi"),
        "drift_status": summary.get("status"),
        "body": canonical(report),
    }


class Store(object):
    """The interface both back ends offer."""

    placeholder = "?"
    id_column = "id INTEGER PRIMARY KEY"

    def _ddl(self) -> str:
        cols = ",\n  ".join("%s %s" % c for c in COLUMNS)
        return "CREATE TABLE IF NOT EXISTS reports (\n  %s,\n  %s\n)" % (self.id_column, cols)

    def _insert_sql(self) -> str:
        marks = ", ".join([self.placeholder] * len(NAMES))
        return "INSERT INTO reports (%s) VALUES (%s) ON CONFLICT (report_id) DO NOTHING" % (", ".join(NAMES), marks)

    def add(self, report: Dict[str, Any]) -> Tuple[int, bool]:
        """Store a validated report; returns (row id, duplicate). Committed when this returns."""
        row = row_for(report)
        inserted, row_id, stored_body = self._insert(row)
        if not inserted and stored_body != row["body"]:
            raise DuplicateMismatch("report_id %s is already stored with different contents" % report["report_id"], "a report id must be used once")
        return row_id, not inserted

    def query(self, bundle: Optional[str] = None, device: Optional[str] = None, kind: Optional[str] = None, with_body: bool = False) -> List[Dict[str, Any]]:
        where, params = [], []
        for column, value in (("bundle", bundle), ("device_id", device), ("kind", kind)):
            if value:
                where.append("%s = %s" % (column, self.placeholder))
                params.append(value)
        names = ["id"] + [n for n in NAMES if with_body or n != "body"]
        sql = "SELECT %s FROM reports" % ", ".join(names)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created, id"
        rows = self._select(sql, params)
        out = [dict(zip(names, r)) for r in rows]
        if with_body:
            for r in out:
                r["body"] = json.loads(r["body"])
        return out

    def count(self) -> int:
        return int(self._select("SELECT COUNT(*) FROM reports", [])[0][0])

    # --- per-device tokens ----------------------------------------------------------------------------

    def create_token(self, device_id: str) -> Dict[str, Any]:
        """A new token for ``device_id``; the returned ``token`` is the only copy of the secret."""
        # Kept exactly as given: the report's device_id must equal it, so a trimmed copy would never match.
        if not device_id or not device_id.strip() or len(device_id) > MAX_DEVICE_ID:
            raise EdgekdError("a device id is 1 to %d characters" % MAX_DEVICE_ID, "use the id the device sends (--device-id)")
        for _ in range(5):
            token_id = secrets.token_hex(6)
            token = "%s%s_%s" % (TOKEN_PREFIX, token_id, secrets.token_urlsafe(32))
            created = _now()
            mark = self.placeholder
            sql = "INSERT INTO tokens (token_id, device_id, secret_sha256, created) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING" % (mark, mark, mark, mark)
            if self._execute(sql, [token_id, device_id, hash_token(token), created]) == 1:
                return {"token_id": token_id, "device_id": device_id, "created": created, "revoked": None, "token": token}
        raise StoreError("could not find an unused token id")  # 5 collisions in 2**48: the random source is broken

    def list_tokens(self, device: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every token's id, device, creation and revocation time; never the secret or its hash."""
        sql = "SELECT token_id, device_id, created, revoked FROM tokens"
        params: List[Any] = []
        if device:
            sql += " WHERE device_id = %s" % self.placeholder
            params.append(device)
        rows = self._select(sql + " ORDER BY created, token_id", params)
        return [dict(zip(("token_id", "device_id", "created", "revoked"), r)) for r in rows]

    def revoke_tokens(self, token_ids: Iterable[str] = (), device: Optional[str] = None) -> List[str]:
        """Revoke the given tokens (ids, or whole token strings) and/or every token of ``device``; returns the
        ids revoked now. Revoking twice keeps the first revocation time."""
        ids = [token_id_of(t) or t for t in token_ids]
        known = {t["token_id"]: t for t in self.list_tokens()}
        missing = [t for t in ids if t not in known]
        if missing:
            raise EdgekdError("no such token: %s" % ", ".join(missing), "see edgekd reports token list")
        targets = [t for t in ids if not known[t]["revoked"]]
        if device:
            targets += [t for t, row in known.items() if row["device_id"] == device and not row["revoked"] and t not in targets]
        when = _now()
        done = []
        for token_id in targets:
            sql = "UPDATE tokens SET revoked = %s WHERE token_id = %s AND revoked IS NULL" % (self.placeholder, self.placeholder)
            if self._execute(sql, [when, token_id]) == 1:
                done.append(token_id)
        return done

    def find_token(self, token: str) -> Optional[Dict[str, Any]]:
        """The token row whose secret is ``token`` (revoked ones included), or None."""
        # Look up by hash, so the comparison never touches the secret and the lookup's timing says nothing about it.
        rows = self._select("SELECT token_id, device_id, created, revoked FROM tokens WHERE secret_sha256 = %s" % self.placeholder, [hash_token(token)])
        return dict(zip(("token_id", "device_id", "created", "revoked"), rows[0])) if rows else None

    def active_tokens(self) -> int:
        return int(self._select("SELECT COUNT(*) FROM tokens WHERE revoked IS NULL", [])[0][0])

    # Back ends implement these.
    def _insert(self, row: Dict[str, Any]) -> Tuple[bool, int, str]:
        raise NotImplementedError

    def _select(self, sql: str, params: Iterable[Any]) -> List[tuple]:
        raise NotImplementedError

    def _execute(self, sql: str, params: Iterable[Any]) -> int:
        """Run one write in its own committed transaction; returns the number of rows it changed."""
        raise NotImplementedError

    def close(self) -> None:
        pass
