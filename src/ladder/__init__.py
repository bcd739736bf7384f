"""Ladder: prompt it, retrieve for it, or fine-tune for it - measured on one hold-out.

The public Python API gives a notebook the same results as the CLI::

    import ladder

    task = ladder.load_task("examples/email-triage")
    result = ladder.climb(task.dir, rungs=["zero-shot", "few-shot"], limit=40)
    print(result.outcome.decision["recommendation"])
    card = ladder.evaluate("examples/email-triage", "zero-shot", limit=20)
    print(card.metrics["accuracy"])

Everything not named in `__all__` is private by name and may change between releases.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

__all__ = [
    "ClimbOptions",
    "ClimbResult",
    "__version__",
    "climb",
    "evaluate",
    "load_dataset",
    "load_task",
    "report",
]

# the submodule ladder.climb is imported first, so that the function `climb` below (not the
# module) is what `ladder.climb` names from then on
import ladder.climb as _climb_module
from ladder.climb import ClimbOptions, ClimbResult

if TYPE_CHECKING:  # the other modules load on first use
    from ladder.dataset import Dataset
    from ladder.evaluation.scorecard import Scorecard
    from ladder.report import Outcome
    from ladder.task import Task


def load_task(path: str | Path) -> Task:
    """Load and validate a task folder (or its task.yaml); raises `ladder.errors.LadderError`."""
    from ladder.task import load_task as _load

    return _load(path)


def load_dataset(task: Task | str | Path, leakage: str | None = None) -> Dataset:
    """A task's examples, split train/dev/holdout by hash of id, leak-checked."""
    from ladder.dataset import load_dataset as _load

    return _load(task if not isinstance(task, str | Path) else load_task(task), leakage)


def climb(task: str | Path, *, progress=None, **options: Any) -> ClimbResult:
    """Climb the rungs of a task, as `ladder climb` does; keyword options are `ClimbOptions`'s.

    Example: `ladder.climb("examples/email-triage", rungs=["zero-shot"], limit=20, model="fake")`.
    """
    return _climb_module.climb(task, ClimbOptions(**options), progress=progress)


def evaluate(task: str | Path, rung: str, variant: str | None = None, **options: Any) -> Scorecard:
    """One rung (optionally one prompt variant) on the hold-out, as `ladder eval` does."""
    result = climb(task, rungs=[rung], all_rungs=True, variant=variant, **options)
    cards = [c for c in result.scorecards if c.rung == rung]
    if not cards:
        from ladder.errors import LadderError

        raise LadderError(f"rung {rung!r} was skipped: {result.skipped.get(rung, 'no scorecard')}")
    return cards[-1]


def report(
    run_id: str,
    *,
    runs_dir: str | Path | None = None,
    prices: list[str | Path] | None = None,
    calls_per_day: float | None = None,
) -> Outcome:
    """Re-render a stored run's report (report.json + report.html), re-priced; as `ladder report`."""
    from ladder.report import render_run
    from ladder.store.db import Store

    store = Store(str(runs_dir) if runs_dir is not None else None)
    return render_run(store, run_id, price_files=list(prices or []), calls_per_day=calls_per_day)
