"""Chunking: a document's text cut into passages that respect its structure.

Boundaries, strongest first: a heading always starts a new chunk; a chunk holds whole
paragraphs (a table or a list is one paragraph) up to `size` characters; a paragraph longer than
that is cut between lines, then between sentences, then between words. Consecutive chunks of one
section share up to `overlap` characters of whole units, so a fact on a boundary is whole in at
least one chunk. Every chunk is a contiguous span of the document (`start`..`end`), and carries
the heading it sits under, which retrieval and prompts show with it.

Sizes are in characters: about 4 per token for English prose, so the default 800 stays inside
the 256 tokens the MiniLM embedder reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from ladder.retrieval.documents import Document

DEFAULT_SIZE = 800
DEFAULT_OVERLAP = 120
_PARA = re.compile(r"\n[ \t]*\n")
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass(frozen=True)
class Chunk:
    id: str  # "<document id>#<ordinal>"
    doc_id: str
    ordinal: int
    heading: str  # the section the chunk starts in; "" before the first heading
    text: str
    start: int  # character offsets in the document's text
    end: int

    def label(self, title: str = "") -> str:
        """Where the passage is from, shown before its text in the index and in prompts."""
        parts = [self.doc_id]
        if title and title != self.heading:
            parts.append(title)
        if self.heading:
            parts.append(self.heading)
        return " — ".join(parts)


@dataclass
class _Unit:
    start: int
    end: int
    heading: str
    new_section: bool  # a heading starts here


def _heading_of(line: str, kind: str) -> str | None:
    m = _MD_HEADING.match(line)
    if m and kind in ("markdown", "html"):
        return m.group(1).strip("*_ ")
    letters = [c for c in line if c.isalpha()]
    # plain text and PDF: a short line in capitals ("STEP 1 - PAIR NEAR THE HUB")
    short = len(line) <= 80 and len(letters) >= 3
    if kind in ("text", "pdf") and short and all(c.isupper() for c in letters):
        return line.strip(" =-:")
    return None


def _paragraphs(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for m in _PARA.finditer(text):
        if text[pos : m.start()].strip():
            spans.append((pos, m.start()))
        pos = m.end()
    if text[pos:].strip():
        spans.append((pos, len(text)))
    return spans


def _split(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Cut a paragraph longer than `size` into lines, else sentences, else words (recursively)."""
    if end - start <= size:
        return [(start, end)]
    piece = text[start:end]
    for pattern in (r"\n", _SENTENCE.pattern, r"\s+"):
        cuts = sorted({start, end, *(start + m.end() for m in re.finditer(pattern, piece))})
        if len(cuts) > 2:
            return [p for s, e in pairwise(cuts) for p in _split(text, s, e, size)]
    return [(s, min(s + size, end)) for s in range(start, end, size)]  # one endless word


def _units(doc: Document, size: int) -> list[_Unit]:
    units: list[_Unit] = []
    heading = ""
    for start, end in _paragraphs(doc.text):
        first_line = doc.text[start:end].strip().split("\n", 1)[0]
        found = _heading_of(first_line.strip(), doc.kind)
        if found is not None:
            heading = found
        for i, (s, e) in enumerate(_split(doc.text, start, end, size)):
            units.append(_Unit(s, e, heading, found is not None and i == 0))
    return units


def chunk_document(
    doc: Document, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """The document's chunks, in order; see the module docstring for the boundaries."""
    if overlap >= size:
        raise ValueError(f"chunk overlap ({overlap}) must be smaller than the size ({size})")
    groups: list[list[_Unit]] = []
    cur: list[_Unit] = []
    for unit in _units(doc, size):
        too_long = cur and unit.end - cur[0].start > size
        only_headings = all(u.new_section and _is_heading_only(doc, u) for u in cur)
        if cur and ((unit.new_section and not only_headings) or too_long):
            groups.append(cur)
            cur = [] if unit.new_section else _tail(cur, overlap, unit, size)
        cur.append(unit)
    if cur:
        groups.append(cur)
    return [
        Chunk(
            f"{doc.id}#{n}",
            doc.id,
            n,
            next((u.heading for u in g if not _is_heading_only(doc, u)), g[-1].heading),
            doc.text[g[0].start : g[-1].end],
            g[0].start,
            g[-1].end,
        )
        for n, g in enumerate(groups)
    ]


def _is_heading_only(doc: Document, unit: _Unit) -> bool:
    """A unit that is nothing but a heading line ("## General" right before "### Question")."""
    return unit.new_section and "\n" not in doc.text[unit.start : unit.end].strip()


def _tail(units: list[_Unit], overlap: int, nxt: _Unit, size: int) -> list[_Unit]:
    """The last whole units of a chunk (at most `overlap` characters) that open the next one."""
    keep: list[_Unit] = []
    for u in reversed(units):
        if u.end - u.start + sum(k.end - k.start for k in keep) > overlap:
            break
        if nxt.end - u.start > size:  # the overlap must leave room for the next unit
            break
        keep.insert(0, u)
    return keep
