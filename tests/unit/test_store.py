"""The run store: migrations, predictions kept per batch, resume bookkeeping."""

from __future__ import annotations

import sqlite3

import pytest

from ladder.dataset import Prediction
from ladder.errors import StoreError
from ladder.store.db import Store
from ladder.store.migrations import MIGRATIONS


def test_migrations_apply_once_in_order(tmp_path):
    store = Store(tmp_path)
    names = [r[0] for r in store.db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [n for n, _ in MIGRATIONS]
    assert Store(tmp_path).migrate() == []  # reopening applies nothing new


def test_migration_names_are_unique_and_ordered():
    names = [n for n, _ in MIGRATIONS]
    assert len(set(names)) == len(names) and names == sorted(names)


def test_predictions_round_trip_and_done_ids(tmp_path):
    store = Store(tmp_path)
    store.create_run("r1", "t", "task.yaml", str(tmp_path / "r1"), "h", "d", {"options": {}}, {})
    preds = [
        Prediction(
            "a", {"x": 1}, True, None, "raw", [0.1, -2.0], 10, 2, 0.5, 0.1, extra={"cite": ["c1"]}
        ),
        Prediction("b", None, False, "bad", "?", None, 9, 1, 0.4, 0.1),
    ]
    store.add_predictions("r1", "zero-shot", "v", "dev", preds)
    assert store.done_ids("r1", "zero-shot", "v", "dev", 0) == {"a", "b"}
    back = store.predictions("r1", "zero-shot", "v", "dev")
    assert (
        back["a"].output == {"x": 1}
        and back["a"].scores == [0.1, -2.0]
        and back["a"].extra == {"cite": ["c1"]}
    )
    assert back["b"].valid is False and back["b"].error == "bad"


def test_unknown_run_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match=r"no run 'nope' in the store.*ladder runs"):
        Store(tmp_path).get_run("nope")


def test_corrupt_store_file_is_a_clear_error(tmp_path):
    (tmp_path / "ladder.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the run store"):
        Store(tmp_path)


def test_wal_mode(tmp_path):
    store = Store(tmp_path)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert isinstance(store.db, sqlite3.Connection)


class _LockedAtFirst:
    """A connection that answers "database is locked" at once, as SQLite does (without its busy
    handler) where waiting could deadlock: two processes opening a new store together."""

    def __init__(self, conn, fails: list, times: int):
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_fails", fails)
        object.__setattr__(self, "_times", times)

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __setattr__(self, name, value):
        setattr(self._conn, name, value)

    def execute(self, sql, *args):
        if sql.startswith("PRAGMA journal_mode") and len(self._fails) < self._times:
            self._fails.append(sql)
            raise sqlite3.OperationalError("database is locked")
        return self._conn.execute(sql, *args)


def _locking(monkeypatch, times: int) -> list:
    import ladder.store.db as db

    fails: list = []
    real = sqlite3.connect
    monkeypatch.setattr(
        db.sqlite3, "connect", lambda *a, **k: _LockedAtFirst(real(*a, **k), fails, times)
    )
    return fails


def test_opening_waits_out_another_process_opening_the_store(tmp_path, monkeypatch):
    fails = _locking(monkeypatch, times=2)
    store = Store(tmp_path)
    assert len(fails) == 2  # tried again, not given up
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.list_runs() == []


def test_a_store_locked_for_good_is_a_clear_error(tmp_path, monkeypatch):
    import ladder.store.db as db

    monkeypatch.setattr(db, "OPEN_WAIT_S", 0.3)
    _locking(monkeypatch, times=10**6)
    with pytest.raises(StoreError, match="database is locked"):
        Store(tmp_path)
