"""Does a scorecard meet the task's bar, and how sure is that?

"Bar met" means met with the task's stated confidence (`bar.confidence`, default 95%): the
bootstrap probability that the hold-out metric is at least the threshold (from the same resamples
as the scorecard's interval) reaches that confidence. A point estimate at or above the threshold
without that confidence is "reached by the point estimate, not shown".
"""

from __future__ import annotations

from typing import Any


def verdict(card, metric: str, threshold: float, confidence: float = 0.95) -> dict[str, Any]:
    """{'met', 'point_reached', 'p_meets', 'interval_clears', 'confidence', 'text'} for one card."""
    mv = card.metrics[metric]
    p = mv.p_bar if mv.p_bar is not None and mv.bar == threshold else None
    clears = mv.ci_low >= threshold
    point = mv.value >= threshold
    # a card stored before p_bar existed (or scored against another threshold): its interval decides
    met = (p >= confidence) if p is not None else clears
    return {
        "rung": card.rung,
        "met": bool(met and point),
        "point_reached": bool(point),
        "p_meets": None if p is None else round(p, 3),
        "interval_clears": bool(clears),
        "confidence": confidence,
        "text": _text(card.rung, metric, mv, threshold, confidence, p, met and point, point),
    }


def _text(rung, metric, mv, threshold, confidence, p, met, point) -> str:
    at = f"{100 * confidence:.0f}%"
    if p is not None:
        prob = f"P({metric} ≥ {threshold:.2f}) = {p:.2f}"
    else:  # a card stored without its bootstrap probability: its 95% interval decides
        prob = (
            f"interval {'clears' if mv.ci_low >= threshold else 'does not clear'} {threshold:.2f}"
        )
    score = f"{metric} {mv.value:.2f} [{mv.ci_low:.2f}, {mv.ci_high:.2f}]"
    if met:
        return f"{rung} meets the bar at {at} confidence: {score}, {prob}"
    if point:
        return f"{rung}: bar reached by the point estimate, not shown at {at}: {score}, {prob}"
    return f"{rung} is below the bar {threshold:.2f}: {score}, {prob}"


def for_task(task, card) -> dict[str, Any] | None:
    """The verdict for a card against a task's bar (None without a bar or its metric)."""
    bar = task.spec.bar
    if bar is None or bar.metric not in card.metrics:
        return None
    return verdict(card, bar.metric, bar.threshold, bar.confidence)
