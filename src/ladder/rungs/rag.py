"""The `rag` rung: retrieve passages from the task's documents and answer citing them.

1. Ingest: the documents folder is brought up to date in the index (incremental: only changed
   files are re-embedded), so a climb always reads the current documents.
2. Tune retrieval on dev (no model calls): each mode (dense, BM25, hybrid by reciprocal-rank
   fusion) is scored against the gold evidence by MRR; the best mode is kept.
3. Tune k on dev with the model: one candidate per k, chosen by the task's primary metric.

The prompt shows k passages numbered [1]..[k], the best last (next to the question, where a small
model looks), after one worked example from train that shows the answer-then-cite format. The
model answers in a line ending with the numbers it cites; each prediction stores what was
retrieved, what was cited and the per-question scores (`Prediction.extra`), and the scorecard
gets hit-rate@k, MRR, citation correctness and groundedness (`extras["retrieval"]`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ladder.dataset import Example, Prediction
from ladder.errors import LadderError
from ladder.retrieval import evidence as ev
from ladder.retrieval.index import MODES, RRF_K, Hit, Retriever
from ladder.rungs import answering
from ladder.rungs.base import Prepared, select_on_dev
from ladder.rungs.context import Context

INTRO = (
    "Answer each question from the passages given with it. Write a short answer, then the "
    "number of the passage it comes from in square brackets, like [2]. "
)


class RagConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    modes: list[Literal["dense", "bm25", "hybrid"]] = Field(
        default_factory=lambda: list(MODES), description="retrieval modes compared on dev"
    )
    k: list[int] = Field(
        default_factory=lambda: [3, 5], description="passages per prompt, tried on dev"
    )
    chunk_size: int = Field(800, ge=100, le=20000, description="characters per chunk, at most")
    chunk_overlap: int = Field(120, ge=0, description="characters shared by neighbouring chunks")
    rrf_k: int = Field(RRF_K, ge=1, description="reciprocal-rank fusion constant")
    max_document_mb: float = Field(50.0, gt=0, description="larger document files are refused")
    index_url: str | None = Field(
        None, description="postgresql://... or $VAR for PostgreSQL + pgvector (default: embedded)"
    )
    demonstration: bool = Field(True, description="show one worked example from train")
    model: str | None = Field(None, description="model for this rung (default: the task's)")

    @model_validator(mode="after")
    def _check(self) -> RagConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        if not self.k or min(self.k) < 1:
            raise ValueError("k must list numbers of passages of at least 1")
        return self


def _passages(hits: list[Hit]) -> tuple[str, list[Hit]]:
    """Passages numbered in the order shown: the best-ranked last, next to the question."""
    shown = list(reversed(hits))
    text = "\n\n".join(f"[{n}] {h.chunk.label()}\n{h.chunk.text}" for n, h in enumerate(shown, 1))
    return text, shown


class RagSolution:
    """Retriever + model + prompt: answers with citations of the passages it was given."""

    rung = "rag"

    def __init__(self, ctx: Context, retriever: Retriever, mode: str, k: int, demo: str, model):

        self.ctx, self.task, self.retriever = ctx, ctx.task, retriever
        self.mode, self.k, self.demo = mode, k, demo
        self.variant = f"{mode}-k{k}"
        self.kind = ctx.task.kind_impl
        self.model = model or ctx.model
        self.engine = ctx.engine(self.model)
        self.max_new_tokens = answering.answer_budget(ctx, self.engine, extra=4)

    def describe(self) -> dict[str, Any]:
        return {
            "rung": self.rung,
            "variant": self.variant,
            "model": self.model,
            "mode": self.mode,
            "k": self.k,
            "index": self.retriever.describe(),
            "demonstration": bool(self.demo),
            "max_new_tokens": self.max_new_tokens,
        }

    @classmethod
    def from_description(cls, ctx: Context, desc: dict[str, Any]) -> RagSolution:
        """The solution `describe()` recorded, over the task's index brought up to date first
        (served answers read the current documents, as a climb would)."""
        from ladder.retrieval.ingest import ingest, open_index, settings_for

        settings = settings_for(ctx.task)
        store = open_index(ctx.task, ctx.store.runs_dir, settings)
        ctx.on_close(store.close)
        ingest(ctx.task, store, ctx.embedder(), settings, ctx.progress)
        rrf_k = (desc.get("index") or {}).get("rrf_k", RRF_K)
        retriever = Retriever(store, ctx.embedder(), int(rrf_k))
        mode, k = desc["mode"], int(desc["k"])
        demo = Rag()._demo(ctx, retriever, mode) if desc.get("demonstration") else ""
        sol = cls(ctx, retriever, mode, k, demo, desc.get("model"))
        if desc.get("max_new_tokens"):
            sol.max_new_tokens = int(desc["max_new_tokens"])
        return sol

    def citations(self, pred: Prediction) -> list[dict[str, Any]]:
        """The passages an answer cites: document, chunk id and retrieval score."""
        scores = dict(map(tuple, pred.extra.get("retrieved", [])))
        out = []
        for cid in pred.extra.get("citations", []):
            chunk = self.retriever.by_id.get(cid)
            if chunk is not None:
                out.append({"document": chunk.doc_id, "chunk": cid, "score": scores.get(cid)})
        return out

    def header(self) -> str:
        rules = answering.ANSWER_RULES.format(source="passages", none="unanswerable")
        parts = [self.task.spec.instructions.strip(), INTRO + rules, self.demo]
        return "\n\n".join(p for p in parts if p) + "\n\n"

    def render(self, question: str, hits: list[Hit]) -> tuple[str, list[Hit]]:
        text, shown = _passages(hits)
        return f"{self.header()}Passages:\n{text}\n\nQuestion: {question}\nAnswer:", shown

    def predict(
        self, examples: list[Example], *, temperature: float = 0.0, seed: int = 0
    ) -> list[Prediction]:
        hit_lists = self.retriever.search([e.input for e in examples], self.mode, self.k)
        rendered = [self.render(e.input, h) for e, h in zip(examples, hit_lists)]
        answers = answering.generate_answers(
            self.engine, self.kind, self.task, [p for p, _ in rendered],
            self.max_new_tokens, temperature, seed,
        )  # fmt: skip
        return [
            answering.prediction(ex, ans, self._extra(ex, hits, shown, ans))
            for ex, hits, (_, shown), ans in zip(examples, hit_lists, rendered, answers)
        ]

    def _extra(self, ex: Example, hits: list[Hit], shown: list[Hit], ans) -> dict[str, Any]:
        cited = [shown[n - 1] for n in ans.cited if 1 <= n <= len(shown)]
        scores = ev.retrieval_scores(ex, [(h.chunk.doc_id, h.chunk.text) for h in hits]) or {}
        scores.update(ev.citation_scores(ex, ans.parsed.output, [h.chunk.text for h in cited]))
        return {
            "retrieved": [[h.chunk.id, round(h.score, 5)] for h in hits],
            "citations": [h.chunk.id for h in cited],
            "bad_citations": [n for n in ans.cited if not 1 <= n <= len(shown)],
            "scores": scores,
        }

    def summarize(self, examples: list[Example], preds: list[Prediction]) -> dict[str, Any]:
        """Hold-out retrieval and citation figures for the scorecard's extras."""
        items = [p.extra.get("scores", {}) for p in preds]
        spec = self.task.spec.eval
        summary = ev.summarize(items, spec.bootstrap, spec.seed)
        out: dict[str, Any] = {"retrieval": {"mode": self.mode, "k": self.k, **summary}}
        groups = answering.by_category(self.task, examples, preds)
        if groups:
            out["by_question_kind"] = groups
        return out


