"""`ladder report RUN`: re-render a stored run's report; and the decision as the terminal shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ladder.cli.render import console
from ladder.economics import parse_volume
from ladder.store.db import Store

ANSWER_STYLE = {"yes": "green", "no": "red", "unclear": "yellow", "unknown": "dim"}


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)


def report_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (see `ladder runs`)")],
    prices: Annotated[
        list[str] | None, typer.Option("--prices", help="price file(s) over the shipped book")
    ] = None,
    volume: Annotated[
        str | None,
        typer.Option("--volume", help="calls per day (or 10M/month) instead of the task's"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write into this folder (default: the run's)")
    ] = None,
    runs: Annotated[str | None, typer.Option("--runs", help="run store folder")] = None,
) -> None:
    """Re-render a run's report.html and report.json, re-priced with today's price book.

    Prices and volume come from the task's current task.yaml when it still loads (else as the
    run recorded them), then --prices files and --volume.
    """
    from ladder.report import render_run

    cpd = parse_volume(volume) if volume is not None else None
    outcome = render_run(
        Store(runs), run_id, price_files=prices or [], calls_per_day=cpd, out_dir=out
    )
    print_outcome(outcome)


def print_outcome(outcome: Any) -> None:
    """The comparison, the decision with its gates, signals, what would change it, the files."""
    from ladder.report.html import decision_title

    data, d = outcome.data, outcome.decision
    if data.get("headline"):
        console.print(f"{data['headline']}.", highlight=False, soft_wrap=True)
        console.print()
    console.print(
        f"[bold]Decision: {decision_title(d, data['task']['bar'])}.[/] Gates:", highlight=False
    )
    b = d.get("basis")
    if b:
        console.print(f"  basis: {b['basis']}: {b['text']}", highlight=False, soft_wrap=True)
    for g in d["gates"]:
        style = ANSWER_STYLE.get(g["answer"], "")
        console.print(
            f"  {g['n']} {g['name']:<20} [{style}]{g['answer']:<8}[/] {g['evidence']}",
            highlight=False,
            soft_wrap=True,
        )
    for s in d["signals"].values():
        console.print(f"[dim]Signal[/]   {s['text']}", highlight=False, soft_wrap=True)
    if d["what_would_change"]:
        changes = "; ".join(c["text"] for c in d["what_would_change"])
        console.print(f"What would change it: {changes}.", highlight=False, soft_wrap=True)
    p = data["prices"]
    console.print(
        f"[dim]Prices   as of {p['as_of']} ({p['age_days']} days old) · {' → '.join(p['layers'])}[/]",
        highlight=False,
    )
    console.print(f"[bold]Report[/]   {outcome.html_path}", highlight=False, soft_wrap=True)
