"""Ladder: prompt it, retrieve for it, or fine-tune for it - measured on one hold-out.

The public Python API gives a notebook the same results as the CLI::

    import ladder

    task = ladder.load_task("examples/email-triage")
    result = ladder.climb(task.dir, rungs=["zero-shot", "few-shot"], limit=40)
    print(result.outcome.decision["recommendation"])
    card = ladder.evaluate("examples/email-triage", "zero-shot", limit=20)
    print(card.metrics["accuracy"])
    print(ladder.decide(result.run_id)["basis"])  # re-priced, nothing written
    with ladder.serve(result.run_id) as gateway:  # the OpenAI API on loopback
        print(gateway.url)  # give it to openai.OpenAI(base_url=..., api_key="none")

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
    "decide",
    "evaluate",
    "load_dataset",
    "load_task",
    "report",
    "serve",
]

# the submodules that share a name with a function of this API are imported first, so that
# the functions below (not the modules) are what `ladder.climb`, `ladder.decide`,
# `ladder.report` and `ladder.serve` name from then on: a module's first import binds it on
# its package, and that would otherwise replace the function the first time anything used it
import ladder.climb as _climb_module
import ladder.decide as _decide_package  # noqa: F401
import ladder.report as _report_package  # noqa: F401
import ladder.serve as _serve_package  # noqa: F401
from ladder.climb import ClimbOptions, ClimbResult

if TYPE_CHECKING:  # the other modules load on first use
    from ladder.dataset import Dataset
    from ladder.evaluation.scorecard import Scorecard
    from ladder.report import Outcome
    from ladder.serve.build import Served
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


def decide(
    run_id: str,
    *,
    runs_dir: str | Path | None = None,
    prices: list[str | Path] | None = None,
    calls_per_day: float | None = None,
) -> dict[str, Any]:
    """A stored run's decision, re-priced with the price book as it is now (and at another
    volume if given), with its basis, bar verdicts and gates; writes nothing."""
    from ladder.report.build import build
    from ladder.store.db import Store

    store = Store(str(runs_dir) if runs_dir is not None else None)
    try:
        data = build(store, run_id, price_files=list(prices or []), calls_per_day=calls_per_day)
    finally:
        store.close()
    return data["decision"]


def serve(
    run: str | None = None,
    *,
    runs_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    auth: bool = False,
    log: str | None = None,
    progress=None,
    **options: Any,
) -> Served:
    """The OpenAI-compatible gateway on a run (or `model=`), as `ladder serve` builds it, in a
    background thread; keyword options are `ladder.serve.catalog.ServeOptions`'s.

    Started on return; use it as a context manager, or call `stop()`. Without `auth` any key is
    accepted, so it binds to loopback only; with it, keys come from the log database (`log`,
    default the runs folder's, as `ladder keys create` makes them).
    """
    from ladder.errors import LadderError
    from ladder.serve.build import Served, build_catalog
    from ladder.serve.catalog import ServeOptions
    from ladder.serve.logs import open_db

    if not auth and host not in ("127.0.0.1", "localhost", "::1"):
        raise LadderError(
            f"serve(host={host!r}) without auth would answer anyone on the network.",
            fix="serve on 127.0.0.1, or pass auth=True with keys from `ladder keys create`.",
        )
    opts = ServeOptions(run=run, runs_dir=str(runs_dir) if runs_dir else None, **options)
    if run:  # the log sits with the run's store, as `ladder serve` puts it
        from ladder.serve.runs import open_run

        store, _ = open_run(run, opts.runs_dir)
        opts.runs_dir = str(store.runs_dir)
        store.close()
    db = open_db(log, opts.runs_dir)
    if auth and db.active_keys() == 0:
        db.close()
        raise LadderError(
            "serve(auth=True) but the log database has no API key.",
            fix="create one with `ladder keys create NAME` (same runs folder), or serve without auth.",
        )
    catalog = build_catalog(opts, progress)
    try:
        return Served(catalog, db, host, port, auth=auth).start()
    except BaseException:
        catalog.close()
        raise