class Rag:
    """Retrieval-augmented answers with citations, over the task's documents."""

    name = "rag"
    family = "retrieve"
    Config = RagConfig

    def skip_reason(self, ctx: Context) -> str | None:
        return answering.skip_reason(ctx, self.name)

    def prepare(self, ctx: Context) -> Prepared:
        from ladder.retrieval.ingest import ingest, open_index, settings_for

        cfg: RagConfig = ctx.rung_config(self)
        settings = settings_for(ctx.task)
        store = open_index(ctx.task, ctx.store.runs_dir, settings)
        ctx.on_close(store.close)
        report = ingest(ctx.task, store, ctx.embedder(), settings, ctx.progress)
        docs = store.documents()
        self._guard_resume(ctx, store.location, docs)
        ev.resolve_evidence(ctx.task, ctx.dataset.examples, set(docs), ctx.dataset.source)
        retriever = Retriever(store, ctx.embedder(), cfg.rrf_k)
        forced = re.fullmatch(r"(dense|bm25|hybrid)-k([1-9]\d*)", ctx.variant or "")
        if forced:  # `--variant hybrid-k3`: no tuning, no dev selection
            tuning = {"chosen": forced.group(1), "note": f"forced by --variant {ctx.variant}"}
            ks = [int(forced.group(2))]
        else:
            tuning = tune_modes(retriever, ctx.examples("dev"), cfg.modes, max(cfg.k))
            ks = sorted(cfg.k)
        mode = tuning["chosen"]
        demo = self._demo(ctx, retriever, mode) if cfg.demonstration else ""
        cands = [RagSolution(ctx, retriever, mode, k, demo, cfg.model) for k in ks]
        prepared = select_on_dev(ctx, cands, self.name)
        prepared.extras = {"index": index_facts(store, report), "retrieval_tuning": tuning}
        return prepared

    def _guard_resume(self, ctx: Context, location: str, docs) -> None:
        """Predictions stored by a run must come from the documents it started with."""
        blob = "\n".join(f"{d}\t{r.sha256}" for d, r in sorted(docs.items()))
        digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
        for art in ctx.store.artifacts(ctx.run_id):
            if art["rung"] == self.name and art["kind"] == "index":
                if (art["meta"] or {}).get("corpus") != digest:
                    raise LadderError(
                        f"the documents changed since run {ctx.run_id} started, so its stored "
                        "rag predictions no longer match them.",
                        fix="start a new climb (without --resume) to measure the new documents.",
                    )
                return
        ctx.store.add_artifact(ctx.run_id, self.name, "index", location, None, {"corpus": digest})

    def _demo(self, ctx: Context, retriever: Retriever, mode: str) -> str:
        """A worked example from train: its question, two passages and the cited gold answer."""

        kind = ctx.task.kind_impl
        pool = answering.demo_examples(ctx)[:20]
        for ex, hits in zip(pool, retriever.search([e.input for e in pool], mode, 2)):
            needles = [kind.render_output(ex.output, ctx.task), *ev.gold_quotes(ex)]
            if len(hits) == 2 and any(ev.contains(hits[0].chunk.text, n) for n in needles):
                text, _ = _passages(hits)  # the answering passage is shown last: [2]
                answer = kind.render_output(ex.output, ctx.task)
                return f"Passages:\n{text}\n\nQuestion: {ex.input}\nAnswer: {answer} [2]"
        return ""


