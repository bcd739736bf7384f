"""Measure a prepared solution on the hold-out: predictions, consistency, scorecard."""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from ladder.dataset import Example, Prediction
from ladder.evaluation.scorecard import Scorecard, build_scorecard
from ladder.evaluation.stats import consistency, sample_labels

if TYPE_CHECKING:  # what a climb hands in; evaluation never imports the rungs it measures
    from ladder.rungs.base import Prepared
    from ladder.rungs.context import Context
    from ladder.rungs.solution import Solution


def measure_consistency(
    ctx: Context, solution: Solution, examples: list[Example], preds: list[Prediction]
) -> tuple[float | None, str | None, int]:
    """Agreement of N sampled answers per item with their most common answer.

    Scored answers are sampled from the model's label distribution at the eval temperature
    (exactly what sampled decoding restricted to the labels would do); generated answers are
    re-generated with sampling on the first `consistency_sample` items.
    """
    ev = ctx.task.spec.eval
    n_rep, temp = ev.repeats, ev.temperature
    if n_rep < 2 or not examples:
        return None, None, 0
    if all(p.scores for p in preds) and ctx.task.labels:
        rng = np.random.default_rng(ctx.seed)
        labels = ctx.task.labels
        answers: list[list[object]] = [
            [labels[i] for i in sample_labels(np.asarray(p.scores), temp, n_rep, rng)]
            for p in preds
        ]
        return (
            consistency(answers),
            f"{n_rep} samples at T={temp} from the label distribution, all {len(preds)} items",
            n_rep,
        )
    subset = examples[: consistency_items(ctx, n_rep)]
    answers = [[] for _ in subset]
    for r in range(1, n_rep + 1):
        rep = ctx.predict(
            solution,
            subset,
            "holdout",
            repeat=r,
            temperature=temp,
            desc=f"{solution.rung} · repeat {r}/{n_rep}",
        )
        for a, p in zip(answers, rep):
            a.append(p.output if p.valid else None)
    value = consistency(answers)
    shares = [Counter(map(repr, a)).most_common(1)[0][1] / len(a) for a in answers if a]
    half = 1.96 * float(np.std(shares, ddof=1)) / np.sqrt(len(shares)) if len(shares) > 1 else 1.0
    return (
        value,
        f"{n_rep} sampled generations at T={temp} on {len(subset)} items "
        f"(95% CI ±{half:.2f}; {_sample_basis(ctx, n_rep)})",
        n_rep,
    )


CONSISTENCY_HALF_WIDTH = 0.15  # the 95% CI the default consistency sample is sized for


def consistency_items(ctx: Context, n_rep: int, half_width: float | None = None) -> int:
    """Items re-generated per repeat: the task's `eval.consistency_sample` when it sets one
    (and always under `--schedule exhaustive`), else enough for a 95% CI of ±`half_width`
    (±0.15 unless a budget relaxed it) at the widest spread an item's agreement share
    (1/n_rep .. 1) allows."""
    ev = ctx.task.spec.eval
    if ctx.schedule == "exhaustive" or "consistency_sample" in ev.model_fields_set:
        return ev.consistency_sample
    half = half_width or _half_width(ctx)
    sd_max = (1 - 1 / n_rep) / 2
    return math.ceil((1.96 * sd_max / half) ** 2)


def _half_width(ctx: Context) -> float:
    return getattr(ctx, "consistency_half_width", None) or CONSISTENCY_HALF_WIDTH


def _sample_basis(ctx: Context, n_rep: int) -> str:
    n = consistency_items(ctx, n_rep)
    if (
        ctx.schedule != "exhaustive"
        and "consistency_sample" not in ctx.task.spec.eval.model_fields_set
    ):
        budget = " (relaxed by --budget)" if _half_width(ctx) != CONSISTENCY_HALF_WIDTH else ""
        return f"{n} items sized for ±{_half_width(ctx)} at worst{budget}"
    return f"eval.consistency_sample = {n}"


def evaluate(ctx: Context, prepared: Prepared) -> Scorecard:
    solution = prepared.solution
    holdout = ctx.examples("holdout")
    with ctx.phase("hold-out"):
        preds = ctx.predict(
            solution, holdout, "holdout", desc=f"{solution.rung} · holdout · {solution.variant}"
        )
    with ctx.phase("consistency"):
        cons = measure_consistency(ctx, solution, holdout, preds)
    engine = getattr(solution, "engine", None)
    extras = dict(prepared.extras)
    summarize = getattr(solution, "summarize", None)  # rung-specific hold-out figures (retrieval)
    if summarize is not None:
        extras.update(summarize(holdout, preds))
    return build_scorecard(
        ctx.task,
        holdout,
        preds,
        solution=solution.describe(),
        engine=engine.info() if engine is not None and hasattr(engine, "info") else {},
        primary=ctx.task.metric,
        consistency=cons,
        selection=prepared.selection,
        failure_analysis=prepared.failure_analysis,
        extras=extras,
        resamples=ctx.task.spec.eval.bootstrap,
        seed=ctx.task.spec.eval.seed,
    )
