"""The hybrid router: the small model answers when it is confident, the large model otherwise.

Confidence of the small model's answer is `ladder.hybrid.confidence`, the one the report's
hybrid uses, so the route delivers the share and quality the report promises:
- classify, answered by label scoring: the probability margin between the best and the
  second-best label (0 = a coin toss between two labels; 1 = sure);
- otherwise (extract, or generated labels): 0 when the output is invalid (unparseable, or it
  breaks the JSON schema), else 1. With `likelihood` (a route built by hand, not the run's
  hybrid) a valid generated answer carries its likelihood instead, exp(mean log-probability per
  generated token), measured by scoring the answer after the prompt on the same engine.

A request goes to the large model when the confidence is below the threshold, when the small
model's output is invalid, or when the small model fails. If the large model is down, the small
model's answer is returned and the response says so (`x-ladder-fallback`).

The threshold is calibrated on the run's hold-out: the small model's stored predictions and the
large model's (computed once and stored in the run) give, for every candidate threshold, the
share of calls sent to the large model and the quality of the mixed answers - the calibration
curve, saved next to the run. The threshold meets a target quality with the fewest large calls,
or gives the best quality within a target share of large calls.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ladder.engines.base import ScoreRequest
from ladder.errors import LadderError
from ladder.hybrid import Point, confidence, pick, sweep
from ladder.serve.targets import Answer, Call, Target, TaskModel
from ladder.serve.worker import Overloaded

# ---------------------------------------------------------------- confidence


def confidences(solution, examples, preds, *, likelihood: bool = True) -> list[float | None]:
    """One confidence per prediction (see the module doc); None only for a failed prediction."""
    out: list[float | None] = [None] * len(preds)
    todo = []
    for i, p in enumerate(preds):
        if (p.scores and p.valid) or not p.valid:
            out[i] = confidence(p)
        elif (
            likelihood
            and getattr(solution.engine, "supports_scoring", False)
            and not solution.cot
            and p.raw
        ):
            todo.append(i)
        else:
            out[i] = 1.0  # valid, and nothing more to measure on this engine
    if todo:
        prompts = solution.prompts([examples[i] for i in todo])
        res = solution.engine.score(
            [ScoreRequest(pr, [preds[i].raw]) for pr, i in zip(prompts, todo)]
        )
        for i, r in zip(todo, res):
            out[i] = math.exp(r.logprobs[0] / max(1, preds[i].tokens_out))
    return out


# ---------------------------------------------------------------- calibration


@dataclass
class Calibration:
    route: str
    small: str
    large: str
    metric: str
    confidence: str  # what the threshold is compared with
    threshold: float
    target: dict[str, float]
    achieved: dict[str, float | None]
    n: int
    curve: list[Point]
    note: str | None = None
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# the calibration sweep and its choice are the report's own (one module, one rule)
calibration_curve = sweep
choose = pick


def calibrate(
    ctx,
    route: str,
    small: TaskModel,
    large: TaskModel,
    *,
    quality: float | None,
    share: float | None,
    large_error: str | None = None,
    threshold: float | None = None,
) -> Calibration:
    """Calibrate on the hold-out items the run predicted with the small solution."""
    examples, small_preds = _holdout(ctx, small.solution)
    conf = confidences(small.solution, examples, small_preds)
    large_preds = None
    if large_error is None:
        try:
            desc = f"calibration · {large.route} on the hold-out"
            large_preds = ctx.predict(large.solution, examples, "holdout", desc=desc)
        except LadderError as exc:
            large_error = str(exc)
    if large_preds is None and quality is not None:
        raise LadderError(
            f"calibrating to a target quality needs the large model's answers on the hold-out, but it failed: {large_error}",
            fix="start the upstream, or calibrate to a share of large calls with --target-share.",
        )
    metric = ctx.task.metric
    curve = calibration_curve(ctx.task, examples, small_preds, conf, large_preds, metric, threshold)
    if threshold is not None:  # set by hand: the curve says what it does
        point, note = next(p for p in curve if p["threshold"] == round(threshold, 6)), None
    else:
        point, note = choose(curve, quality=quality, share=share)
    if large_preds is None:
        note = f"large model unavailable while calibrating ({large_error}); quality not measured"
    scored = any(p.scores for p in small_preds)
    return Calibration(
        route=route,
        small=small.route,
        large=large.route,
        metric=metric,
        confidence="label probability margin" if scored else "answer validity (0 invalid, 1 valid)",
        threshold=point["threshold"],
        target=_target(quality, share, threshold),
        achieved={
            "quality": point["quality"],
            "large_share": point["large_share"],
            "small_only": curve[0]["quality"],
            "large_only": curve[-1]["quality"],
        },
        n=len(examples),
        curve=curve,
        note=note,
    )


def _holdout(ctx, solution) -> tuple[list, list]:
    """The hold-out examples the run predicted with this solution, and those predictions."""
    stored = ctx.store.predictions(ctx.run_id, solution.rung, solution.variant, "holdout")
    examples = [e for e in ctx.dataset.holdout if e.id in stored]
    if not examples:
        raise LadderError(
            f"the run has no hold-out predictions of {solution.rung} to calibrate the router on.",
            fix="serve a run whose climb finished that rung, or name another with --small.",
        )
    return examples, [stored[e.id] for e in examples]


def _target(quality: float | None, share: float | None, threshold: float | None) -> dict:
    if threshold is not None:
        return {"threshold": threshold}
    if quality is not None:
        return {"quality": quality}
    return {"large_share": 0.2 if share is None else share}


# ---------------------------------------------------------------- the route


class Route(Target):
    """A model name that answers with the small solution, or the large one when unsure."""

    role = "route"
    is_task = True
    default_temperature = 0.0

    def __init__(self, name: str, small: TaskModel, large: TaskModel, threshold: float, health):
        self.name, self.small, self.large, self.threshold = name, small, large, threshold
        self.health = health  # the upstream's: skipped while it is down
        self.description = (
            f"hybrid: {small.route}, else {large.route} below confidence {threshold:.3g}"
        )

    def count_tokens(self, text: str) -> int:
        return self.small.count_tokens(text)

    def cache_id(self) -> str:
        return f"{self.name}|{self.small.cache_id()}|{self.large.cache_id()}|{self.threshold}"

    def check(self, call: Call) -> None:
        self.small.check(call)  # either may answer: both must honour the request
        self.large.check(call)

    async def answer(self, call: Call) -> Answer:
        small, why = None, None
        try:
            small = await self.small.answer(call)
        except Exception as exc:
            why = f"small model failed: {_short(exc)}"
        if small is not None:
            small.threshold = self.threshold
            if not small.valid:
                why = "small model's output is invalid"
            elif small.confidence is not None and small.confidence < self.threshold:
                why = f"confidence {small.confidence:.3g} < {self.threshold:.3g}"
            else:
                return small
        if not self.health.up():
            return self._fallback(
                small, why, f"large model skipped: down ({self.health.last_error})"
            )
        try:
            large = await self.large.answer(call)
        except Overloaded as exc:  # our own queue to it is full: busy, not down
            return self._fallback(small, why, f"large model busy: {_short(exc)}")
        except Exception as exc:
            self.health.failed(_short(exc))
            return self._fallback(small, why, f"large model failed: {_short(exc)}")
        self.health.recovered()
        if large.valid is False and small is not None and small.valid:
            small.extra["reason"] = (
                f"{why}; the large model's answer is invalid, kept the small one"
            )
            return small
        large.confidence = small.confidence if small is not None else None
        large.threshold = self.threshold
        large.extra["reason"] = why
        return large

    def _fallback(self, small: Answer | None, why: str | None, failure: str) -> Answer:
        from ladder.serve.schemas import ApiError

        if small is None:
            raise ApiError(
                502,
                f"no model could answer: {why}; {failure}.",
                type="upstream_error",
                code="upstream_unavailable",
            )
        small.fallback = failure
        small.extra["reason"] = why
        return small


def _short(exc: Exception) -> str:
    return (getattr(exc, "message", None) or str(exc) or type(exc).__name__).splitlines()[0][:200]
