"""The index API on PostgreSQL + pgvector, for corpora and teams beyond one machine.

Chosen by `rungs.rag.index_url: postgresql://...` (or `$VAR` naming an environment variable
that holds the URL). One collection per task: its documents in `ladder_documents`, its chunks
and vectors in a table of its own (`vector(dim)` with an HNSW cosine index), its embedding
model and chunking in `ladder_collections`. A re-ingest is one transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ladder.errors import require
from ladder.retrieval.index import ChunkRecord, DocRecord, IndexStoreError, Upsert

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS ladder_collections (name TEXT PRIMARY KEY, meta JSONB NOT NULL);
CREATE TABLE IF NOT EXISTS ladder_documents (
    collection TEXT NOT NULL, id TEXT NOT NULL, sha256 TEXT NOT NULL, kind TEXT NOT NULL,
    title TEXT NOT NULL, bytes BIGINT NOT NULL, chunks INTEGER NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (collection, id));
"""
EF_SEARCH = 100  # HNSW candidates per query: recall@10 close to exact at this corpus scale


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.netloc.split("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username}:***@{host}")
    return urlunsplit(parts)


class PgVectorStore:
    def __init__(self, url: str, collection: str):
        psycopg = require("psycopg", "pg", "The PostgreSQL index")
        pgv = require("pgvector.psycopg", "pg", "The PostgreSQL index")
        self.collection = collection
        self.location = f"{redact(url)} (collection {collection})"
        slug = re.sub(r"[^a-z0-9]+", "_", collection.lower())[:40]
        self.table = f"ladder_chunks_{slug}_{hashlib.sha1(collection.encode()).hexdigest()[:8]}"
        self._sql = psycopg.sql
        try:
            self.conn = psycopg.connect(url, autocommit=True)
            self.conn.execute(SCHEMA)
            pgv.register_vector(self.conn)
        except psycopg.Error as exc:
            raise IndexStoreError(
                f"cannot use PostgreSQL at {redact(url)}: {str(exc).strip()}",
                fix="check the URL, that the server is up, and that the pgvector extension is "
                "installed (CREATE EXTENSION vector).",
            ) from None

    def _t(self):
        return self._sql.Identifier(self.table)

    def meta(self) -> dict[str, str]:
        row = self.conn.execute(
            "SELECT meta FROM ladder_collections WHERE name=%s", (self.collection,)
        ).fetchone()
        return dict(row[0]) if row else {}

    def documents(self) -> dict[str, DocRecord]:
        rows = self.conn.execute(
            "SELECT id, sha256, kind, title, bytes, chunks FROM ladder_documents "
            "WHERE collection=%s",
            (self.collection,),
        )
        return {r[0]: DocRecord(*r) for r in rows}

    def _exists(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s)", (self.table,)).fetchone()
        return row[0] is not None

    def chunks(self) -> list[ChunkRecord]:
        if not self._exists():
            return []
        query = self._sql.SQL(
            "SELECT c.id, c.doc_id, c.ordinal, c.heading, d.title, c.text FROM {} c "
            "JOIN ladder_documents d ON d.collection=%s AND d.id=c.doc_id "
            "ORDER BY c.doc_id, c.ordinal"
        ).format(self._t())
        return [ChunkRecord(*r) for r in self.conn.execute(query, (self.collection,))]

    def _create(self, dim: int) -> None:
        self.conn.execute(
            self._sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, "
                "ordinal INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL, "
                'start INTEGER NOT NULL, "end" INTEGER NOT NULL, embedding vector({}) NOT NULL)'
            ).format(self._t(), self._sql.Literal(dim))
        )
        self.conn.execute(
            self._sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)"
            ).format(self._sql.Identifier(self.table + "_hnsw"), self._t())
        )
        self.conn.execute(
            self._sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (doc_id)").format(
                self._sql.Identifier(self.table + "_doc"), self._t()
            )
        )

    def apply(
        self, upserts: list[Upsert], deletes: list[str], meta: dict[str, str], reset: bool = False
    ) -> None:
        """Replace and delete documents and record `meta` in one transaction."""
        with self.conn.transaction():
            if reset:
                self.conn.execute(self._sql.SQL("DROP TABLE IF EXISTS {}").format(self._t()))
                self.conn.execute(
                    "DELETE FROM ladder_documents WHERE collection=%s", (self.collection,)
                )
            self._create(int(meta["dim"]))
            for doc_id in deletes + [u.doc.id for u in upserts]:
                self.conn.execute(
                    self._sql.SQL("DELETE FROM {} WHERE doc_id=%s").format(self._t()), (doc_id,)
                )
                self.conn.execute(
                    "DELETE FROM ladder_documents WHERE collection=%s AND id=%s",
                    (self.collection, doc_id),
                )
            for u in upserts:
                self._insert(u)
            self.conn.execute(
                "INSERT INTO ladder_collections VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET meta = EXCLUDED.meta",
                (self.collection, json.dumps(meta)),
            )

    def _insert(self, u: Upsert) -> None:
        d = u.doc
        self.conn.execute(
            "INSERT INTO ladder_documents VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
            (self.collection, d.id, d.sha256, d.kind, d.title, d.bytes, len(u.chunks),
             time.strftime("%Y-%m-%dT%H:%M:%S%z")),
        )  # fmt: skip
        with self.conn.cursor() as cur:
            cur.executemany(
                self._sql.SQL("INSERT INTO {} VALUES (%s,%s,%s,%s,%s,%s,%s,%s)").format(self._t()),
                [
                    (c.id, c.doc_id, c.ordinal, c.heading, c.text, c.start, c.end,
                     np.asarray(v, dtype=np.float32))
                    for c, v in zip(u.chunks, u.vectors)
                ],
            )  # fmt: skip

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k nearest chunks by cosine distance (HNSW, approximate), nearest first."""
        if not self._exists():
            return []
        vec = np.asarray(vector, dtype=np.float32)
        with self.conn.transaction():
            self.conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, int(k))}")
            rows = self.conn.execute(
                self._sql.SQL(
                    "SELECT id, embedding <=> %s AS d FROM {} ORDER BY embedding <=> %s LIMIT %s"
                ).format(self._t()),
                (vec, vec, int(k)),
            ).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def close(self) -> None:
        self.conn.close()
