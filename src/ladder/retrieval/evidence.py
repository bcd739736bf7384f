"""Gold evidence and the retrieval-side measurements made against it.

A question's gold evidence comes from the data, mapped through `data.meta`: a column `evidence`
(a document id, i.e. a path inside the documents folder, or a list of them) and optionally
`evidence_quote` (the sentence that holds the answer, or a list). Per question, Ladder measures:

- hit@k: a gold document is among the top-k retrieved chunks; rr: 1 / rank of the first one
  (its mean is MRR); recall@k: the share of gold documents retrieved (multi-document questions);
- passage hit@k: a retrieved chunk contains a gold quote;
- citation correctness: a chunk the answer cites contains the gold answer or a gold quote;
- groundedness: the share of the answer's tokens that occur in the text it cites.

Text is compared after SQuAD-style normalisation (lower case, no punctuation or articles).
"""

from __future__ import annotations

import difflib
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from ladder.dataset import Example
from ladder.errors import DataError
from ladder.evaluation.stats import bootstrap_ci
from ladder.kinds import UNANSWERABLE, normalize_answer
from ladder.task import Task

EVIDENCE, QUOTE = "evidence", "evidence_quote"


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)]


def gold_docs(example: Example) -> list[str]:
    return _as_list(example.meta.get(EVIDENCE))


def gold_quotes(example: Example) -> list[str]:
    return _as_list(example.meta.get(QUOTE))


def has_evidence(examples: list[Example]) -> bool:
    return any(gold_docs(e) for e in examples)


def resolve_evidence(task: Task, examples: list[Example], doc_ids: set[str], data_file) -> None:
    """Map evidence ids onto document ids in place; a missing document is an error naming the row.

    Ids may be relative to the documents folder (`faq.html`) or to the task folder
    (`documents/faq.html`).
    """
    prefix = PurePosixPath(task.spec.documents or "").as_posix().strip("/") + "/"
    for ex in examples:
        ids = gold_docs(ex)
        if not ids:
            continue
        fixed = []
        for raw in ids:
            cand = raw[len(prefix) :] if raw.startswith(prefix) and prefix != "/" else raw
            if cand not in doc_ids:
                close = difflib.get_close_matches(cand, sorted(doc_ids), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise DataError(
                    f"line/row {ex.line} (id {ex.id!r}): evidence {raw!r} is not a document in "
                    f"{task.spec.documents}.{hint}",
                    where=data_file,
                    fix="evidence ids are paths inside the documents folder; correct the id or "
                    "add the document.",
                )
            fixed.append(cand)
        ex.meta[EVIDENCE] = fixed


def contains(haystack: str, needle: str) -> bool:
    """Whether the normalised needle occurs in the normalised haystack, on word boundaries."""
    n = normalize_answer(needle)
    return bool(n) and f" {n} " in f" {normalize_answer(haystack)} "


def retrieval_scores(example: Example, hits: list[tuple[str, str]]) -> dict[str, float] | None:
    """hit, rr, recall and passage hit for ranked (document id, chunk text); None without gold."""
    docs = set(gold_docs(example))
    if not docs:
        return None
    ranks = [r for r, (doc, _) in enumerate(hits, 1) if doc in docs]
    out = {
        "hit": float(bool(ranks)),
        "rr": 1.0 / ranks[0] if ranks else 0.0,
        "recall": len(docs & {doc for doc, _ in hits}) / len(docs),
    }
    quotes = gold_quotes(example)
    if quotes:
        out["passage_hit"] = float(any(contains(t, q) for _, t in hits for q in quotes))
    return out


def citation_scores(example: Example, answer: str | None, cited: list[str]) -> dict[str, float]:
    """Citation correctness and groundedness of one answer, given the texts it cites."""
    if answer is None or normalize_answer(answer) == UNANSWERABLE:
        return {}
    out: dict[str, float] = {"cited": float(bool(cited))}
    tokens = normalize_answer(answer).split()
    if tokens:
        support = set(normalize_answer(" ".join(cited)).split())
        out["grounded"] = sum(t in support for t in tokens) / len(tokens)
    golds = [g for g in _as_list(example.output) if normalize_answer(g) != UNANSWERABLE]
    if golds:  # only answerable questions have a right passage to cite
        needles = golds + gold_quotes(example)
        out["citation_correct"] = float(any(contains(t, n) for t in cited for n in needles))
    return out


SUMMARY = {  # per-item key -> (reported name, what it is)
    "hit": ("hit_rate", "a gold document in the top k"),
    "rr": ("mrr", "mean reciprocal rank of the first gold document"),
    "recall": ("evidence_recall", "share of gold documents in the top k"),
    "passage_hit": ("passage_hit_rate", "a top-k chunk contains a gold quote"),
    "citation_correct": ("citation_correctness", "a cited chunk contains the gold answer"),
    "grounded": ("groundedness", "share of answer tokens found in the cited text"),
    "cited": ("citation_rate", "answers that cite at least one passage"),
}


def summarize(items: list[dict[str, float]], resamples: int = 1000, seed: int = 0) -> dict:
    """Mean and 95% bootstrap interval of each per-item score, over the items that have it."""
    out: dict[str, Any] = {}
    for key, (name, desc) in SUMMARY.items():
        values = np.array([it[key] for it in items if it.get(key) is not None], dtype=float)
        if not len(values):
            continue
        v, lo, hi = bootstrap_ci(
            lambda t, idx: float(np.mean(t["v"][idx])),
            {"v": values},
            len(values),
            resamples=resamples,
            seed=seed,
        )
        out[name] = {"value": round(v, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4)}
        out[name]["n"] = len(values)
        out[name]["description"] = desc
    return out
