"""The rung contract, and choosing among a rung's candidate solutions on the dev split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from ladder.rungs.context import Context
from ladder.rungs.solution import Solution


@dataclass
class Prepared:
    """A rung's chosen solution and the evidence of how it was chosen."""

    solution: Solution
    selection: dict[str, Any] = field(default_factory=dict)  # candidate -> dev scores
    failure_analysis: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # rung-specific facts for the scorecard


class RungSkipped(Exception):
    """Raised by `prepare` when a rung declines after it started (a measured check failed).

    The climb records it exactly like a `skip_reason`: status `skipped`, the reason stored and
    printed, and the climb goes on with the next rung.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Rung(Protocol):
    name: str
    family: str  # prompt | retrieve | fine-tune | other (ladder.registry.FAMILIES)
    Config: type[BaseModel]

    def skip_reason(self, ctx: Context) -> str | None: ...

    def prepare(self, ctx: Context) -> Prepared: ...


def select_on_dev(ctx: Context, candidates: Sequence[Solution], rung: str) -> Prepared:
    """Predict dev with the candidates, keep the best by the task's primary metric.

    By default the candidates race (`ladder.rungs.racing`: clear losers stop early); with
    `ctx.schedule == "exhaustive"` every candidate answers every dev item. Ties go to the
    candidate with the shorter prompt. The hold-out is never looked at here.
    """
    from ladder.evaluation.failures import recurring_errors
    from ladder.evaluation.scorecard import dev_summary
    from ladder.rungs.racing import race

    if ctx.variant:
        chosen = [c for c in candidates if c.variant == ctx.variant]
        if not chosen:
            from ladder.errors import LadderError

            raise LadderError(
                f"rung {rung!r} has no variant {ctx.variant!r}.",
                fix=f"use one of: {', '.join(c.variant for c in candidates)}.",
            )
        candidates = chosen
    dev = ctx.examples("dev")
    if rung in ctx.dev_limit:  # a budget's plan races the variants on fewer dev items
        dev = dev[: ctx.dev_limit[rung]]
    if not dev or len(candidates) == 1:
        only = candidates[0]
        return Prepared(only, {only.variant: {"note": "no dev selection", **_tried(only)}})
    primary = ctx.task.metric
    with ctx.phase("dev selection"):
        if ctx.schedule == "exhaustive":
            per_variant = {
                c.variant: ctx.predict(c, dev, "dev", desc=f"{rung} · dev · {c.variant}")
                for c in candidates
            }
            dropped: dict[str, Any] = {}
        else:
            per_variant, dropped = race(ctx, candidates, dev, rung, primary)
    selection: dict[str, Any] = {
        v: dev_summary(ctx.task, dev[: len(p)], p) for v, p in per_variant.items()
    }
    for v, why in dropped.items():
        selection[v]["dropped"] = why
    finalists = [c for c in candidates if c.variant not in dropped]
    best = max(
        finalists,
        key=lambda c: (selection[c.variant][primary], -selection[c.variant]["tokens_in"]),
    )
    for c in candidates:
        selection[c.variant]["chosen"] = c is best
        selection[c.variant].update(_tried(c))
    # errors that recur across variants, on the dev items every variant answered
    shared = min(len(p) for p in per_variant.values())
    failures = recurring_errors(
        ctx.task, dev[:shared], {v: p[:shared] for v, p in per_variant.items()}
    )
    return Prepared(best, selection, failures)


def _tried(candidate: Solution) -> dict[str, Any]:
    """What a candidate tries (instructions, format, demonstrations, calibration...), if it says."""
    techniques = getattr(candidate, "techniques", None)
    return {"techniques": techniques()} if callable(techniques) else {}
