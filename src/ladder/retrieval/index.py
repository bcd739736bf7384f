"""The retrieval index: chunks with their vectors in a store, BM25 beside them, hybrid by RRF.

A store keeps documents (with content hashes, so re-ingestion touches only changed files),
chunks and one vector per chunk, and answers nearest-neighbour queries. Two stores share this API:

- `SqliteVecStore` (the default, embedded): one SQLite file with the sqlite-vec extension, opened
  through apsw because many Python builds (pyenv's, macOS's) cannot load SQLite extensions.
  Exact cosine search; a re-ingest is one transaction, so a failure leaves the old index intact.
- `PgVectorStore` (`retrieval/pgstore.py`): PostgreSQL + pgvector with an HNSW index, for teams
  that outgrow one machine; chosen by a `postgresql://` URL.

`Retriever` adds BM25 (bm25s, built in memory from the stored chunks when first needed: about a
second per 10k chunks, and never out of step with the vectors) and reciprocal-rank fusion.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ladder.errors import LadderError, require

RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al., 2009)
MODES: tuple[Literal["dense", "bm25", "hybrid"], ...] = ("dense", "bm25", "hybrid")


class IndexStoreError(LadderError):
    """The index cannot be opened, or was built in a way that no longer matches."""


@dataclass(frozen=True)
class DocRecord:
    id: str
    sha256: str
    kind: str
    title: str
    bytes: int
    chunks: int = 0


@dataclass(frozen=True)
class ChunkRecord:
    id: str
    doc_id: str
    ordinal: int
    heading: str
    title: str  # the document's title
    text: str

    def label(self) -> str:
        from ladder.retrieval.chunk import Chunk

        return Chunk(self.id, self.doc_id, self.ordinal, self.heading, "", 0, 0).label(self.title)

    def indexed_text(self) -> str:
        """What is embedded and BM25-indexed: where the passage is from, then the passage."""
        return f"{self.label()}\n{self.text}"


@dataclass(frozen=True)
class Upsert:
    doc: DocRecord
    chunks: list  # ladder.retrieval.chunk.Chunk, in order
    vectors: np.ndarray  # (len(chunks), dim) float32, unit rows


class VectorStore(Protocol):
    location: str

    def meta(self) -> dict[str, str]: ...
    def documents(self) -> dict[str, DocRecord]: ...
    def chunks(self) -> list[ChunkRecord]: ...
    def apply(
        self, upserts: list[Upsert], deletes: list[str], meta: dict[str, str], reset: bool = False
    ) -> None: ...
    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]: ...
    def close(self) -> None: ...


def check_meta(store: VectorStore, embedder_name: str, dim: int) -> None:
    """Refuse an index built by another embedding model: its vectors are not comparable."""
    meta = store.meta()
    if not meta:
        return
    if meta.get("embedder") != embedder_name or int(meta.get("dim", dim)) != dim:
        raise IndexStoreError(
            f"the index was built with embedding model {meta.get('embedder')!r} "
            f"({meta.get('dim')} dimensions), but Ladder now embeds with {embedder_name!r} "
            f"({dim} dimensions): the vectors cannot be compared.",
            where=store.location,
            fix="rebuild the index: `ladder ingest TASK --rebuild`.",
        )


# ---------------------------------------------------------------- sqlite-vec


class SqliteVecStore:
    """Documents, chunks and vectors in one SQLite file (sqlite-vec `vec0` table, cosine)."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS documents (
        id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
        bytes INTEGER NOT NULL, chunks INTEGER NOT NULL, ingested_at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS chunks (
        rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
        doc_id TEXT NOT NULL REFERENCES documents(id), ordinal INTEGER NOT NULL,
        heading TEXT NOT NULL, text TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
    """

    def __init__(self, path: str | Path):
        apsw = require("apsw", "rag", "The embedded retrieval index")
        sqlite_vec = require("sqlite_vec", "rag", "The embedded retrieval index")
        self.path = Path(path)
        self.location = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = apsw.Connection(str(self.path))
            self.db.setbusytimeout(30_000)  # ms: wait for another process's ingest to commit
            self.db.enable_load_extension(True)
            self.db.load_extension(sqlite_vec.loadable_path())
            self.db.enable_load_extension(False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(self.SCHEMA)
        except (apsw.Error, OSError) as exc:
            raise IndexStoreError(
                f"cannot open the index: {exc}.",
                where=self.path,
                fix="delete the file to rebuild it with `ladder ingest TASK`.",
            ) from None

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def documents(self) -> dict[str, DocRecord]:
        rows = self.db.execute("SELECT id, sha256, kind, title, bytes, chunks FROM documents")
        return {r[0]: DocRecord(*r) for r in rows}

    def chunks(self) -> list[ChunkRecord]:
        rows = self.db.execute(
            "SELECT c.id, c.doc_id, c.ordinal, c.heading, d.title, c.text "
            "FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY c.doc_id, c.ordinal"
        )
        return [ChunkRecord(*r) for r in rows]

    def _ensure_vectors(self, dim: int) -> None:
        exists = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'vectors'").fetchall()
        if not exists:
            self.db.execute(
                f"CREATE VIRTUAL TABLE vectors USING vec0(embedding float[{dim}] distance_metric=cosine)"
            )

    def apply(
        self, upserts: list[Upsert], deletes: list[str], meta: dict[str, str], reset: bool = False
    ) -> None:
        """Replace and delete documents and record `meta` in one transaction (`reset`: start empty)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with self.db:  # a savepoint: everything below lands, or nothing does
            if reset:
                self.db.execute(
                    "DROP TABLE IF EXISTS vectors; DELETE FROM chunks; DELETE FROM documents; "
                    "DELETE FROM meta;"
                )
            self._ensure_vectors(int(meta["dim"]))
            for doc_id in deletes + [u.doc.id for u in upserts]:
                self._delete(doc_id)
            for u in upserts:
                d = u.doc
                self.db.execute(
                    "INSERT INTO documents VALUES (?,?,?,?,?,?,?)",
                    (d.id, d.sha256, d.kind, d.title, d.bytes, len(u.chunks), stamp),
                )
                for c, vec in zip(u.chunks, u.vectors):
                    self.db.execute(
                        'INSERT INTO chunks (id, doc_id, ordinal, heading, text, start, "end") '
                        "VALUES (?,?,?,?,?,?,?)",
                        (c.id, c.doc_id, c.ordinal, c.heading, c.text, c.start, c.end),
                    )
                    rowid = self.db.last_insert_rowid()
                    self.db.execute(
                        "INSERT INTO vectors (rowid, embedding) VALUES (?, ?)",
                        (rowid, np.asarray(vec, dtype=np.float32).tobytes()),
                    )
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))

    def _delete(self, doc_id: str) -> None:
        rowids = [
            r[0] for r in self.db.execute("SELECT rowid FROM chunks WHERE doc_id=?", (doc_id,))
        ]
        self.db.executemany("DELETE FROM vectors WHERE rowid=?", [(r,) for r in rowids])
        self.db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        self.db.execute("DELETE FROM documents WHERE id=?", (doc_id,))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k nearest chunks by cosine distance (exact), nearest first."""
        if not self.meta():
            return []
        rows = self.db.execute(
            "SELECT c.id, v.distance FROM vectors v JOIN chunks c ON c.rowid = v.rowid "
            "WHERE v.embedding MATCH ? AND k = ? ORDER BY v.distance",
            (np.asarray(vector, dtype=np.float32).tobytes(), int(k)),
        )
        return [(r[0], float(r[1])) for r in rows]

    def close(self) -> None:
        self.db.close()


def open_store(location: str | Path, collection: str) -> VectorStore:
    """A store by location: a `postgresql://` URL, or a path to the embedded index file."""
    loc = str(location)
    if loc.startswith(("postgresql://", "postgres://")):
        from ladder.retrieval.pgstore import PgVectorStore

        return PgVectorStore(loc, collection)
    return SqliteVecStore(loc)


# ---------------------------------------------------------------- retrieval


@dataclass(frozen=True)
class Hit:
    chunk: ChunkRecord
    score: float  # cosine similarity (dense), BM25 score, or fused RRF score
    rank: int  # 1-based


class Retriever:
    """Dense, BM25 or hybrid (reciprocal-rank fusion) search over one store's chunks."""

    def __init__(self, store: VectorStore, embedder, rrf_k: int = RRF_K):
        self.store, self.embedder, self.rrf_k = store, embedder, rrf_k
        self.chunks = store.chunks()
        self.by_id = {c.id: c for c in self.chunks}
        self._bm25: Any = None  # a bm25s.BM25, built on the first BM25 query

    def describe(self) -> dict:
        return {"store": self.store.location, "chunks": len(self.chunks), "rrf_k": self.rrf_k}

    def _bm25_index(self):
        if self._bm25 is None:
            bm25s = require("bm25s", "rag", "BM25 retrieval")
            tokens = bm25s.tokenize(
                [c.indexed_text() for c in self.chunks], stopwords="en", show_progress=False
            )
            self._bm25 = bm25s.BM25()
            self._bm25.index(tokens, show_progress=False)
        return self._bm25

    def _bm25_ranked(self, queries: list[str], depth: int) -> list[list[tuple[str, float]]]:
        import bm25s

        index = self._bm25_index()
        depth = min(depth, len(self.chunks))
        tokens = bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)
        out: list[list[tuple[str, float]]] = []
        for toks in tokens:
            if not toks:
                out.append([])
                continue
            docs, scores = index.retrieve([toks], k=depth, show_progress=False)
            out.append(
                [(self.chunks[int(i)].id, float(s)) for i, s in zip(docs[0], scores[0]) if s > 0]
            )
        return out

    def _dense_ranked(self, queries: list[str], depth: int) -> list[list[tuple[str, float]]]:
        vectors = self.embedder.embed(queries)
        return [[(cid, 1.0 - d) for cid, d in self.store.search(v, depth)] for v in vectors]

    def search(self, queries: list[str], mode: str, k: int) -> list[list[Hit]]:
        """The top-k chunks for each query, best first."""
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
        if not self.chunks or not queries:
            return [[] for _ in queries]
        depth = max(k * 4, 20)  # fusion needs more than k candidates from each list
        lists: list[list[list[tuple[str, float]]]] = []
        if mode in ("dense", "hybrid"):
            lists.append(self._dense_ranked(queries, depth if mode == "hybrid" else k))
        if mode in ("bm25", "hybrid"):
            lists.append(self._bm25_ranked(queries, depth if mode == "hybrid" else k))
        results = []
        for qi in range(len(queries)):
            ranked = lists[0][qi] if mode != "hybrid" else self._fuse([lst[qi] for lst in lists])
            results.append([Hit(self.by_id[cid], s, r) for r, (cid, s) in enumerate(ranked[:k], 1)])
        return results

    def _fuse(self, ranked_lists: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
        scores: dict[str, float] = {}
        for ranked in ranked_lists:
            for rank, (cid, _) in enumerate(ranked, 1):
                scores[cid] = scores.get(cid, 0.0) + 1.0 / (self.rrf_k + rank)
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def meta_for(embedder, chunk_size: int, chunk_overlap: int) -> dict[str, str]:
    return {
        "embedder": embedder.name,
        "dim": str(embedder.dim),
        "chunking": json.dumps({"size": chunk_size, "overlap": chunk_overlap}),
        "schema": "1",
    }
