"""The embedded index: ingest, incremental re-ingest, search modes, mismatches, atomicity."""

from __future__ import annotations

import pytest

from ladder.errors import DataError
from ladder.retrieval.index import IndexStoreError, Retriever, SqliteVecStore
from ladder.retrieval.ingest import IngestSettings, index_location, ingest
from ladder.task import load_task
from retrieval_helpers import HashEmbedder, write_qa_task


@pytest.fixture
def setup(tmp_path):
    task = load_task(write_qa_task(tmp_path / "task"))
    store = SqliteVecStore(tmp_path / "index" / "index.sqlite")
    yield task, store, HashEmbedder()
    store.close()


def test_ingest_then_search_every_mode(setup):
    task, store, emb = setup
    report = ingest(task, store, emb, IngestSettings())
    assert sorted(report.added) == ["hub.html", "returns.md", "shipping.txt"]
    assert report.chunks == report.embedded > 3
    retriever = Retriever(store, emb)
    for mode in ("dense", "bm25", "hybrid"):
        hits = retriever.search(["How loud is the hub speaker in dB?"], mode, 2)[0]
        assert hits[0].chunk.doc_id == "hub.html", mode
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert retriever.search(["zzz qqq"], "bm25", 3) == [[]]  # no shared word, no BM25 hit


def test_reingest_touches_only_what_changed(setup):
    task, store, emb = setup
    ingest(task, store, emb, IngestSettings())
    first = emb.calls
    again = ingest(task, store, emb, IngestSettings())
    assert again.embedded == 0 and emb.calls == first and len(again.unchanged) == 3
    docs = task.resolve("docs")
    (docs / "returns.md").write_text("# Returns\n\nYou can return any device within 60 days.")
    (docs / "shipping.txt").unlink()
    (docs / "faq.md").write_text("# FAQ\n\nGift cards never expire.")
    report = ingest(task, store, emb, IngestSettings())
    assert report.changed == ["returns.md"] and report.removed == ["shipping.txt"]
    assert report.added == ["faq.md"] and report.unchanged == ["hub.html"]
    assert emb.calls - first == report.embedded == 2
    texts = " ".join(c.text for c in store.chunks())
    assert "60 days" in texts and "45 days" not in texts and "Standard shipping" not in texts
    assert not any(cid == "shipping.txt#0" for cid, _ in store.search(emb.embed(["x"])[0], 50))


def test_new_chunking_rechunks_everything(setup):
    task, store, emb = setup
    ingest(task, store, emb, IngestSettings())
    report = ingest(task, store, emb, IngestSettings(chunk_size=150, chunk_overlap=20))
    assert len(report.changed) == 3 and report.embedded == report.chunks


def test_a_different_embedding_model_is_refused_until_rebuilt(setup):
    task, store, emb = setup
    ingest(task, store, emb, IngestSettings())
    other = HashEmbedder(dim=32)
    other.name = "another-model"
    with pytest.raises(IndexStoreError) as exc:
        ingest(task, store, other, IngestSettings())
    msg = str(exc.value)
    assert "hash-bow-64" in msg and "64 dimensions" in msg and "32 dimensions" in msg
    assert store.location in msg and "--rebuild" in msg
    report = ingest(task, store, other, IngestSettings(), rebuild=True)
    assert report.embedded == report.chunks and store.meta()["dim"] == "32"
    assert Retriever(store, other).search(["hub speaker"], "dense", 1)[0]


def test_a_bad_document_leaves_the_index_as_it_was(setup):
    task, store, emb = setup
    ingest(task, store, emb, IngestSettings())
    before = [(c.id, c.text) for c in store.chunks()]
    docs = task.resolve("docs")
    (docs / "returns.md").write_text("# Returns\n\nNow 90 days.")
    (docs / "zz-broken.txt").write_bytes(b"\xff\xfe broken")
    with pytest.raises(DataError, match=r"zz-broken\.txt"):
        ingest(task, store, emb, IngestSettings())
    assert [(c.id, c.text) for c in store.chunks()] == before


def test_index_location_is_in_the_run_store_unless_a_url_is_given(setup, tmp_path, monkeypatch):
    task, _, _ = setup
    assert index_location(task, tmp_path, IngestSettings()) == str(
        tmp_path / "tiny-qa" / "index" / "index.sqlite"
    )
    monkeypatch.setenv("PG_URL", "postgresql://u@h/db")
    assert (
        index_location(task, tmp_path, IngestSettings(index_url="$PG_URL")) == "postgresql://u@h/db"
    )
    monkeypatch.delenv("PG_URL")
    with pytest.raises(Exception, match="PG_URL, which is not set"):
        index_location(task, tmp_path, IngestSettings(index_url="$PG_URL"))


def test_a_corrupt_index_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "index.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexStoreError, match="cannot open the index"):
        SqliteVecStore(bad)
