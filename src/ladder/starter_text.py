"""`ladder init`'s look at the text columns: their lengths, the question + context pair a
classify/qa task needs, and the gold-evidence columns of a qa task."""

from __future__ import annotations

from typing import Any

# a long column with one of these names is the evidence the short input is asked about
CONTEXT_NAMES = (
    "context",
    "contexts",
    "passage",
    "document",
    "abstract",
    "article",
    "evidence_text",
)
EVIDENCE_NAMES = (
    "evidence",
    "evidence_quote",
    "source",
    "sources",
    "doc_id",
    "document_id",
    "docs",
)
QUESTION_NAMES = ("question", "query", "q")


def text_columns(rows: list[tuple[int, dict[str, Any]]]) -> dict[str, tuple[float, int]]:
    """Columns holding text in most rows: (mean, max) length in characters."""
    out: dict[str, tuple[float, int]] = {}
    sample = [r for _, r in rows[:2000]]
    cols = dict.fromkeys(c for r in sample for c in r)
    for c in cols:
        vals = [_as_text(r.get(c)) for r in sample]
        strs = [v for v in vals if v is not None]
        if (
            strs
            and len(strs) >= 0.8 * len(sample)
            and any(any(ch.isalpha() for ch in v) for v in strs)
        ):
            out[c] = (sum(map(len, strs)) / len(strs), max(map(len, strs)))
    return out


def _as_text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return " ".join(v)  # PubMedQA-style contexts: a list of passages
    return None


def with_context(
    inputs: list[str], texts: dict[str, tuple[float, int]], taken: set[str]
) -> list[str]:
    """The guessed input plus a context column that is named so and much longer than it."""
    if len(inputs) != 1 or inputs[0] not in texts:
        return inputs
    short = texts[inputs[0]][0]
    lower = {c.lower(): c for c in texts if c not in taken and c not in inputs}
    for name in CONTEXT_NAMES:
        col = lower.get(name)
        if col and texts[col][0] >= 3 * short:
            return [inputs[0], col] if inputs[0].lower() in QUESTION_NAMES else [col, inputs[0]]
    return inputs


def evidence_columns(cols: list[str], taken: set[str]) -> list[str]:
    lower = {c.lower(): c for c in cols if c not in taken}
    return [lower[n] for n in EVIDENCE_NAMES if n in lower]


def column_lines(texts: dict[str, tuple[float, int]], used: set[str]) -> list[str]:
    """One line per text column for the summary, marking those the task does not use."""
    return [
        f"{c}: mean {mean:.0f} / max {mx} chars" + ("" if c in used else " (left out)")
        for c, (mean, mx) in sorted(texts.items(), key=lambda kv: -kv[1][0])
    ]