def index_facts(store, report) -> dict[str, Any]:
    """What the scorecard records about the index the rung answered from."""
    return {
        "location": store.location,
        "documents": len(store.documents()),
        "chunks": report.chunks,
        "ingest": {
            "added": len(report.added),
            "changed": len(report.changed),
            "removed": len(report.removed),
            "embedded_chunks": report.embedded,
            "seconds": report.seconds,
        },
    }


def tune_modes(retriever: Retriever, dev: list[Example], modes: Sequence[str], k: int) -> dict:
    """Score each retrieval mode on dev against gold evidence (MRR, hit-rate@k); pick the best."""
    scored = [e for e in dev if ev.gold_docs(e)]
    if not scored:
        chosen = "hybrid" if "hybrid" in modes else modes[0]
        return {"chosen": chosen, "note": "no gold evidence on dev: default mode", "modes": {}}
    table: dict[str, dict[str, float]] = {}
    for mode in modes:
        hits = retriever.search([e.input for e in scored], mode, k)
        items = []
        for e, h in zip(scored, hits):
            s = ev.retrieval_scores(e, [(x.chunk.doc_id, x.chunk.text) for x in h])
            assert s is not None  # `scored` holds only examples with gold evidence
            items.append(s)
        table[mode] = {
            f"hit_rate@{k}": round(float(np.mean([i["hit"] for i in items])), 4),
            "mrr": round(float(np.mean([i["rr"] for i in items])), 4),
            "n": len(items),
        }
    # ties go to the mode listed first
    chosen = max(modes, key=lambda m: (table[m]["mrr"], table[m][f"hit_rate@{k}"]))
    return {"chosen": chosen, "k": k, "modes": table}
