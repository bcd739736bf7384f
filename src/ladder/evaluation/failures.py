"""Failure analysis: which error categories recur across prompt variants.

If the same confusions (gold -> predicted label) or the same field errors show up whatever the
prompt says, rewording the prompt is unlikely to fix them: the framework's signal that prompting
has hit its ceiling.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from ladder.dataset import Example, Prediction
from ladder.kinds import Parsed
from ladder.task import Task


def categories_of(
    task: Task, examples: list[Example], preds: list[Prediction]
) -> tuple[Counter, set[str]]:
    """Error category counts and the ids of wrong items, for one variant."""

    kind = task.kind_impl
    counts: Counter = Counter()
    wrong: set[str] = set()
    for ex, p in zip(examples, preds):
        cats = kind.error_categories(ex.output, Parsed(p.output, p.valid, p.error), task)
        counts.update(cats)
        if cats:
            wrong.add(ex.id)
    return counts, wrong


def recurring_errors(
    task: Task,
    examples: list[Example],
    per_variant: dict[str, list[Prediction]],
    min_count: int = 2,
) -> dict[str, Any]:
    """Categories seen at least `min_count` times in at least two thirds of the variants."""
    n_var = len(per_variant)
    stats = {v: categories_of(task, examples, preds) for v, preds in per_variant.items()}
    needed = max(1, math.ceil(n_var * 2 / 3))
    all_cats = set().union(*(c for c, _ in stats.values())) if stats else set()
    rows = []
    for cat in all_cats:
        per = {v: stats[v][0].get(cat, 0) for v in per_variant}
        with_it = sum(1 for n in per.values() if n >= min_count)
        rows.append(
            {
                "category": cat,
                "variants_with": with_it,
                "total": sum(per.values()),
                "per_variant": per,
                "recurring": with_it >= needed,
            }
        )
    rows.sort(key=lambda r: (-r["recurring"], -r["variants_with"], -r["total"], r["category"]))
    wrong_sets = [w for _, w in stats.values()]
    persistent = set.intersection(*wrong_sets) if wrong_sets else set()
    n = len(examples)
    recurring = [r for r in rows if r["recurring"]]
    return {
        "split": "dev",
        "variants": n_var,
        "items": n,
        "categories": rows[:15],
        "recurring": [r["category"] for r in recurring],
        "recurring_error_share": round(
            sum(r["total"] for r in recurring) / max(1, sum(r["total"] for r in rows)), 3
        ),
        "persistent_items": sorted(persistent)[:50],
        "persistent_share": round(len(persistent) / n, 3) if n else 0.0,
    }
