"""The index API on a real PostgreSQL with pgvector, started from the `pgserver` package."""

from __future__ import annotations

import os

import pytest

from ladder.climb import ClimbOptions, climb
from ladder.engines.fake import FakeEngine
from ladder.retrieval.index import IndexStoreError, Retriever, open_store
from ladder.retrieval.ingest import IngestSettings, ingest
from ladder.task import load_task
from retrieval_helpers import HashEmbedder, write_qa_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory):
    # platformdirs (under pgserver) warns when there is no runtime dir, as in CI containers
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def test_ingest_search_and_reingest_on_postgres(tmp_path, pg_url):
    task = load_task(write_qa_task(tmp_path / "t"))
    store, emb = open_store(pg_url, "pg-test-1"), HashEmbedder()
    assert "postgres" in store.location and "collection pg-test-1" in store.location
    report = ingest(task, store, emb, IngestSettings())
    assert report.embedded == report.chunks > 3
    retriever = Retriever(store, emb)
    for mode in ("dense", "bm25", "hybrid"):
        assert retriever.search(["How loud is the hub speaker?"], mode, 2)[0][0].chunk.doc_id == (
            "hub.html"
        )
    again = ingest(task, store, emb, IngestSettings())
    assert again.embedded == 0 and len(again.unchanged) == 3
    (task.resolve("docs") / "returns.md").write_text("# Returns\n\nWithin 60 days.")
    (task.resolve("docs") / "shipping.txt").unlink()
    report = ingest(task, store, emb, IngestSettings())
    assert report.changed == ["returns.md"] and report.removed == ["shipping.txt"]
    texts = " ".join(c.text for c in store.chunks())
    assert "60 days" in texts and "45 days" not in texts and "Standard shipping" not in texts
    other = HashEmbedder(dim=32)
    other.name = "another-model"
    with pytest.raises(IndexStoreError, match="64 dimensions"):
        ingest(task, store, other, IngestSettings())
    rebuilt = ingest(task, store, other, IngestSettings(), rebuild=True)
    assert rebuilt.embedded == rebuilt.chunks and store.meta()["dim"] == "32"
    store.close()


def test_collections_are_separate_and_exact_enough(tmp_path, pg_url):
    task = load_task(write_qa_task(tmp_path / "t"))
    emb = HashEmbedder()
    a, b = open_store(pg_url, "pg-a"), open_store(pg_url, "pg-b")
    ingest(task, a, emb, IngestSettings())
    assert b.documents() == {} and b.chunks() == [] and b.search(emb.embed(["x"])[0], 3) == []
    vec = emb.embed(["hub backup battery hours"])[0]
    hits = a.search(vec, 3)
    assert [d for _, d in hits] == sorted(d for _, d in hits)
    a.close()
    b.close()


def test_a_rag_climb_can_use_postgres(tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("LADDER_TEST_PG", pg_url)
    task = write_qa_task(
        tmp_path / "t", extra_yaml="rungs: {rag: {k: [2], index_url: $LADDER_TEST_PG}}\n"
    )

    def hook(ctx):
        ctx.set_engine("fake", FakeEngine(responder=lambda req: " 45 days [2]"))
        ctx._embedder = HashEmbedder()

    res = climb(task, ClimbOptions(model="fake", rungs=["rag"]), ctx_hook=hook)
    card = res.scorecards[0]
    assert "collection tiny-qa" in card.extras["index"]["location"]
    assert card.extras["retrieval"]["hit_rate"]["n"] > 0


def test_an_unreachable_server_is_a_clear_error():
    with pytest.raises(IndexStoreError) as exc:
        open_store("postgresql://ladder:secret@127.0.0.1:1/none?connect_timeout=2", "x")
    assert "cannot use PostgreSQL" in str(exc.value) and "secret" not in str(exc.value)
