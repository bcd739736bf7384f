"""The `long-context` rung: the whole corpus in the prompt, as a prefix every question shares.

Every prompt is [instructions][every document][a worked example][the question]. Everything
before the question is identical token for token, so an engine with prefix caching computes its
key/value cache once and then runs only each question's few tokens (`engines/hf.py` keeps the
cache across calls while the prefix stays the same; OpenAI-compatible servers such as vLLM do
the same with automatic prefix caching). When the corpus does not fit the token budget
(`rungs.long-context.max_tokens`, bounded by the model's context length) the rung is skipped
with the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ladder.dataset import Example, Prediction
from ladder.rungs import answering
from ladder.rungs.base import Prepared
from ladder.rungs.context import Context

INTRO = "Answer the question from the documents below. "


class LongContextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_tokens: int = Field(
        200_000, ge=256, description="prompt token budget (also bounded by the model's context)"
    )
    demonstration: bool = Field(True, description="end the prefix with one worked example")
    model: str | None = Field(None, description="model for this rung (default: the task's)")


@dataclass
class Plan:
    prefix: str
    documents: int
    prefix_tokens: int
    budget: int  # tokens the prefix may use
    limit: int  # min(max_tokens, model context)
    context: int | None  # the model's context length, when the engine knows it
    reserve: int  # tokens kept for the longest question and its answer
    max_new_tokens: int

    def reason(self) -> str | None:
        if self.prefix_tokens <= self.budget:
            return None
        bound = f"max_tokens {self.limit:,}"
        if self.context is not None and self.context <= self.limit:
            bound = f"the model's context of {self.context:,}"
        return (
            f"the corpus ({self.documents} documents) is {self.prefix_tokens:,} tokens in the "
            f"prompt, over the budget of {self.budget:,} ({bound} minus {self.reserve:,} for the "
            "longest question and its answer); use the rag rung, a longer-context model, or "
            "raise rungs.long-context.max_tokens"
        )


def corpus_text(ctx: Context) -> tuple[str, int]:
    """Every document, in id order, each in a <document> element naming it."""
    from ladder.retrieval.documents import load_corpus
    from ladder.retrieval.ingest import settings_for

    docs = load_corpus(ctx.task, settings_for(ctx.task).max_document_mb)
    parts = [f'<document id="{d.id}" title="{d.title}">\n{d.text}\n</document>' for d in docs]
    return "\n\n".join(parts), len(docs)


def _demo(ctx: Context) -> str:

    kind = ctx.task.kind_impl
    pool = answering.demo_examples(ctx)
    if not pool:
        return ""
    ex = pool[0]
    return f"Question: {ex.input}\nAnswer: {kind.render_output(ex.output, ctx.task)}\n\n"


def make_plan(ctx: Context, cfg: LongContextConfig, engine) -> Plan:
    corpus, n_docs = corpus_text(ctx)
    rules = answering.ANSWER_RULES.format(source="documents", none="unanswerable")
    head = "\n\n".join(p for p in (ctx.task.spec.instructions.strip(), INTRO + rules) if p)
    demo = _demo(ctx) if cfg.demonstration else ""
    prefix = f"{head}\n\n{corpus}\n\n{demo}"
    max_new = answering.answer_budget(ctx, engine)
    questions = ctx.examples("dev") + ctx.examples("holdout")
    longest_q = max((engine.count_tokens(e.input) for e in questions), default=32)
    reserve = longest_q + max_new + 8  # "Question:", "Answer:" and line breaks
    context = getattr(engine, "context_length", None)
    limit = min(cfg.max_tokens, context) if context else cfg.max_tokens
    tokens = engine.count_tokens(prefix)
    return Plan(prefix, n_docs, tokens, limit - reserve, limit, context, reserve, max_new)


class LongContextSolution:
    """The corpus as a shared prompt prefix; each question is a short suffix."""

    rung = "long-context"
    variant = "full-corpus"

    def __init__(self, ctx: Context, plan: Plan, model: str):

        self.task, self.plan, self.model = ctx.task, plan, model
        self.kind = ctx.task.kind_impl
        self.engine = ctx.engine(model)

    def describe(self) -> dict[str, Any]:
        p = self.plan
        return {
            "rung": self.rung,
            "variant": self.variant,
            "model": self.model,
            "documents": p.documents,
            "prefix_tokens": p.prefix_tokens,
            "budget_tokens": p.budget,
            "max_new_tokens": p.max_new_tokens,
        }

    @classmethod
    def from_description(cls, ctx: Context, desc: dict[str, Any]) -> LongContextSolution:
        """The solution `describe()` recorded, over the current documents (refused when they
        no longer fit the budget)."""
        from ladder.errors import LadderError

        cfg: LongContextConfig = ctx.task.rung_settings(LongContext.name)
        model = desc.get("model") or cfg.model or ctx.model
        plan = make_plan(ctx, cfg, ctx.engine(model))
        if plan.reason():
            raise LadderError(f"{plan.reason()}.")
        if desc.get("max_new_tokens"):
            plan.max_new_tokens = int(desc["max_new_tokens"])
        return cls(ctx, plan, model)

    def prompt(self, question: str) -> str:
        return f"{self.plan.prefix}Question: {question}\nAnswer:"

    def predict(
        self, examples: list[Example], *, temperature: float = 0.0, seed: int = 0
    ) -> list[Prediction]:
        answers = answering.generate_answers(
            self.engine, self.kind, self.task, [self.prompt(e.input) for e in examples],
            self.plan.max_new_tokens, temperature, seed,
        )  # fmt: skip
        return [
            answering.prediction(ex, ans, {"cached_tokens": ans.completion.cached_tokens})
            for ex, ans in zip(examples, answers)
        ]

    def summarize(self, examples: list[Example], preds: list[Prediction]) -> dict[str, Any]:
        cached = [p.extra.get("cached_tokens", 0) for p in preds]
        groups = answering.by_category(self.task, examples, preds)
        return {
            **({"by_question_kind": groups} if groups else {}),
            "long_context": {
                "documents": self.plan.documents,
                "prefix_tokens": self.plan.prefix_tokens,
                "budget_tokens": self.plan.budget,
                "cached_tokens_mean": round(float(np.mean(cached)), 1) if cached else 0.0,
                "questions_served_from_cache": int(sum(c > 0 for c in cached)),
            },
        }


class LongContext:
    """Full-context prompting with the corpus as a cached prefix, when it fits the budget."""

    name = "long-context"
    family = "retrieve"
    Config = LongContextConfig

    def _engine(self, ctx: Context, cfg: LongContextConfig):
        return ctx.engine(cfg.model or ctx.model)

    def skip_reason(self, ctx: Context) -> str | None:
        reason = answering.skip_reason(ctx, self.name)
        if reason:
            return reason
        cfg: LongContextConfig = ctx.rung_config(self)
        return make_plan(ctx, cfg, self._engine(ctx, cfg)).reason()

    def prepare(self, ctx: Context) -> Prepared:
        cfg: LongContextConfig = ctx.rung_config(self)
        plan = make_plan(ctx, cfg, self._engine(ctx, cfg))
        solution = LongContextSolution(ctx, plan, cfg.model or ctx.model)
        return Prepared(solution, {solution.variant: {"note": "one candidate: no dev selection"}})
