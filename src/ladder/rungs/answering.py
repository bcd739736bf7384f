"""What the retrieval rungs share: when they apply, how answers are generated, cited and parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ladder.dataset import Example, Prediction
from ladder.engines.base import Completion, GenRequest, generate_lines
from ladder.kinds import UNANSWERABLE, Parsed
from ladder.rungs.context import Context

_CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")

ANSWER_RULES = (
    "Answer in a few words, using only the {source}. "
    'If they do not contain the answer, answer "{none}".'
)


def skip_reason(ctx: Context, rung: str) -> str | None:
    """Why a retrieval rung cannot run on this task, or None."""
    if not ctx.task.spec.documents:
        return f"the task has no `documents:` folder for {rung} to draw on"
    if ctx.task.kind != "qa":
        return f"{rung} answers questions from documents (kind qa); this task is {ctx.task.kind}"
    return None


def split_citations(text: str) -> tuple[str, list[int]]:
    """The answer's first line without its [n] markers, and the passage numbers it cites."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    numbers = [int(n) for m in _CITATION.finditer(line) for n in re.split(r"[,;]", m.group(1))]
    answer = _CITATION.sub(" ", line)
    return " ".join(answer.split()).strip(" .;,"), list(dict.fromkeys(numbers))


def answer_budget(ctx: Context, engine, extra: int = 0) -> int:
    """New tokens per answer: the task's setting, else the longest train answer with headroom."""
    ev = ctx.task.spec.eval
    if ev.max_new_tokens:
        return ev.max_new_tokens

    kind = ctx.task.kind_impl
    outs = [kind.render_output(e.output, ctx.task) for e in ctx.dataset.train[:200]]
    longest = max((engine.count_tokens(o) for o in outs), default=24)
    return min(96, int(longest * 1.3) + 8 + extra)


@dataclass
class Answer:
    completion: Completion
    parsed: Parsed
    cited: list[int]  # passage numbers as the model wrote them


def generate_answers(
    engine, kind, task, prompts: list[str], max_tokens: int, temperature: float, seed: int
) -> list[Answer]:
    """One generated line per prompt, split into the answer and the passages it cites."""
    reqs = [
        GenRequest(p, max_tokens=max_tokens, temperature=temperature, stop=["\n"], seed=seed)
        for p in prompts
    ]
    out = []
    for comp in generate_lines(engine, reqs):
        answer, cited = split_citations(comp.text)
        out.append(Answer(comp, kind.parse_prediction(answer, task), cited))
    return out


def prediction(ex: Example, ans: Answer, extra: dict) -> Prediction:
    c = ans.completion
    return Prediction(
        ex.id,
        ans.parsed.output,
        ans.parsed.valid,
        ans.parsed.error,
        c.text,
        None,
        c.tokens_in,
        c.tokens_out,
        c.latency_s,
        c.compute_s,
        extra=extra,
    )


def demo_examples(ctx: Context) -> list[Example]:
    """Answerable train questions in a seeded order: the pool worked examples are drawn from."""
    import random

    pool = [e for e in ctx.dataset.train if str(e.output) != UNANSWERABLE]
    random.Random(f"answer-demo/{ctx.seed}").shuffle(pool)
    return pool


def by_category(task, examples: list[Example], preds: list[Prediction], key: str = "kind"):
    """Token F1 and exact match per value of a metadata column (product-qa: fact, multi-doc...)."""

    kind = task.kind_impl
    groups: dict[str, list[tuple[float, float]]] = {}
    for ex, p in zip(examples, preds):
        cat = ex.meta.get(key)
        if isinstance(cat, str) and cat:
            groups.setdefault(cat, []).append(kind.scores(ex.output, Parsed(p.output, p.valid)))
    return {
        cat: {
            "n": len(v),
            "token_f1": round(sum(f for _, f in v) / len(v), 4),
            "exact_match": round(sum(e for e, _ in v) / len(v), 4),
        }
        for cat, v in sorted(groups.items())
    }
