"""The two databases behind :class:`~edgekd.reports.store.Store`: SQLite in WAL mode (one machine, the default) and
PostgreSQL (a fleet), and :func:`open_store`, which picks one from a URL or a path."""
from __future__ import annotations

import os
import sqlite3
import threading
from typing import Optional

from ..errors import EdgekdError
from .store import DB_ENV, DEFAULT_DB, NAMES, TOKENS_DDL, Store, StoreError


class SQLiteStore(Store):
    """SQLite in WAL mode with synchronous=FULL: a committed report survives the process being killed and
    the machine losing power. One connection behind a lock: SQLite has one writer anyway."""

    def __init__(self, path: str):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30.0, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(self._ddl())
            self._conn.execute(TOKENS_DDL)
        except sqlite3.Error as exc:
            raise StoreError("cannot open the report store %s: %s" % (path, exc))
        self._lock = threading.Lock()

    def _insert(self, row):
        values = [row[n] for n in NAMES]
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    cur = self._conn.execute(self._insert_sql(), values)
                    inserted = cur.rowcount == 1
                    found = self._conn.execute("SELECT id, body FROM reports WHERE report_id = ?", (row["report_id"],)).fetchone()
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError("could not store report %s: %s" % (row["report_id"], exc))
        return inserted, int(found[0]), found[1]

    def _select(self, sql, params):
        with self._lock:
            try:
                return self._conn.execute(sql, list(params)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError("could not read the report store: %s" % exc)

    def _execute(self, sql, params):
        with self._lock:
            try:
                return self._conn.execute(sql, list(params)).rowcount
            except sqlite3.Error as exc:
                raise StoreError("could not write the report store: %s" % exc)

    def close(self):
        with self._lock:
            self._conn.close()


class PostgresStore(Store):
    """PostgreSQL through psycopg 3: one autocommit connection per thread, each insert in its own transaction."""

    placeholder = "%s"
    id_column = "id BIGSERIAL PRIMARY KEY"

    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError:
            raise StoreError("PostgreSQL needs the psycopg package", "pip install 'psycopg[binary]'")
        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute(self._ddl())
            conn.execute(TOKENS_DDL)

    def _connect(self):
        try:
            return self._psycopg.connect(self.url, autocommit=True)
        except self._psycopg.Error as exc:
            raise StoreError("cannot connect to %s: %s" % (_redact(self.url), str(exc).strip().splitlines()[0]))

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._connect()
        return conn

    def _insert(self, row):
        conn = self._conn()
        try:
            with conn.transaction():
                cur = conn.execute(self._insert_sql(), [row[n] for n in NAMES])
                inserted = cur.rowcount == 1
                found = conn.execute("SELECT id, body FROM reports WHERE report_id = %s", (row["report_id"],)).fetchone()
        except self._psycopg.Error as exc:
            conn.close()
            raise StoreError("could not store report %s: %s" % (row["report_id"], str(exc).strip().splitlines()[0]))
        return inserted, int(found[0]), found[1]

    def _select(self, sql, params):
        conn = self._conn()
        try:
            return conn.execute(sql, list(params)).fetchall()
        except self._psycopg.Error as exc:
            conn.close()
            raise StoreError("could not read the report store: %s" % str(exc).strip().splitlines()[0])

    def _execute(self, sql, params):
        conn = self._conn()
        try:
            return conn.execute(sql, list(params)).rowcount
        except self._psycopg.Error as exc:
            conn.close()
            raise StoreError("could not write the report store: %s" % str(exc).strip().splitlines()[0])

    def close(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


def _redact(url: str) -> str:
    # Never echo a password from a connection URL into logs or errors.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return scheme + "://***@" + rest.rsplit("@", 1)[1]
    return url


def open_store(url: Optional[str] = None) -> Store:
    """``sqlite:///path``, a plain file path, or ``postgresql://user@host/db`` (default: $EDGEKD_REPORTS_DB or
    ./edgekd-reports.sqlite)."""
    url = url or os.environ.get(DB_ENV) or DEFAULT_DB
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///"):]
    elif "://" in url:
        raise EdgekdError("unsupported database URL %s" % _redact(url), "use sqlite:///PATH or postgresql://...")
    return SQLiteStore(url)
