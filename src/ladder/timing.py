"""Where a climb's time goes: wall seconds per rung and phase, kept in the run store.

A rung's work falls into named phases (`PHASES`); `PhaseClock.phase(name)` times one. Phases do
not nest: work inside an open phase (the trainings of the data curve) counts to that phase.
Time of a rung outside every phase is recorded as `other`, so the phases add up to the rung.
Work before the first rung (loading the model, the bf16 check, the planner's probe) and after
the last (the report) counts to the climb's own row, `(climb)`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PHASES = (
    "loading",  # an engine's weights (the first time a climb uses the model)
    "numerics check",  # an automatic bf16 choice answered against fp32 on dev
    "planning",  # the planner's probe of this machine's speed
    "dev selection",
    "hold-out",
    "consistency",
    "training",
    "data curve",
    "forgetting",
    "other",
    "report",
)
CLIMB = "(climb)"  # the rung name of work that belongs to no rung (loading, planning, report)


class PhaseClock:
    """Times phases of the current rung and adds their seconds to the run store."""

    def __init__(self, store, run_id: str):
        self.store, self.run_id = store, run_id
        self.rung: str | None = None
        self._active: str | None = None
        self._in_phases = 0.0  # seconds of the current rung spent inside phases

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; one of {', '.join(PHASES)}")
        if self._active is not None:
            yield  # counted by the phase already open
            return
        self._active, t0 = name, time.perf_counter()
        try:
            yield
        finally:
            self._active = None
            dt = time.perf_counter() - t0
            self._in_phases += dt
            self.store.add_phase_time(self.run_id, self.rung or CLIMB, name, dt)

    @contextmanager
    def rung_scope(self, rung: str) -> Iterator[None]:
        """Attribute phases to `rung`; what the rung spends outside them is its `other`."""
        self.rung, self._in_phases, t0 = rung, 0.0, time.perf_counter()
        try:
            yield
        finally:
            rest = time.perf_counter() - t0 - self._in_phases
            if rest > 0.0005:
                self.store.add_phase_time(self.run_id, rung, "other", rest)
            self.rung = None


def phase_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Stored phase rows -> {rung: {phase: seconds}} in ladder and phase order."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        out.setdefault(r["rung"], {})[r["phase"]] = r["seconds"]
    order = {p: i for i, p in enumerate(PHASES)}
    return {
        rung: dict(sorted(phases.items(), key=lambda kv: order.get(kv[0], len(order))))
        for rung, phases in out.items()
    }


def phase_line(phases: dict[str, float]) -> str:
    """`dev selection 41 s · hold-out 80 s · … = 130 s` for one rung."""
    parts = [f"{name} {fmt_seconds(s)}" for name, s in phases.items()]
    return " · ".join(parts) + f"  = {fmt_seconds(sum(phases.values()))}"


def fmt_seconds(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    if s < 600:
        return f"{s:.0f} s"
    return f"{s / 60:.1f} min"


def timed(phase: str):
    """Decorate `fn(ctx, ...)` so its wall time counts to `phase` of the current rung."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(ctx, *args, **kwargs):
            with ctx.phase(phase):
                return fn(ctx, *args, **kwargs)

        return inner

    return wrap
