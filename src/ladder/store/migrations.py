"""Append-only, named migrations of the run store.

A shipped migration is never edited: to change the schema, append a new (name, sql) pair.
`_migrations` records which ones a database has applied.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_runs",
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            task TEXT NOT NULL,
            task_path TEXT NOT NULL,
            run_dir TEXT NOT NULL,
            status TEXT NOT NULL,            -- running | finished | failed | interrupted
            created_at TEXT NOT NULL,
            finished_at TEXT,
            config_hash TEXT NOT NULL,
            data_hash TEXT NOT NULL,
            config TEXT NOT NULL,            -- JSON: resolved task config + climb options
            provenance TEXT NOT NULL,        -- JSON: git sha, versions, hardware, seed
            summary TEXT                     -- JSON: outcome (bar, best rung)
        );
        CREATE INDEX runs_task ON runs(task, created_at);
        """,
    ),
    (
        "002_rungs_scorecards",
        """
        CREATE TABLE rungs (
            run_id TEXT NOT NULL REFERENCES runs(id),
            rung TEXT NOT NULL,
            status TEXT NOT NULL,            -- running | done | skipped | failed
            started_at TEXT NOT NULL,
            finished_at TEXT,
            solution TEXT,                   -- JSON: what the rung built
            selection TEXT,                  -- JSON: dev scores of the candidates it tried
            reason TEXT,                     -- why skipped / failed
            PRIMARY KEY (run_id, rung)
        );
        CREATE TABLE scorecards (
            run_id TEXT NOT NULL REFERENCES runs(id),
            rung TEXT NOT NULL,
            split TEXT NOT NULL,
            scorecard TEXT NOT NULL,         -- JSON (ladder.evaluation.scorecard.Scorecard)
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, rung, split)
        );
        """,
    ),
    (
        "003_predictions",
        """
        CREATE TABLE predictions (
            run_id TEXT NOT NULL REFERENCES runs(id),
            rung TEXT NOT NULL,
            variant TEXT NOT NULL,
            split TEXT NOT NULL,
            example_id TEXT NOT NULL,
            repeat INTEGER NOT NULL,         -- 0 = the scored answer; 1.. = sampled repeats
            output TEXT,                     -- JSON of the parsed output (null if unusable)
            valid INTEGER NOT NULL,
            error TEXT,
            raw TEXT,                        -- the model's text (or the chosen label when scoring)
            scores TEXT,                     -- JSON log-likelihoods per label, when scored
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            latency_s REAL NOT NULL,
            compute_s REAL NOT NULL,
            created_at TEXT NOT NULL,
            extra TEXT,                      -- JSON: rung-specific (citations, confidence...)
            PRIMARY KEY (run_id, rung, variant, split, example_id, repeat)
        );
        """,
    ),
    (
        "004_artifacts",
        """
        CREATE TABLE artifacts (
            run_id TEXT NOT NULL REFERENCES runs(id),
            rung TEXT NOT NULL,
            kind TEXT NOT NULL,              -- adapter | merged-model | index | report ...
            path TEXT NOT NULL,
            bytes INTEGER,
            meta TEXT,                       -- JSON
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, rung, kind, path)
        );
        """,
    ),
    (
        "005_phase_times",
        """
        CREATE TABLE phase_times (
            run_id TEXT NOT NULL REFERENCES runs(id),
            rung TEXT NOT NULL,              -- a rung, or '(climb)' for the report
            phase TEXT NOT NULL,             -- ladder.timing.PHASES
            seconds REAL NOT NULL,           -- wall seconds, summed over resumes
            updated_at TEXT NOT NULL,
            PRIMARY KEY (run_id, rung, phase)
        );
        """,
    ),
    # ---- serve (040-049): the gateway's request log and API keys
    (
        "040_requests",
        """
        CREATE TABLE requests (
            id TEXT PRIMARY KEY,             -- the response id the caller got (chatcmpl-..., cmpl-...)
            created_at REAL NOT NULL,        -- unix seconds
            endpoint TEXT NOT NULL,          -- chat | completions
            model TEXT NOT NULL,             -- the model name the caller asked for
            route TEXT,                      -- what served it (a rung, a model, an upstream)
            task TEXT,
            run_id TEXT,
            key_id TEXT,                     -- the API key's id, never the key
            status INTEGER NOT NULL,         -- HTTP status
            error TEXT,
            stream INTEGER NOT NULL,
            cached INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            input TEXT,                      -- the task input: last user message, or the prompt
            request TEXT,                    -- JSON body of the request (headers are never kept)
            response TEXT,                   -- the answer's text
            output TEXT,                     -- JSON: the task output (task and route models)
            valid INTEGER,
            confidence REAL,
            fallback TEXT,                   -- why a route fell back, if it did
            feedback TEXT,                   -- good | bad
            feedback_note TEXT,
            feedback_at REAL
        );
        CREATE INDEX requests_time ON requests(created_at);
        CREATE INDEX requests_model ON requests(model, created_at);
        """,
    ),
    (
        "041_api_keys",
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,       -- sha256 of the key; the key itself is never stored
            prefix TEXT NOT NULL,            -- first characters, to recognise a key in a list
            created_at TEXT NOT NULL,
            revoked_at TEXT
        );
        """,
    ),
]
