"""The request log under concurrency: SQLite (WAL, two gateways on one file) and real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ladder.engines.fake import FakeEngine
from ladder.serve import logs
from ladder.serve.catalog import ServeOptions
from serve_util import gateway

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")


def hammer(g, n: int, workers: int = 32, tag: str = "") -> list[str]:
    """n requests from `workers` threads (chat, completions, streams); returns the response ids."""
    c = g.client()

    def one(i):
        if i % 3 == 0:
            return c.completions.create(
                model="fake", prompt=f"{tag} prompt {i}", max_tokens=2, temperature=1
            ).id
        if i % 3 == 1:
            return c.chat.completions.create(
                model="fake", messages=[{"role": "user", "content": f"{tag} hi {i}"}], temperature=1
            ).id
        chunks = list(
            c.chat.completions.create(
                model="fake",
                messages=[{"role": "user", "content": f"{tag} s {i}"}],
                stream=True,
                temperature=1,
            )
        )
        return chunks[0].id

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


def test_no_lost_writes_under_concurrency():
    with gateway(ServeOptions(model="fake", engines={"fake": FakeEngine(latency_s=0.002)})) as g:
        ids = hammer(g, 240)
        g.gw.writer.flush()
        rows = g.db.query()
    assert len(ids) == len(set(ids)) == 240
    assert {r["id"] for r in rows} == set(ids) and all(r["status"] == 200 for r in rows)
    assert sum(r["stream"] for r in rows) == 80


def test_two_gateways_share_one_sqlite_file():
    with (
        gateway(ServeOptions(model="fake")) as g1,
        gateway(ServeOptions(model="fake"), db=logs.open_db()) as g2,
    ):
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(
                lambda args: hammer(*args), [(g1, 120, 16, "one"), (g2, 120, 16, "two")]
            )
        g1.gw.writer.flush()
        g2.gw.writer.flush()
    db = logs.open_db()
    assert {r["id"] for r in db.query()} == set(a) | set(b) and len(set(a) | set(b)) == 240
    db.close()


def test_rows_a_database_refuses_are_spilled_not_lost(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "RETRIES", 2)

    class Broken(logs.SQLiteDB):
        def insert(self, rows):
            raise OSError("disk full")

    db = Broken(tmp_path / "runs")
    w = logs.LogWriter(db)
    for i in range(5):
        w.put({"id": f"r{i}", "model": "m"})
    assert w.flush(timeout=10)
    w.close()
    spilled = (tmp_path / "runs" / "requests-unwritten.jsonl").read_text().splitlines()
    assert len(spilled) == 5 and w.spilled == 5 and w.written == 0


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server (the `pgserver` wheel) on a Unix socket, for this module.

    Its folder is not under pytest's basetemp: run as root, pgserver runs PostgreSQL as its own
    system user, and any pytest session starting meanwhile resets /tmp/pytest-of-root to 0700.
    """
    runtime = Path(tempfile.gettempdir()) / "ladder-test-runtime"  # pgserver's lock lives here
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))  # else platformdirs warns on import
    root = Path(tempfile.mkdtemp(prefix="ladder-pg-"))
    pgserver = pytest.importorskip(
        "pgserver", reason="pgserver is not installed (make install does it)"
    )
    pytest.importorskip("psycopg", reason="the [postgres] extra is not installed")
    srv = pgserver.get_server(root / "data", cleanup_mode="stop")
    yield srv.get_uri()
    srv.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_log_keys_feedback_and_concurrency(postgres):
    db = logs.open_db(postgres)
    again = logs.open_db(postgres)  # migrating twice is a no-op
    assert again.count() == 0
    again.close()
    with gateway(ServeOptions(model="fake"), db=db) as g:
        ids = hammer(g, 96, 16)
        resp = g.client().chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "rate me"}]
        )
        r = g.client().post("/feedback", body={"id": resp.id, "rating": "good"}, cast_to=dict)
        assert r["rating"] == "good"
        g.gw.writer.flush()
    rows = db.query()
    assert {r["id"] for r in rows} >= set(ids) and len(rows) == 97
    assert db.get(resp.id)["feedback"] == "good" and isinstance(rows[0]["created_at"], float)
    kid, key = db.create_key("pg-user")
    assert db.key_id(key) == kid and db.revoke_key("pg-user") == 1 and db.key_id(key) is None
    db.close()
    assert logs.safe_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def test_bad_postgres_url_is_a_clear_error(run_cli, postgres):
    code, _, err = run_cli("keys", "list", "--db", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert code == 2 and "cannot use the PostgreSQL database" in err and "secret" not in err
    code, _, err = run_cli("keys", "list", "--db", "mysql://x")
    assert code == 2 and "not a PostgreSQL URL" in err
