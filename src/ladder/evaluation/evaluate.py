"""Measure a prepared solution on the hold-out: predictions, consistency, scorecard."""

from __future__ import annotations

import numpy as np

from ladder.context import Context
from ladder.dataset import Example
from ladder.evaluation.scorecard import Scorecard, build_scorecard
from ladder.evaluation.stats import consistency, sample_labels
from ladder.rungs.base import Prepared, primary_metric
from ladder.solution import Prediction, Solution


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
        answers = [
            [labels[i] for i in sample_labels(np.asarray(p.scores), temp, n_rep, rng)]
            for p in preds
        ]
        return (
            consistency(answers),
            f"{n_rep} samples at T={temp} from the label distribution, all {len(preds)} items",
            n_rep,
        )
    subset = examples[: ev.consistency_sample]
    answers: list[list[object]] = [[] for _ in subset]
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
    return (
        consistency(answers),
        f"{n_rep} sampled generations at T={temp} on {len(subset)} items",
        n_rep,
    )


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
        primary=primary_metric(ctx),
        consistency=cons,
        selection=prepared.selection,
        failure_analysis=prepared.failure_analysis,
        extras=extras,
        resamples=ctx.task.spec.eval.bootstrap,
        seed=ctx.task.spec.eval.seed,
    )
