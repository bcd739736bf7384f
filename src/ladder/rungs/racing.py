"""Choosing a prompt variant on dev by racing: evaluate in rounds, drop the clear losers.

Every surviving variant answers the same first n dev items; after each round the leader (best on
the primary metric so far, ties to the shorter prompt) is compared with each other variant by a
paired bootstrap over those n items. A variant whose difference from the leader has a 99%
interval entirely below zero cannot be the best and answers no more dev items. Rounds grow by
half (16, 24, 36, ... items) until dev is used up or one variant is left. The stricter 99% level
pays for looking several times. Only dev is ever predicted here, never the hold-out.

`--schedule exhaustive` keeps the full schedule: every variant on every dev item.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ladder.dataset import Example, Prediction
from ladder.evaluation.metrics import metric_for
from ladder.evaluation.scorecard import dev_summary, table_for
from ladder.evaluation.stats import paired_bootstrap
from ladder.rungs.context import Context
from ladder.rungs.solution import Solution

SCHEDULES = ("race", "exhaustive")
RACE_LEVEL = 0.99  # two-sided level of the paired interval that drops a variant
FIRST_ROUND = 16  # dev items every variant answers before any can be dropped
GROWTH = 1.5  # each round adds half the items seen so far
RESAMPLES = 500


def round_sizes(n: int, first: int = FIRST_ROUND, growth: float = GROWTH) -> list[int]:
    """Dev items seen after each round: 16, 24, 36, ... then all n."""
    sizes, k = [], min(first, n)
    while k < n:
        sizes.append(k)
        k = math.ceil(k * growth)
    return [*sizes, n]


def leader(task, items: list[Example], alive: list[Solution], preds, metric: str) -> Solution:
    summary = {c.variant: dev_summary(task, items, preds[c.variant][: len(items)]) for c in alive}
    return max(alive, key=lambda c: (summary[c.variant][metric], -summary[c.variant]["tokens_in"]))


def losers(
    task, items: list[Example], alive: list[Solution], preds, metric: str, seed: int
) -> dict[str, dict[str, Any]]:
    """The variants the leader beats on `items` with a 99% paired interval above zero."""
    best = leader(task, items, alive, preds, metric)
    fn = metric_for(task.kind, metric).fn
    t_best = table_for(task, items, preds[best.variant][: len(items)])
    out = {}
    for c in alive:
        if c is best:
            continue
        t_c = table_for(task, items, preds[c.variant][: len(items)])
        boot = paired_bootstrap(
            fn, t_c, t_best, len(items), resamples=RESAMPLES, seed=seed, level=RACE_LEVEL
        )
        if boot["ci_low"] > 0:
            out[c.variant] = {
                "after": len(items),
                "behind": best.variant,
                "diff": round(boot["diff"], 4),
                "ci": [round(boot["ci_low"], 4), round(boot["ci_high"], 4)],
                "level": RACE_LEVEL,
            }
    return out


def race(
    ctx: Context, candidates: Sequence[Solution], dev: list[Example], rung: str, metric: str
) -> tuple[dict[str, list[Prediction]], dict[str, dict[str, Any]]]:
    """Dev predictions of every candidate (as far as it got) and why the dropped ones were."""
    alive = list(candidates)
    preds: dict[str, list[Prediction]] = {}
    dropped: dict[str, dict[str, Any]] = {}
    for n in round_sizes(len(dev)):
        items = dev[:n]
        for c in alive:
            desc = f"{rung} · dev · {c.variant} · {n}/{len(dev)}"
            preds[c.variant] = ctx.predict(c, items, "dev", desc=desc)
        if n == len(dev):
            break
        out = losers(ctx.task, items, alive, preds, metric, ctx.seed)
        dropped.update(out)
        alive = [c for c in alive if c.variant not in out]
        if len(alive) == 1:
            break
    return preds, dropped
