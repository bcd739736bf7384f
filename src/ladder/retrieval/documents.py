"""A task's documents: found in its `documents:` folder, read, and turned into plain text.

Markdown and plain text are read as UTF-8. HTML keeps its main content only (the `<main>` or
`<article>` element when there is one; navigation, headers, footers, scripts and forms are
dropped) and becomes Markdown, so headings and tables survive for chunking. PDF text comes from
pypdf, page by page. Every problem names the file: a document Ladder cannot read is an error,
never a silently smaller corpus.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ladder.errors import DataError, TaskError, require
from ladder.task import Task
from ladder.yamlio import read_text

KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
DEFAULT_MAX_MB = 50.0  # per document file; bigger files are refused before they are read
# elements that are page furniture rather than content
BOILERPLATE = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside"]
BOILERPLATE += ["form", "iframe", "svg", "button", "select"]
BOILERPLATE_ROLES = ["navigation", "banner", "contentinfo", "search", "complementary"]


@dataclass(frozen=True)
class Document:
    id: str  # path relative to the documents folder, with '/' separators
    kind: str  # markdown | text | html | pdf
    title: str
    text: str
    sha256: str  # of the file's bytes
    bytes: int


def documents_dir(task: Task) -> Path:
    """The task's documents folder; an error when it is not set or does not exist."""
    if not task.spec.documents:
        raise TaskError(
            "this task has no `documents:` folder.",
            where=task.file,
            fix="add `documents: docs/` (a folder of .md, .txt, .html or .pdf files) to task.yaml.",
        )
    folder = task.resolve(task.spec.documents)
    if not folder.is_dir():
        raise TaskError(
            f"the documents folder {folder} does not exist.",
            where=task.file,
            fix="create it, or correct `documents:` (relative paths start at the task folder).",
        )
    return folder


def scan(folder: Path) -> tuple[list[Path], list[Path]]:
    """(documents, skipped): files with a known suffix, and other files, both sorted."""
    found: list[Path] = []
    skipped: list[Path] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        (found if path.suffix.lower() in KINDS else skipped).append(path)
    if not found:
        raise DataError(
            "no documents found (looked for .md, .txt, .html, .htm and .pdf files).",
            where=folder,
            fix="put the documents the answers come from in this folder.",
        )
    return found, skipped


def doc_id(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def check_size(path: Path, max_mb: float) -> int:
    size = path.stat().st_size
    if size > max_mb * 1e6:
        raise DataError(
            f"the document is {size / 1e6:,.1f} MB, above the {max_mb:g} MB limit per document "
            "(it would be read into memory whole).",
            where=path,
            fix="split it into smaller files, or raise `rungs.rag.max_document_mb` in task.yaml.",
        )
    return size


def load_document(path: Path, folder: Path, max_mb: float = DEFAULT_MAX_MB) -> Document:
    """Read one document and extract its text; every failure is a DataError naming the file."""
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unsupported document type {path.suffix!r}.", where=path)
    size = check_size(path, max_mb)
    digest = file_sha256(path)
    if kind == "pdf":
        title, text = _pdf(path)
    elif kind == "html":
        title, text = _html(path)
    else:
        text = read_text(path, "document", DataError)
        title = _markdown_title(text) if kind == "markdown" else _caps_title(text)
    text = _tidy(text)
    if not text:
        what = "has no extractable text (a scanned PDF? run OCR on it first)"
        raise_empty(path, what if kind == "pdf" else "is empty")
    return Document(doc_id(path, folder), kind, title or path.stem, text, digest, size)


def raise_empty(path: Path, what: str) -> None:
    raise DataError(
        f"the document {what}.",
        where=path,
        fix="add its content, or remove the file from the documents folder.",
    )


def load_corpus(task: Task, max_mb: float = DEFAULT_MAX_MB) -> list[Document]:
    """Every document of the task, in id order."""
    folder = documents_dir(task)
    paths, _ = scan(folder)
    return [load_document(p, folder, max_mb) for p in paths]


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _markdown_title(text: str) -> str:
    m = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    return m.group(1).strip() if m else ""


def _caps_title(text: str) -> str:
    """Plain text: a first line in capitals is the title ("BATTERY CARE AND DISPOSAL")."""
    first = text.strip().split("\n", 1)[0].strip()
    letters = [c for c in first if c.isalpha()]
    return first if len(first) <= 80 and letters and all(c.isupper() for c in letters) else ""


# ---------------------------------------------------------------- HTML


def _decode_html(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from bs4.dammit import EncodingDetector

    declared = EncodingDetector.find_declared_encoding(raw, is_html=True)
    if declared:
        try:
            return raw.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    return read_text(path, "document", DataError)  # raises the line-numbered UTF-8 error


def _html(path: Path) -> tuple[str, str]:
    require("bs4", "rag", "Reading HTML documents")
    from bs4 import BeautifulSoup
    from markdownify import markdownify

    soup = BeautifulSoup(_decode_html(path), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    title = title.split(" | ")[0].strip()  # "Contact support | Nimbus Home" -> "Contact support"
    for tag in soup(BOILERPLATE):
        tag.decompose()
    for tag in soup.find_all(role=BOILERPLATE_ROLES):
        tag.decompose()
    for tag in soup.select(".skip-link, .breadcrumbs, .breadcrumb, .cookie"):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    text = markdownify(str(root), heading_style="ATX", bullets="-", strip=["a", "img"])
    if not title:
        title = _markdown_title(text)
    return title, text


# ---------------------------------------------------------------- PDF


def _pdf(path: Path) -> tuple[str, str]:
    pypdf = require("pypdf", "rag", "Reading PDF documents")
    from pypdf.errors import DependencyError, PdfReadError

    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted and not _decrypt_without_password(reader):
            raise DataError(
                "the PDF is encrypted with a password, so its text cannot be read.",
                where=path,
                fix="remove the password (e.g. `qpdf --decrypt --password=PW in.pdf out.pdf`) "
                "or take the file out of the documents folder.",
            )
        pages = []
        for number, page in enumerate(reader.pages, 1):
            try:
                pages.append(page.extract_text() or "")
            except Exception as exc:  # pypdf raises many types on damaged content streams
                raise DataError(
                    f"page {number} of the PDF cannot be read ({type(exc).__name__}: {exc}).",
                    where=path,
                    fix="re-export or repair the PDF (e.g. `qpdf in.pdf out.pdf`).",
                ) from None
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except DataError:
        raise
    except (PdfReadError, DependencyError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DataError(
            f"not a readable PDF ({type(exc).__name__}: {exc}).",
            where=path,
            fix="check the file is a complete PDF (re-download or re-export it).",
        ) from None
    return str(meta_title).strip(), "\n\n".join(p.strip() for p in pages if p.strip())


def _decrypt_without_password(reader) -> bool:
    """Many PDFs are 'encrypted' with an empty user password and open without one."""
    from pypdf.errors import DependencyError

    try:
        return bool(reader.decrypt(""))
    except (DependencyError, NotImplementedError):
        return False
