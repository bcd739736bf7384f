"""The gateway's request log and API keys: SQLite (the run store, WAL) or PostgreSQL by URL.

Every request is one row (route, latency, tokens, cost, the input and the answer, never a
header or a key). Rows are written by one background thread per process, in batches, each batch
one transaction; a database that is busy or briefly down is retried, and rows that still cannot
be written are spilled to a JSONL file next to the store rather than dropped. Several gateway
processes may share one database: SQLite serialises their transactions (WAL, busy timeout),
PostgreSQL is made for it.

API keys are random 192-bit secrets shown once; only their SHA-256 is stored (a slow password
hash buys nothing for keys with this much entropy).
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import secrets
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ladder.errors import LadderError, StoreError, require
from ladder.store.migrations import MIGRATIONS

COLUMNS = [
    "id",
    "created_at",
    "endpoint",
    "model",
    "route",
    "task",
    "run_id",
    "key_id",
    "status",
    "error",
    "stream",
    "cached",
    "latency_ms",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "input",
    "request",
    "response",
    "output",
    "valid",
    "confidence",
    "fallback",
]
_SERVE_MIGRATIONS = [(n, sql) for n, sql in MIGRATIONS if n[:3].isdigit() and 40 <= int(n[:3]) < 50]
RETRIES = 6  # attempts per batch before spilling it to a file (backoff 0.1 s doubling: ~6 s)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def safe_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


class LogDB:
    """SQL shared by both backends; subclasses give connections, parameter style and DDL."""

    placeholder = "?"
    url = ""

    def __init__(self) -> None:
        self._local = threading.local()  # one connection per thread
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _connect(self):  # a new connection
        raise NotImplementedError

    def _conn(self):
        """The calling thread's connection (opened on first use, or again after `close`)."""
        db = getattr(self._local, "db", None)
        if db is None or getattr(db, "closed", False):
            db = self._local.db = self._connect()
            with self._lock:
                self._all.append(db)
        return db

    def _tx(self, fn):  # run fn(cursor-like) in one transaction
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def _rows(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        cur = self._conn().execute(self._sql(sql), args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    # ------------------------------------------------------------ requests

    def insert(self, rows: list[dict[str, Any]]) -> None:
        sql = self._sql(
            f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        values = [tuple(r.get(c) for c in COLUMNS) for r in rows]
        self._tx(lambda db: db.executemany(sql, values))

    def feedback(self, request_id: str, rating: str, note: str | None) -> bool:
        sql = self._sql("UPDATE requests SET feedback=?, feedback_note=?, feedback_at=? WHERE id=?")
        out: list[int] = []
        self._tx(
            lambda db: out.append(db.execute(sql, (rating, note, time.time(), request_id)).rowcount)
        )
        return bool(out and out[0])

    def get(self, request_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM requests WHERE id=?", (request_id,))
        return rows[0] if rows else None

    def query(self, since: float | None = None, model: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM requests WHERE created_at >= ?"
        args: list[float | str] = [since or 0.0]
        if model:
            sql += " AND model = ?"
            args.append(model)
        return self._rows(sql + " ORDER BY created_at, id", tuple(args))

    def count(self) -> int:
        return int(self._rows("SELECT COUNT(*) AS n FROM requests")[0]["n"])

    # ------------------------------------------------------------ keys

    def create_key(self, name: str) -> tuple[str, str]:
        """A new key: returns (id, the key). The key is shown once and stored only hashed."""
        key = "ldr-" + secrets.token_urlsafe(24)
        kid = "key_" + secrets.token_hex(4)
        sql = self._sql(
            "INSERT INTO api_keys (id, name, hash, prefix, created_at) VALUES (?,?,?,?,?)"
        )
        self._tx(
            lambda db: db.execute(
                sql, (kid, name, key_hash(key), key[:8], time.strftime("%Y-%m-%dT%H:%M:%S"))
            )
        )
        return kid, key

    def list_keys(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys ORDER BY created_at, id"
        )

    def revoke_key(self, id_or_name: str) -> int:
        sql = self._sql(
            "UPDATE api_keys SET revoked_at=? WHERE (id=? OR name=?) AND revoked_at IS NULL"
        )
        out: list[int] = []
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._tx(lambda db: out.append(db.execute(sql, (stamp, id_or_name, id_or_name)).rowcount))
        return out[0]

    def key_id(self, key: str) -> str | None:
        """The id of an active key, or None."""
        rows = self._rows(
            "SELECT id FROM api_keys WHERE hash=? AND revoked_at IS NULL", (key_hash(key),)
        )
        return rows[0]["id"] if rows else None

    def active_keys(self) -> int:
        return int(
            self._rows("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")[0]["n"]
        )


class SQLiteDB(LogDB):
    """The run store's database file (`ladder.db`), one connection per thread, WAL."""

    def __init__(self, runs_dir: str | Path | None = None):
        from ladder.store.db import Store

        store = Store(runs_dir)  # applies the migrations, 040_requests and 041_api_keys included
        self.path, self.runs_dir = store.path, store.runs_dir
        store.close()
        self.url = str(self.path)
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    def _tx(self, fn) -> None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock later
        try:
            fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class PostgresDB(LogDB):
    """A PostgreSQL database by URL; the same tables, applied by the same migration names."""

    placeholder = "%s"

    def __init__(self, url: str):
        self._psycopg = require("psycopg", "postgres", "Logging requests to PostgreSQL")
        self.url = safe_url(url)
        self._dsn = url
        super().__init__()
        try:
            self._migrate()
        except self._psycopg.Error as exc:
            raise StoreError(
                f"cannot use the PostgreSQL database {self.url}: {str(exc).strip()}.",
                fix="check the URL (postgresql://user:password@host:port/dbname) and that the server is up.",
            ) from None

    def _connect(self):
        return self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)

    def _tx(self, fn) -> None:
        db = self._conn()
        with db.transaction():
            fn(_PGCursor(db))

    def _migrate(self) -> None:
        def run(db) -> None:
            db.execute("SELECT pg_advisory_xact_lock(4011)")  # one migrator at a time
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {r[0] for r in db.execute("SELECT name FROM _migrations").fetchall()}
            for name, sql in _SERVE_MIGRATIONS:
                if name not in done:
                    # unix seconds need 8-byte floats (PostgreSQL's REAL has 4)
                    db.execute(sql.replace(" REAL", " DOUBLE PRECISION"))
                    db.execute(
                        "INSERT INTO _migrations VALUES (%s, %s)",
                        (name, time.strftime("%Y-%m-%dT%H:%M:%S")),
                    )

        self._tx(run)


class _PGCursor:
    """sqlite3-style `execute`/`executemany` returning an object with `rowcount`."""

    def __init__(self, db):
        self.db = db

    def execute(self, sql, args=()):
        return self.db.execute(sql, args)

    def executemany(self, sql, rows):
        with self.db.cursor() as cur:
            cur.executemany(sql, rows)


def open_db(url: str | None = None, runs_dir: str | Path | None = None) -> LogDB:
    """PostgreSQL for a `postgresql://` URL, else the run store's SQLite file."""
    if url and url.startswith(("postgresql://", "postgres://")):
        return PostgresDB(url)
    if url:
        raise LadderError(
            f"--db {safe_url(url)!r} is not a PostgreSQL URL.",
            fix="give postgresql://user:password@host:port/dbname, or leave --db out to use the run store (SQLite).",
        )
    return SQLiteDB(runs_dir)


# ---------------------------------------------------------------- the writer thread


class LogWriter:
    """Writes rows in the background, in batches; `flush()` waits until all queued rows are in."""

    def __init__(self, db: LogDB, *, max_queue: int = 10000, batch: int = 256):
        self.db = db
        self.batch = batch
        self.q: queue.Queue = queue.Queue(maxsize=max_queue)
        self.written = 0
        self.spilled = 0
        self._thread = threading.Thread(target=self._loop, name="ladder-log-writer", daemon=True)
        self._thread.start()

    def put(self, row: dict[str, Any]) -> None:
        """Queue a row; blocks (never drops) while the queue is full."""
        self.q.put(row)

    def flush(self, timeout: float = 30.0) -> bool:
        done = threading.Event()
        self.q.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        self.q.put(None)
        self._thread.join(timeout=60)
        self.db.close()

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            rows, events, stop = [], [], item is None
            if isinstance(item, dict):
                rows.append(item)
            elif item is not None:
                events.append(item)
            while not stop and len(rows) < self.batch:
                try:
                    item = self.q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                elif isinstance(item, dict):
                    rows.append(item)
                else:
                    events.append(item)
            if rows:
                self._write(rows)
            for ev in events:
                ev.set()
            if stop:
                return

    def _write(self, rows: list[dict[str, Any]]) -> None:
        delay = 0.1
        for attempt in range(RETRIES):
            try:
                self.db.insert(rows)
                self.written += len(rows)
                return
            except Exception as exc:
                err = exc
                if attempt < RETRIES - 1:
                    time.sleep(delay)
                    delay *= 2
        self._spill(rows, err)

    def _spill(self, rows: list[dict[str, Any]], err: Exception) -> None:
        runs_dir = getattr(self.db, "runs_dir", None) or Path(".")
        path = Path(runs_dir) / "requests-unwritten.jsonl"
        with path.open("a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, default=str) + "\n")
        self.spilled += len(rows)
        print(
            f"ladder serve: could not write {len(rows)} log row(s) to {self.db.url} ({err}); kept them in {path}",
            file=sys.stderr,
        )
