"""Ingestion: documents -> chunks -> vectors -> the index, re-embedding only what changed.

Each document's content hash is kept in the index. A re-ingest hashes the files, then reads,
chunks and embeds only new or changed ones, drops removed ones, and writes everything in one
transaction: a bad document (unreadable PDF, empty file, non-UTF-8 text...) stops the ingest
with an error naming it before anything is written. New chunking settings re-chunk every
document; a different embedding model is refused unless the index is rebuilt.

The embedded index lives in the run store, next to the task's runs:
`<runs>/<task>/index/index.sqlite` (`<runs>` is `./runs`, `--runs` or `$LADDER_RUNS`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ladder.errors import TaskError
from ladder.progress import NullProgress, Progress
from ladder.retrieval.chunk import DEFAULT_OVERLAP, DEFAULT_SIZE, chunk_document
from ladder.retrieval.documents import (
    DEFAULT_MAX_MB,
    check_size,
    doc_id,
    documents_dir,
    file_sha256,
    load_document,
    scan,
)
from ladder.retrieval.index import (
    DocRecord,
    Upsert,
    VectorStore,
    check_meta,
    meta_for,
    open_store,
)
from ladder.task import Task


@dataclass(frozen=True)
class IngestSettings:
    chunk_size: int = DEFAULT_SIZE
    chunk_overlap: int = DEFAULT_OVERLAP
    max_document_mb: float = DEFAULT_MAX_MB
    index_url: str | None = None  # postgresql://... (or $VAR holding one); None: embedded


@dataclass
class IngestReport:
    location: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files of unsupported types
    chunks: int = 0  # in the index after ingesting
    embedded: int = 0  # chunks embedded by this ingest
    seconds: float = 0.0

    @property
    def updated(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def settings_for(task: Task) -> IngestSettings:
    """Ingestion settings from the task's `rungs.rag` section (validated once, by `load_task`)."""
    cfg = task.rung_settings("rag")
    given = cfg if isinstance(cfg, dict) else cfg.model_dump()
    keys = IngestSettings.__dataclass_fields__
    return IngestSettings(**{k: v for k, v in given.items() if k in keys})


def index_location(task: Task, runs_dir: str | Path, settings: IngestSettings) -> str:
    url = settings.index_url
    if url and url.startswith("$"):
        value = os.environ.get(url[1:])
        if not value:
            raise TaskError(
                f"`rungs.rag.index_url` names the environment variable {url[1:]}, which is not set.",
                where=task.file,
                fix=f"export {url[1:]}=postgresql://USER@HOST/DB, or remove `index_url`.",
            )
        url = value
    if url:
        return url
    return str(Path(runs_dir) / task.name / "index" / "index.sqlite")


def open_index(task: Task, runs_dir: str | Path, settings: IngestSettings) -> VectorStore:
    return open_store(index_location(task, runs_dir, settings), task.name)


def ingest(
    task: Task,
    store: VectorStore,
    embedder,
    settings: IngestSettings,
    progress: Progress | None = None,
    *,
    rebuild: bool = False,
) -> IngestReport:
    """Bring the index up to date with the task's documents folder; see the module docstring."""
    t0 = time.perf_counter()
    progress = progress or NullProgress()
    folder = documents_dir(task)
    paths, skipped = scan(folder)
    report = IngestReport(store.location, skipped=[doc_id(p, folder) for p in skipped])
    if not rebuild:
        check_meta(store, embedder.name, embedder.dim)
    meta = meta_for(embedder, settings.chunk_size, settings.chunk_overlap)
    stored = {} if rebuild else store.documents()
    rechunk = rebuild or store.meta().get("chunking") != meta["chunking"]
    todo = []
    for path in paths:
        did = doc_id(path, folder)
        check_size(path, settings.max_document_mb)
        old = stored.get(did)
        if old is None:
            report.added.append(did)
        elif rechunk or old.sha256 != file_sha256(path):
            report.changed.append(did)
        else:
            report.unchanged.append(did)
            continue
        todo.append(path)
    on_disk = {doc_id(p, folder) for p in paths}
    report.removed = sorted(set(stored) - on_disk)
    upserts = _prepare(todo, folder, embedder, settings, progress)
    report.embedded = sum(len(u.chunks) for u in upserts)
    if upserts or report.removed or rebuild or store.meta() != meta:
        store.apply(upserts, report.removed, meta, reset=rebuild)
    report.chunks = sum(d.chunks for d in store.documents().values())
    report.seconds = round(time.perf_counter() - t0, 2)
    return report


def _prepare(paths: list[Path], folder: Path, embedder, settings, progress) -> list[Upsert]:
    """Read, chunk and embed documents; nothing is written, so an error leaves the index as it was."""
    docs, chunk_lists = [], []
    with progress.task("reading documents", total=len(paths)) as bar:
        for path in paths:
            doc = load_document(path, folder, settings.max_document_mb)
            docs.append(doc)
            chunk_lists.append(chunk_document(doc, settings.chunk_size, settings.chunk_overlap))
            bar.advance(1)
    from ladder.retrieval.index import ChunkRecord

    texts = [
        ChunkRecord(c.id, c.doc_id, c.ordinal, c.heading, d.title, c.text).indexed_text()
        for d, cs in zip(docs, chunk_lists)
        for c in cs
    ]
    vectors = _embed(embedder, texts, progress)
    upserts, pos = [], 0
    for doc, cs in zip(docs, chunk_lists):
        record = DocRecord(doc.id, doc.sha256, doc.kind, doc.title, doc.bytes, len(cs))
        upserts.append(Upsert(record, cs, vectors[pos : pos + len(cs)]))
        pos += len(cs)
    return upserts


def _embed(embedder, texts: list[str], progress, batch: int = 64):
    import numpy as np

    parts = []
    with progress.task(f"embedding {len(texts)} chunks", total=len(texts)) as bar:
        for start in range(0, len(texts), batch):
            parts.append(embedder.embed(texts[start : start + batch]))
            bar.advance(len(texts[start : start + batch]))
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
