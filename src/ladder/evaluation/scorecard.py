"""Scorecards: a solution measured on the hold-out.

Quality with 95% bootstrap intervals, format validity, consistency over sampled repeats,
latency percentiles, tokens in/out per call, plus the confusion matrix (classify) or per-field
accuracy (extract) and the failure analysis of the rung's variants.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ladder.dataset import Example, Prediction
from ladder.evaluation.metrics import metric_for, per_label_prf
from ladder.evaluation.stats import bootstrap_draws, interval, percentile, share_at_least
from ladder.kinds import Parsed, confusion
from ladder.task import Task


class MetricValue(BaseModel):
    value: float
    ci_low: float
    ci_high: float
    # the bar metric only: the bootstrap probability (same resamples as the interval) that the
    # hold-out metric is at least `bar` (the task's threshold when it was scored)
    p_bar: float | None = None
    bar: float | None = None


class Scorecard(BaseModel):
    rung: str
    variant: str
    model: str
    split: str = "holdout"
    n: int
    primary_metric: str
    metrics: dict[str, MetricValue]
    validity: float
    consistency: float | None = None
    consistency_method: str | None = None
    repeats: int = 0
    latency_ms: dict[str, float | None] = Field(
        default_factory=dict
    )  # p50, p95, mean (waited per call)
    seconds_per_call: float = 0.0  # engine time per call at the measured batch size (compute_s)
    tokens_in: float = 0.0  # mean per call
    tokens_out: float = 0.0
    confusion: dict[str, Any] | None = None
    per_label: dict[str, dict[str, float]] | None = None
    fields: dict[str, dict[str, float]] | None = None
    failure_analysis: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    solution: dict[str, Any] = Field(default_factory=dict)
    engine: dict[str, Any] = Field(default_factory=dict)
    cost: dict[str, Any] | None = None  # filled by economics
    extras: dict[str, Any] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    def value(self, metric: str | None = None) -> float:
        return self.metrics[metric or self.primary_metric].value


def table_for(
    task: Task, examples: list[Example], preds: list[Prediction]
) -> dict[str, np.ndarray]:
    return task.kind_impl.table(
        [e.output for e in examples], [Parsed(p.output, p.valid, p.error) for p in preds], task
    )


def dev_summary(task: Task, examples: list[Example], preds: list[Prediction]) -> dict[str, Any]:
    """Point estimates of every metric on dev, for choosing among variants."""
    kind = task.kind_impl
    table = table_for(task, examples, preds)
    idx = np.arange(len(examples))
    out: dict[str, Any] = {
        m: round(metric_for(task.kind, m).fn(table, idx), 4) for m in kind.metric_names()
    }
    out["tokens_in"] = round(float(np.mean([p.tokens_in for p in preds])), 1) if preds else 0.0
    out["n"] = len(examples)
    return out


def build_scorecard(
    task: Task,
    examples: list[Example],
    preds: list[Prediction],
    *,
    solution: dict[str, Any],
    engine: dict[str, Any],
    primary: str,
    consistency: tuple[float | None, str | None, int] = (None, None, 0),
    selection: dict[str, Any] | None = None,
    failure_analysis: dict[str, Any] | None = None,
    extras: dict[str, Any] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> Scorecard:
    kind = task.kind_impl
    table = table_for(task, examples, preds)
    n = len(examples)
    metrics = {}
    bar = task.spec.bar
    for name in kind.metric_names():
        v, draws = bootstrap_draws(
            metric_for(task.kind, name).fn, table, n, resamples=resamples, seed=seed
        )
        lo, hi = interval(draws, v)
        mv = MetricValue(value=round(v, 4), ci_low=round(lo, 4), ci_high=round(hi, 4))
        if bar is not None and bar.metric == name:
            mv.p_bar, mv.bar = share_at_least(draws, bar.threshold), bar.threshold
        metrics[name] = mv
    lat = [p.latency_s * 1000 for p in preds]
    card = Scorecard(
        rung=solution.get("rung", "?"),
        variant=solution.get("variant", "?"),
        model=solution.get("model", "?"),
        n=n,
        primary_metric=primary,
        metrics=metrics,
        validity=round(float(np.mean([p.valid for p in preds])) if preds else 0.0, 4),
        consistency=None if consistency[0] is None else round(consistency[0], 4),
        consistency_method=consistency[1],
        repeats=consistency[2],
        latency_ms={
            "p50": _r(percentile(lat, 50)),
            "p95": _r(percentile(lat, 95)),
            "mean": _r(float(np.mean(lat)) if lat else None),
        },
        seconds_per_call=round(float(np.mean([p.compute_s for p in preds])), 5) if preds else 0.0,
        tokens_in=round(float(np.mean([p.tokens_in for p in preds])), 1) if preds else 0.0,
        tokens_out=round(float(np.mean([p.tokens_out for p in preds])), 1) if preds else 0.0,
        failure_analysis=failure_analysis,
        selection=selection,
        solution=solution,
        engine=engine,
        extras=extras or {},
    )
    if "gold" in table and "n_labels" in table:
        cm = confusion(table)
        card.confusion = {
            "labels": task.labels,
            "columns": [*task.labels, "(invalid)"],
            "matrix": cm.tolist(),
        }
        prf = per_label_prf(table)
        card.per_label = {
            lab: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for lab, (p, r, f, s) in zip(task.labels, prf)
        }
    if hasattr(kind, "field_scores"):
        card.fields = kind.field_scores([e.output for e in examples], preds)
    return card


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)
