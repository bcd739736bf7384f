"""`ladder runs`: list stored runs, or show one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ladder.cli.render import console, print_wide, scorecard_table
from ladder.evaluation.scorecard import Scorecard
from ladder.store.db import Store
from ladder.task import BarSpec


def register(app: typer.Typer) -> None:
    app.command("runs")(runs_cmd)


def runs_cmd(
    action: Annotated[str, typer.Argument(help="list | show")] = "list",
    run_id: Annotated[str | None, typer.Argument(help="run id (for show)")] = None,
    task: Annotated[str | None, typer.Option("--task", help="only runs of this task")] = None,
    runs: Annotated[str | None, typer.Option("--runs", help="run store folder")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
) -> None:
    """List runs (newest first), or `ladder runs show RUN_ID` for its scorecards and provenance."""
    store = Store(runs)
    if action == "show" or (action not in ("list",) and run_id is None):
        rid = run_id or action
        _show(store, rid)
    elif action == "list":
        _list(store, task, limit)
    else:
        raise typer.BadParameter(
            "use `ladder runs` or `ladder runs show RUN_ID`", param_hint="ACTION"
        )


def _list(store: Store, task: str | None, limit: int) -> None:
    rows = store.list_runs(task, limit)
    if not rows:
        console.print(f"No runs in {store.path} yet. Start one with `ladder climb TASK`.")
        return
    t = Table(show_edge=False, header_style="bold")
    for col in ("run", "task", "status", "started", "rungs", "best", "bar"):
        t.add_column(col)
    for r in rows:
        s = r.get("summary") or {}
        best = (
            f"{s['best_rung']} {s['metric']} {s['best_value']:.2f}" if s.get("best_rung") else "-"
        )
        bar = (
            "met by " + s["bar_met_by"]
            if s.get("bar_met_by")
            else ("not met" if s.get("bar") else "-")
        )
        t.add_row(
            r["id"],
            r["task"],
            r["status"],
            r["created_at"],
            ", ".join(s.get("rungs", [])) or "-",
            best,
            bar,
        )
    print_wide(t)


def _show(store: Store, run_id: str) -> None:
    run = store.get_run(run_id)
    cards = [Scorecard.model_validate(c) for c in store.scorecards(run_id)]
    prov = run["provenance"]
    hw = prov.get("hardware", {})
    git = prov.get("ladder_git") or {}
    console.print(
        f"[bold]Run[/]      {run['id']} · task {run['task']} · {run['status']} · {run['created_at']} → {run['finished_at'] or '…'}"
    )
    console.print(f"[bold]Task[/]     {run['task_path']}")
    console.print(
        f"[bold]Ladder[/]   {prov.get('ladder_version')} git {str(git.get('sha') or '-')[:10]}{' (dirty)' if git.get('dirty') else ''} · Python {prov.get('python')}"
    )
    console.print(
        f"[bold]Hardware[/] {hw.get('cpu')} · {hw.get('cores')} cores · {hw.get('memory_gb')} GB"
        + (f" · {hw['gpu']}" if hw.get("gpu") else "")
    )
    console.print(
        "[bold]Packages[/] " + ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items())
    )
    console.print(
        f"[bold]Stored[/]   {store.count_predictions(run_id)} predictions · {run['run_dir']}"
    )
    for r in store.rungs(run_id):
        if r["status"] in ("skipped", "failed", "interrupted"):
            console.print(
                f"[dim]{r['rung']}: {r['status']}{' - ' + r['reason'] if r['reason'] else ''}[/]"
            )
    if cards:
        console.print()
        bar = (run.get("summary") or {}).get("bar")
        print_wide(scorecard_table(cards, BarSpec.model_validate(bar) if bar else None))
