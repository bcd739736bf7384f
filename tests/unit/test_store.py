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
