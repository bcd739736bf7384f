"""Document loading and chunking: every format, every bad input, the chunk boundaries."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.errors import DataError, TaskError
from ladder.retrieval.chunk import chunk_document
from ladder.retrieval.documents import Document, load_corpus, load_document, scan
from ladder.task import load_task
from retrieval_helpers import DOCS, make_pdf


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text)
    return d


def test_markdown_text_and_html_are_read(folder):
    docs = {p.name: load_document(p, folder) for p in scan(folder)[0]}
    assert docs["returns.md"].title == "Returns" and docs["returns.md"].kind == "markdown"
    assert docs["shipping.txt"].title == "SHIPPING"
    hub = docs["hub.html"]
    assert hub.title == "Hub"  # "Hub | Acme" loses the site name
    assert "up to 6 hours – long enough" in hub.text  # entities decoded
    assert "| Speaker | 85 dB |" in hub.text  # tables survive as Markdown rows
    for furniture in ("var x", "Shop Help", "cookies", "©"):
        assert furniture not in hub.text
    assert len(hub.sha256) == 64 and hub.bytes == len(DOCS["hub.html"])


def test_pdf_text_is_extracted(folder):
    (folder / "guide.pdf").write_bytes(make_pdf(["Quick start", "Hold the button for 12 seconds."]))
    doc = load_document(folder / "guide.pdf", folder)
    assert doc.kind == "pdf" and "Hold the button for 12 seconds." in doc.text


def test_html_with_a_declared_legacy_charset_is_decoded(folder):
    html = '<html><head><meta charset="iso-8859-1"></head><body><p>Caf\xe9 hours</p></body></html>'
    (folder / "cafe.html").write_bytes(html.encode("latin-1"))
    assert "Café hours" in load_document(folder / "cafe.html", folder).text


BAD = [
    ("locked.pdf", lambda: make_pdf(["secret"], password="pw"), "encrypted with a password"),
    ("broken.pdf", lambda: b"%PDF-1.4\nthis is not really a pdf", "not a readable PDF"),
    ("blank.pdf", lambda: make_pdf([]), "no extractable text"),
    ("empty.md", lambda: b"  \n\n", "is empty"),
    ("latin1.txt", lambda: "line one\ncaf\xe9\n".encode("latin-1"), "line 2: not UTF-8"),
    ("latin1.html", lambda: b"<p>caf\xe9</p>", "line 1: not UTF-8"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_documents_are_clear_errors_naming_the_file(folder, name, content, message):
    (folder / name).write_bytes(content())
    with pytest.raises(DataError) as exc:
        load_document(folder / name, folder)
    assert message in str(exc.value) and name in str(exc.value)


def test_oversize_documents_are_refused_before_reading(folder):
    with pytest.raises(DataError) as exc:
        load_document(folder / "returns.md", folder, max_mb=0.0001)
    assert "above the 0.0001 MB limit" in str(exc.value) and "max_document_mb" in str(exc.value)


def test_folder_problems(tmp_path, folder):
    (folder / "notes.docx").write_bytes(b"PK")
    (folder / ".hidden.md").write_text("# hidden")
    found, skipped = scan(folder)
    assert [p.name for p in skipped] == ["notes.docx"]
    assert ".hidden.md" not in [p.name for p in found]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no documents found"):
        scan(empty)
    (tmp_path / "task.yaml").write_text(
        "name: t\nkind: qa\ndata: {path: q.jsonl}\ndocuments: missing/\n"
    )
    with pytest.raises(TaskError, match="does not exist"):
        load_corpus(load_task(tmp_path))


def doc(text: str, kind: str = "markdown") -> Document:
    return Document("d.md", kind, "T", text, "0" * 64, len(text))


def test_headings_start_chunks_and_chunks_are_spans_of_the_text():
    text = (
        "# Title\n\nIntro line.\n\n## A\n\nAlpha one.\n\n## B\n\n### B1\n\nBeta one.\n\nBeta two."
    )
    chunks = chunk_document(doc(text), size=200, overlap=0)
    assert [c.heading for c in chunks] == ["Title", "A", "B1"]
    assert chunks[2].text.startswith("## B\n\n### B1")  # a lone heading joins the next section
    for c in chunks:
        assert c.text == text[c.start : c.end]
    assert chunks[1].label("T") == "d.md — T — A"


def test_long_sections_split_at_sentences_with_overlap():
    sentences = [f"Sentence number {i} says something useful." for i in range(30)]
    text = "## Policy\n\n" + " ".join(sentences)
    chunks = chunk_document(doc(text), size=200, overlap=60)
    assert len(chunks) > 3 and all(len(c.text) <= 200 for c in chunks)
    for a, b in pairwise(chunks):
        assert b.start < a.end  # neighbours share text...
        assert text[b.start : a.end].strip().endswith(".")  # ...made of whole sentences
    assert all(c.heading == "Policy" for c in chunks)


def test_plain_text_capital_lines_are_headings():
    text = "SETUP GUIDE\n\nSTEP 1 - PAIR\nHold the button.\n\nSTEP 2 - MOUNT\nUse the screws."
    chunks = chunk_document(doc(text, "text"), size=300, overlap=0)
    assert [c.heading for c in chunks] == ["STEP 1 - PAIR", "STEP 2 - MOUNT"]
    assert chunks[0].text.startswith("SETUP GUIDE\n\nSTEP 1")


words = st.text(alphabet="abcdefgh .\n#", min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(words, min_size=1, max_size=60), st.integers(40, 200), st.integers(0, 39))
def test_chunks_cover_every_word_within_the_size(parts, size, overlap):
    text = " ".join(parts).strip() or "x"
    chunks = chunk_document(doc(text, "text"), size=size, overlap=overlap)
    covered = set()
    for c in chunks:
        assert c.text == text[c.start : c.end] and len(c.text) <= size
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
