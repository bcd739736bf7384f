"""The run store: SQLite (WAL) holding runs, provenance, scorecards and every prediction.

Predictions are written per batch in one transaction, so a killed climb loses at most the batch
in flight; `--resume` reads back what is there and computes only what is missing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ladder.dataset import Prediction
from ladder.errors import StoreError
from ladder.store.migrations import MIGRATIONS


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def default_runs_dir() -> Path:
    return Path(os.environ.get("LADDER_RUNS") or "runs")


OPEN_WAIT_S = 30.0  # how long opening waits out another process opening the same store


class Store:
    def __init__(self, runs_dir: str | Path | None = None):
        self.runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
        self.path = self.runs_dir / "ladder.db"
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self._open()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot open the run store: {exc}.",
                where=self.path,
                fix="move the file aside to start a fresh store, or point --runs elsewhere.",
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot create the runs folder: {exc.strerror}.", where=self.runs_dir
            ) from None

    def _open(self) -> None:
        """Connect, switch to WAL and migrate, waiting out another process doing the same.

        The busy timeout covers most waits, but SQLite answers "database is locked" at once,
        without waiting, where waiting could deadlock (two climbs opening a new store in the
        same instant, one switching it to WAL): then the whole open is tried again.
        """
        deadline = time.monotonic() + OPEN_WAIT_S
        while True:
            self.db = sqlite3.connect(
                self.path, timeout=OPEN_WAIT_S, isolation_level=None, check_same_thread=False
            )
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.execute("PRAGMA foreign_keys=ON")
                self.db.row_factory = sqlite3.Row
                self.migrate()
                return
            except sqlite3.OperationalError as exc:
                self.db.close()
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # ------------------------------------------------------------ schema

    def migrate(self) -> list[str]:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {r[0] for r in self.db.execute("SELECT name FROM _migrations")}
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            # one transaction per migration: the schema change and its record land together
            try:
                self.db.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO _migrations VALUES ('{name}', '{now()}');\nCOMMIT;"
                )
            except sqlite3.Error:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            applied.append(name)
        return applied

    def tx(self):
        return _Tx(self.db)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ runs

    def create_run(
        self,
        run_id: str,
        task: str,
        task_path: str,
        run_dir: str,
        config_hash: str,
        data_hash: str,
        config: dict,
        provenance: dict,
    ) -> None:
        with self.tx():
            self.db.execute(
                "INSERT INTO runs (id, task, task_path, run_dir, status, created_at, config_hash, data_hash, config, provenance) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    task,
                    task_path,
                    run_dir,
                    "running",
                    now(),
                    config_hash,
                    data_hash,
                    json.dumps(config),
                    json.dumps(provenance),
                ),
            )

    def set_run_status(self, run_id: str, status: str, summary: dict | None = None) -> None:
        with self.tx():
            self.db.execute(
                "UPDATE runs SET status=?, finished_at=?, summary=COALESCE(?, summary) WHERE id=?",
                (
                    status,
                    now() if status != "running" else None,
                    json.dumps(summary) if summary is not None else None,
                    run_id,
                ),
            )

    def add_provenance(self, run_id: str, key: str, value: Any) -> None:
        """Set one key of a run's provenance (facts learnt during the climb: number formats)."""
        row = self.db.execute("SELECT provenance FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            return
        prov = json.loads(row[0] or "{}")
        prov[key] = value
        with self.tx():
            self.db.execute("UPDATE runs SET provenance=? WHERE id=?", (json.dumps(prov), run_id))

    def get_run(self, run_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            ids = [
                r[0]
                for r in self.db.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 5")
            ]
            hint = f" Recent runs: {', '.join(ids)}." if ids else " The store has no runs yet."
            raise StoreError(
                f"no run {run_id!r} in the store.{hint}",
                where=self.path,
                fix="list runs with `ladder runs`.",
            )
        return _row(row)

    def list_runs(self, task: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = (
            "SELECT * FROM runs"
            + (" WHERE task=?" if task else "")
            + " ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        args = (task, limit) if task else (limit,)
        return [_row(r) for r in self.db.execute(sql, args)]

    def latest_unfinished(self, task: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT * FROM runs WHERE task=? AND status != 'finished' ORDER BY created_at DESC, id DESC LIMIT 1",
            (task,),
        ).fetchone()
        return _row(row) if row else None

    # ------------------------------------------------------------ rungs and scorecards

    def start_rung(self, run_id: str, rung: str) -> None:
        with self.tx():
            self.db.execute(
                "INSERT INTO rungs (run_id, rung, status, started_at) VALUES (?,?,?,?) ON CONFLICT(run_id, rung) DO UPDATE SET status='running', reason=NULL",
                (run_id, rung, "running", now()),
            )

    def finish_rung(
        self,
        run_id: str,
        rung: str,
        status: str,
        solution: dict | None = None,
        selection: dict | None = None,
        reason: str | None = None,
    ) -> None:
        with self.tx():
            self.db.execute(
                "INSERT INTO rungs (run_id, rung, status, started_at) VALUES (?,?,?,?) ON CONFLICT(run_id, rung) DO NOTHING",
                (run_id, rung, status, now()),
            )
            self.db.execute(
                "UPDATE rungs SET status=?, finished_at=?, solution=?, selection=?, reason=? WHERE run_id=? AND rung=?",
                (status, now(), _j(solution), _j(selection), reason, run_id, rung),
            )

    def rungs(self, run_id: str) -> list[dict[str, Any]]:
        return [
            _row(r)
            for r in self.db.execute(
                "SELECT * FROM rungs WHERE run_id=? ORDER BY started_at, rowid", (run_id,)
            )
        ]

    def save_scorecard(self, run_id: str, rung: str, split: str, scorecard: dict) -> None:
        with self.tx():
            self.db.execute(
                "INSERT OR REPLACE INTO scorecards (run_id, rung, split, scorecard, created_at) VALUES (?,?,?,?,?)",
                (run_id, rung, split, json.dumps(scorecard), now()),
            )

    def scorecards(self, run_id: str, split: str = "holdout") -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT s.scorecard FROM scorecards s LEFT JOIN rungs r ON r.run_id=s.run_id AND r.rung=s.rung WHERE s.run_id=? AND s.split=? ORDER BY r.started_at, s.created_at",
            (run_id, split),
        )
        return [json.loads(r[0]) for r in rows]

    # ------------------------------------------------------------ predictions

    def done_ids(self, run_id: str, rung: str, variant: str, split: str, repeat: int) -> set[str]:
        rows = self.db.execute(
            "SELECT example_id FROM predictions WHERE run_id=? AND rung=? AND variant=? AND split=? AND repeat=?",
            (run_id, rung, variant, split, repeat),
        )
        return {r[0] for r in rows}

    def add_predictions(
        self, run_id: str, rung: str, variant: str, split: str, rows: Iterable[Prediction]
    ) -> None:
        stamp = now()
        with self.tx():
            self.db.executemany(
                "INSERT OR REPLACE INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        run_id,
                        rung,
                        variant,
                        split,
                        p.example_id,
                        p.repeat,
                        json.dumps(p.output),
                        int(p.valid),
                        p.error,
                        p.raw,
                        _j(p.scores),
                        p.tokens_in,
                        p.tokens_out,
                        p.latency_s,
                        p.compute_s,
                        stamp,
                        _j(p.extra or None),
                    )
                    for p in rows
                ],
            )

    def predictions(
        self, run_id: str, rung: str, variant: str, split: str, repeat: int | None = 0
    ) -> dict[str, Prediction]:
        sql = "SELECT * FROM predictions WHERE run_id=? AND rung=? AND variant=? AND split=?"
        args: tuple = (run_id, rung, variant, split)
        if repeat is not None:
            sql += " AND repeat=?"
            args += (repeat,)
        out = {}
        for r in self.db.execute(sql, args):
            p = Prediction(
                r["example_id"],
                json.loads(r["output"]),
                bool(r["valid"]),
                r["error"],
                r["raw"],
                json.loads(r["scores"]) if r["scores"] else None,
                r["tokens_in"],
                r["tokens_out"],
                r["latency_s"],
                r["compute_s"],
                r["repeat"],
                json.loads(r["extra"]) if r["extra"] else {},
            )
            out[p.example_id if repeat is not None else f"{p.example_id}#{p.repeat}"] = p
        return out

    def count_predictions(self, run_id: str) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM predictions WHERE run_id=?", (run_id,)
        ).fetchone()[0]

    def discard_run(self, run_id: str) -> None:
        """Remove a run that stored no work (it failed on bad input before its first answer)."""
        if self.count_predictions(run_id) or self.scorecards(run_id):
            raise ValueError(f"run {run_id} holds work; it is never discarded")
        with self.tx():
            for table in ("phase_times", "artifacts", "rungs", "scorecards"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
            self.db.execute("DELETE FROM runs WHERE id=?", (run_id,))

    # ------------------------------------------------------------ phase times

    def add_phase_time(self, run_id: str, rung: str, phase: str, seconds: float) -> None:
        """Add wall seconds to a rung's phase (a resumed climb adds to what it spent before)."""
        with self.tx():
            self.db.execute(
                "INSERT INTO phase_times VALUES (?,?,?,?,?) ON CONFLICT(run_id, rung, phase) "
                "DO UPDATE SET seconds = seconds + excluded.seconds, updated_at = excluded.updated_at",
                (run_id, rung, phase, seconds, now()),
            )

    def phase_times(self, run_id: str) -> list[dict[str, Any]]:
        return [
            _row(r)
            for r in self.db.execute(
                "SELECT rung, phase, seconds FROM phase_times WHERE run_id=? ORDER BY rowid",
                (run_id,),
            )
        ]

    # ------------------------------------------------------------ artifacts

    def add_artifact(
        self,
        run_id: str,
        rung: str,
        kind: str,
        path: str,
        size: int | None,
        meta: dict | None = None,
    ) -> None:
        with self.tx():
            self.db.execute(
                "INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?,?,?)",
                (run_id, rung, kind, path, size, _j(meta), now()),
            )

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return [
            _row(r)
            for r in self.db.execute(
                "SELECT * FROM artifacts WHERE run_id=? ORDER BY created_at", (run_id,)
            )
        ]


class _Tx:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


_JSON_COLS = {"config", "provenance", "summary", "solution", "selection", "meta"}


def _row(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    for k in _JSON_COLS & d.keys():
        if d[k]:
            d[k] = json.loads(d[k])
    return d


def _j(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
