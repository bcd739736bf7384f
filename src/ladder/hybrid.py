"""The hybrid: a cheap model answers when it is confident, a better one takes the rest.

Confidence is the label margin for classification (probability of the top label minus the
runner-up's, from the stored per-label log-likelihoods) and format validity otherwise. Sweeping
the threshold over the hold-out gives the share routed to the large model and the blended
quality and $ per call at each threshold; the cheapest point that meets the bar is chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ladder.dataset import Example
from ladder.evaluation.metrics import metric_for
from ladder.evaluation.scorecard import table_for
from ladder.solution import Prediction
from ladder.task import Task


def label_margin(scores: list[float]) -> float:
    """P(top label) - P(runner-up), from log-likelihoods (softmax over the labels)."""
    z = np.asarray(scores, dtype=float)
    if z.size < 2:
        return 1.0
    p = np.exp(z - z.max())
    p /= p.sum()
    top2 = np.sort(p)[-2:]
    return float(top2[1] - top2[0])


def confidence(pred: Prediction) -> float:
    """How sure the small model is of one answer, in [0, 1]; an invalid answer is 0."""
    if not pred.valid:
        return 0.0
    return label_margin(pred.scores) if pred.scores else 1.0


def curve(
    task: Task,
    examples: list[Example],
    small: list[Prediction],
    large: list[Prediction],
    metric: str,
    cost_small: float,
    cost_large: float,
    points: int = 40,
) -> list[dict[str, float]]:
    """Blended quality, share to the large model and $ per call at each confidence threshold.

    The small model always runs first (its answer carries the confidence), so a routed call
    costs both: per call = small + share x large.
    """
    conf = np.array([confidence(p) for p in small])
    fn = metric_for(task.kind, metric).fn
    idx = np.arange(len(examples))
    cuts = np.unique(np.concatenate([[0.0], np.quantile(conf, np.linspace(0, 1, points)), [1.01]]))
    rows = []
    for t in cuts:
        routed = conf < t
        blended = [lp if r else sp for sp, lp, r in zip(small, large, routed)]
        share = float(routed.mean()) if len(routed) else 0.0
        rows.append(
            {
                "threshold": round(float(t), 4),
                "share_to_large": share,
                "quality": fn(table_for(task, examples, blended), idx),
                "per_call": cost_small + share * cost_large,
            }
        )
    return rows


def choose(rows: list[dict[str, float]], bar: float | None) -> dict[str, float]:
    """The cheapest threshold meeting the bar; without a bar (or none meets it), the best quality."""
    if bar is not None:
        meeting = [r for r in rows if r["quality"] >= bar]
        if meeting:
            return min(meeting, key=lambda r: (r["per_call"], -r["quality"]))
    return max(rows, key=lambda r: (r["quality"], -r["per_call"]))


def recommend(
    task: Task,
    examples: list[Example],
    small: tuple[str, list[Prediction], float],
    large: tuple[str, list[Prediction], float],
    metric: str,
    bar: float | None,
) -> dict[str, Any]:
    """The hybrid of `small` and `large` (each: rung, hold-out predictions, $ per call)."""
    rows = curve(task, examples, small[1], large[1], metric, small[2], large[2])
    best = choose(rows, bar)
    signal = "label margin" if any(p.scores for p in small[1]) else "format validity"
    return {
        "small": small[0],
        "large": large[0],
        "signal": signal,
        "metric": metric,
        "threshold": best["threshold"],
        "share_to_large": best["share_to_large"],
        "quality": best["quality"],
        "per_call": best["per_call"],
        "meets_bar": bar is not None and best["quality"] >= bar,
        "curve": rows,
    }
