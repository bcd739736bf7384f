"""The hybrid: a cheap model answers when it is confident, a better one takes the rest.

One confidence and one calibration sweep, used by the report (what the hybrid would deliver)
and by the gateway's router (what it does deliver), so the two cannot disagree:
- confidence is the label margin for classification (probability of the top label minus the
  runner-up's, from the per-label log-likelihoods) and format validity otherwise (0 invalid);
- the sweep tries every threshold that changes the routing on the hold-out and gives, at each,
  the share routed to the large model and the blended quality; the chosen point is the one
  meeting the target quality (the bar) with the fewest large calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, TypeVar

import numpy as np

from ladder.dataset import Example, Prediction
from ladder.evaluation.metrics import metric_for
from ladder.evaluation.scorecard import table_for
from ladder.task import Task


class Point(TypedDict):
    """One threshold of the sweep: its large-call share and blended quality (None unscored)."""

    threshold: float
    large_share: float
    quality: float | None


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


def sweep(
    task: Task,
    examples: list[Example],
    small: list[Prediction],
    conf: list[float | None],
    large: list[Prediction] | None,
    metric: str,
    extra: float | None = None,
) -> list[Point]:
    """Large-call share and blended quality at every threshold that changes the routing.

    A call goes large when the small answer is invalid or its confidence is below the
    threshold; None confidences (failed predictions) always go large. `extra` adds a threshold.
    """
    c = np.asarray([x if x is not None else -np.inf for x in conf], dtype=np.float64)
    valid = np.asarray([p.valid for p in small], dtype=bool)
    finite = np.unique(c[np.isfinite(c)])
    hi = math.nextafter(float(finite[-1]), math.inf) if len(finite) else 0.0
    thresholds = [*finite.tolist(), hi] if len(finite) else [0.0]
    if extra is not None:
        thresholds = sorted({*thresholds, extra})
    fn = metric_for(task.kind, metric).fn
    idx = np.arange(len(examples))
    points: list[Point] = []
    for t in thresholds:
        big = (~valid) | (c < t)
        quality = None
        if large is not None:
            mixed = [lp if b else sp for b, sp, lp in zip(big, small, large)]
            quality = round(fn(table_for(task, examples, mixed), idx), 4)
        share = round(float(big.mean()), 4) if len(big) else 0.0
        points.append({"threshold": round(t, 6), "large_share": share, "quality": quality})
    return points


P = TypeVar("P", bound=Mapping[str, Any])


def pick(
    points: Sequence[P], *, quality: float | None = None, share: float | None = None
) -> tuple[P, str | None]:
    """The point meeting the target (a quality, else a share of large calls); a note if none can."""
    if quality is not None:
        ok = [p for p in points if p["quality"] is not None and p["quality"] >= quality]
        if ok:
            return min(ok, key=lambda p: (p["large_share"], -p["quality"])), None
        best = max(points, key=lambda p: (p["quality"] or 0.0, -p["large_share"]))
        return best, f"no threshold reaches {quality:g}; using the best mix ({best['quality']})"
    share = 0.2 if share is None else share
    ok = [p for p in points if p["large_share"] <= share + 1e-9]
    if not ok:
        return (
            min(points, key=lambda p: p["large_share"]),
            f"even the lowest threshold sends {points[0]['large_share']:.0%} of calls (invalid answers) to the large model",
        )
    if any(p["quality"] is not None for p in ok):
        return max(ok, key=lambda p: (p["quality"] or 0.0, -p["large_share"])), None
    return max(ok, key=lambda p: p["large_share"]), None


def curve(
    task: Task,
    examples: list[Example],
    small: list[Prediction],
    large: list[Prediction],
    metric: str,
    cost_small: float,
    cost_large: float,
) -> list[dict[str, float]]:
    """The sweep priced: the small model always runs first (its answer carries the confidence),
    so a routed call costs both: per call = small + share x large."""
    rows = []
    for p in sweep(task, examples, small, [confidence(p) for p in small], large, metric):
        quality = p["quality"]
        assert quality is not None  # the large model's predictions are given: every point is scored
        rows.append(
            {
                "threshold": p["threshold"],
                "share_to_large": p["large_share"],
                "quality": quality,
                "per_call": cost_small + p["large_share"] * cost_large,
            }
        )
    return rows


def choose(rows: list[dict[str, float]], bar: float | None) -> dict[str, float]:
    """The cheapest threshold meeting the bar (the fewest large calls: the router's own rule);
    without a bar (or none meets it), the best quality."""
    points = [dict(r, large_share=r["share_to_large"]) for r in rows]
    if bar is not None:
        point, note = pick(points, quality=bar)
        if note is None:
            return rows[points.index(point)]
    return max(rows, key=lambda r: (r["quality"], -r["per_call"]))


def recommend(
    task: Task,
    examples: list[Example],
    small: tuple[str, list[Prediction], float],
    large: tuple[str, list[Prediction], float],
    metric: str,
    bar: float | None,
    confidence_level: float = 0.95,
) -> dict[str, Any]:
    """The hybrid of `small` and `large` (each: rung, hold-out predictions, $ per call).

    Its quality carries an interval like a scorecard's: the routed answers at the chosen
    threshold, bootstrapped on the hold-out. It meets the bar only when the share of resamples
    at or above it reaches `confidence_level`, as a rung must; and since the threshold was
    chosen on this same hold-out, the verdict says so (the figure is optimistic).
    """
    rows = curve(task, examples, small[1], large[1], metric, small[2], large[2])
    best = choose(rows, bar)
    signal = "label margin" if any(p.scores for p in small[1]) else "format validity"
    routed = route_at(small[1], large[1], best["threshold"])
    verdict = _verdict(task, examples, routed, metric, bar, confidence_level)
    return {
        "small": small[0],
        "large": large[0],
        "signal": signal,
        "metric": metric,
        "threshold": best["threshold"],
        "share_to_large": best["share_to_large"],
        "quality": best["quality"],
        "per_call": best["per_call"],
        "meets_bar": bool(verdict and verdict["met"]),
        "verdict": verdict,
        "curve": rows,
    }


def route_at(
    small: list[Prediction], large: list[Prediction], threshold: float
) -> list[Prediction]:
    """The answers the route gives at `threshold`: small's unless invalid or below it."""
    conf = [confidence(p) for p in small]
    return [
        lp if (not sp.valid or c is None or c < threshold) else sp
        for sp, lp, c in zip(small, large, conf)
    ]


def _verdict(
    task: Task,
    examples: list[Example],
    routed: list[Prediction],
    metric: str,
    bar: float | None,
    level: float,
) -> dict[str, Any] | None:
    """The routed quality's 95% interval and P(quality >= bar), from the scorecards' bootstrap,
    judged by the rungs' own rule and words (`evaluation.bar.verdict`)."""
    from types import SimpleNamespace

    from ladder.evaluation.bar import verdict
    from ladder.evaluation.scorecard import MetricValue
    from ladder.evaluation.stats import bootstrap_draws, interval, share_at_least

    if bar is None or not examples:
        return None
    fn = metric_for(task.kind, metric).fn
    point, draws = bootstrap_draws(fn, table_for(task, examples, routed), len(examples))
    lo, hi = interval(draws, point)
    mv = MetricValue(value=round(point, 4), ci_low=round(lo, 4), ci_high=round(hi, 4))
    mv.p_bar, mv.bar = share_at_least(draws, bar) or 0.0, bar
    v = verdict(SimpleNamespace(rung="hybrid", metrics={metric: mv}), metric, bar, level)
    v["text"] += "; its threshold was chosen on this hold-out, so the figure is optimistic"
    return {**v, "value": mv.value, "ci": [mv.ci_low, mv.ci_high]}
