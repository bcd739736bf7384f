"""Paired comparisons between rungs on the same hold-out items.

Every rung of a run is scored on the same hold-out, so differences are measured item by item:
a paired bootstrap of the metric difference (with its 95% CI) for every kind, plus McNemar's
test on per-item right/wrong for classification (exact match for extraction).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from ladder.dataset import Example, Prediction
from ladder.evaluation.metrics import metric_for
from ladder.evaluation.scorecard import table_for
from ladder.evaluation.stats import (
    format_p,
    mcnemar,
    paired_bootstrap,
    settle_size,
    settle_size_from_ci,
)
from ladder.task import Task

ALPHA = 0.05  # significance level of every comparison Ladder states


def correct_items(table: dict[str, np.ndarray]) -> np.ndarray | None:
    """Per-item right/wrong: the label for classify, the whole object for extract."""
    if "gold" in table and "pred" in table:
        return table["gold"] == table["pred"]
    if "exact" in table:
        return table["exact"] > 0
    return None


def compare(
    task: Task,
    examples: list[Example],
    preds_a: list[Prediction],
    preds_b: list[Prediction],
    metric: str,
    *,
    names: tuple[str, str] = ("a", "b"),
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """B minus A on `metric`, paired over `examples` (both prediction lists in their order)."""
    ta, tb = table_for(task, examples, preds_a), table_for(task, examples, preds_b)
    fn = metric_for(task.kind, metric).fn
    boot = paired_bootstrap(fn, ta, tb, len(examples), resamples=resamples, seed=seed)
    out: dict[str, Any] = {"a": names[0], "b": names[1], "metric": metric, "n": len(examples)}
    out.update(boot)
    ca, cb = correct_items(ta), correct_items(tb)
    if ca is not None and cb is not None:
        out["mcnemar"] = mcnemar(ca, cb)
    p = out["mcnemar"]["p"] if "mcnemar" in out and task.kind == "classify" else boot["p"]
    out["p_value"] = p
    out["test"] = "McNemar" if "mcnemar" in out and task.kind == "classify" else "paired bootstrap"
    out["significant"] = bool(p < ALPHA and (boot["ci_low"] > 0 or boot["ci_high"] < 0))
    out["settle"] = None if out["significant"] else settle(out)
    out["sentence"] = sentence(out)
    return out


POWER = 0.8  # the chance the estimated sample would show the observed difference as significant


def settle(c: dict[str, Any]) -> dict[str, Any] | None:
    """How many more hold-out examples, at the observed discordance and difference, would make a
    not-significant comparison conclusive (80% power at the 5% level); None when nothing would."""
    n = c["n"]
    m = c.get("mcnemar")
    if m is not None and n:
        d = (m["only_b"] - m["only_a"]) / n
        total = settle_size(n, d, (m["only_a"] + m["only_b"]) / n, alpha=ALPHA, power=POWER)
        basis = "McNemar at the observed discordance"
    else:
        total = settle_size_from_ci(
            n, c["diff"], c["ci_low"], c["ci_high"], alpha=ALPHA, power=POWER
        )
        basis = "paired bootstrap spread"
    if total is None:
        return {"more_examples": None, "total": None, "power": POWER, "basis": basis}
    return {"more_examples": total - n, "total": total, "power": POWER, "basis": basis}


def settle_text(c: dict[str, Any]) -> str:
    s = c.get("settle")
    if not s:
        return ""
    if s["more_examples"] is None:
        return (
            f"no number of examples would settle {c['b']} vs {c['a']}: they differ by nothing here"
        )
    return (
        f"about {s['more_examples']:,} more labelled examples would settle {c['b']} vs {c['a']} "
        f"({100 * s['power']:.0f}% power)"
    )


def sentence(c: dict[str, Any]) -> str:
    """'lora beats few-shot by 48 points [37, 58], McNemar p < 0.001' or 'no significant ...'."""
    pts = 100 * c["diff"]
    ci = f"[{100 * c['ci_low']:.0f}, {100 * c['ci_high']:.0f}]"
    p = f"{c['test']} {format_p(c['p_value'])}"
    if not c["significant"]:
        more = settle_text(c)
        more = f"; {more}" if more else ""
        return (
            f"{c['b']} vs {c['a']}: no significant difference ({pts:+.0f} points {ci}, {p}){more}"
        )
    winner, loser = (c["b"], c["a"]) if pts > 0 else (c["a"], c["b"])
    lo, hi = sorted((abs(100 * c["ci_low"]), abs(100 * c["ci_high"])))
    return f"{winner} beats {loser} by {abs(pts):.0f} points [{lo:.0f}, {hi:.0f}], {p}"


def compare_all(
    task: Task,
    examples: list[Example],
    preds: dict[str, list[Prediction]],
    metric: str,
    *,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every pair of rungs (in ladder order: the later rung is B)."""
    return [
        compare(task, examples, preds[a], preds[b], metric, names=(a, b), seed=seed)
        for a, b in combinations(list(preds), 2)
    ]


def find(comparisons: list[dict[str, Any]], a: str, b: str) -> dict[str, Any] | None:
    """The comparison of a and b whichever way round it was made, oriented as B minus A."""
    for c in comparisons:
        if (c["a"], c["b"]) == (a, b):
            return c
        if (c["a"], c["b"]) == (b, a):
            flipped = dict(c, a=a, b=b, diff=-c["diff"], ci_low=-c["ci_high"], ci_high=-c["ci_low"])
            if "mcnemar" in c:
                m = c["mcnemar"]
                flipped["mcnemar"] = dict(m, only_a=m["only_b"], only_b=m["only_a"])
            flipped["sentence"] = sentence(flipped)
            return flipped
    return None
