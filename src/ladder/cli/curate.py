"""`ladder curate`: the gateway's request log -> a deduplicated, hold-out-safe training set."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ladder.cli.render import console
from ladder.errors import LadderError

UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}  # seconds


def register(app: typer.Typer) -> None:
    app.command("curate")(curate_cmd)


def since_ts(value: str | None) -> float | None:
    """`7d`, `12h`, `30m`, `2w` ago, or an ISO date/time; None for everything."""
    if not value:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([mhdw])", value.strip())
    if m:
        return time.time() - float(m.group(1)) * UNITS[m.group(2)]
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise typer.BadParameter(
            "use e.g. 7d, 12h, 30m, 2w, or a date like 2026-11-01", param_hint="--since"
        ) from None


def curate_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="JSONL file to write (rows: id, input, output, meta)")
    ] = Path("next.jsonl"),
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="ladder (for --add-data) | messages (chat: TRL, OpenAI, Together) | prompt-completion",
        ),
    ] = "ladder",
    since: Annotated[
        str | None,
        typer.Option("--since", help="only requests newer than this: 7d, 12h, 2w, or a date"),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="only requests to this model name")
    ] = None,
    route: Annotated[
        str | None,
        typer.Option(
            "--route",
            help="only answers served by these routes, comma-separated (e.g. few-shot@large)",
        ),
    ] = None,
    feedback: Annotated[
        str, typer.Option("--feedback", help="good (rated good only) | not-bad (default) | any")
    ] = "not-bad",
    include_invalid: Annotated[
        bool, typer.Option("--include-invalid", help="keep answers that were not valid outputs")
    ] = False,
    task: Annotated[
        Path | None,
        typer.Option("--task", help="task folder (default: the task of the logged run)"),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="postgresql:// URL of the log (default: the run store)"),
    ] = None,
    runs: Annotated[
        str | None, typer.Option("--runs", help="run store folder (default ./runs or $LADDER_RUNS)")
    ] = None,
) -> None:
    """Turn logged traffic into training data: dedupe, filter, drop anything overlapping the hold-out."""
    from ladder.curate import FEEDBACK, curate, write_card
    from ladder.dataset import load_dataset
    from ladder.serve.logs import open_db
    from ladder.store.db import Store
    from ladder.task import load_task

    if feedback not in FEEDBACK:
        raise typer.BadParameter(f"use one of: {', '.join(FEEDBACK)}", param_hint="--feedback")
    from ladder.trainsets import check_format, write_trainset

    check_format(format)
    log = open_db(db, runs)
    rows = [r for r in log.query(since_ts(since), model) if r.get("task")]
    log.close()
    tasks = sorted({r["task"] for r in rows})
    if task is not None:
        t = load_task(task)
    elif len(tasks) == 1:
        run_id = max((r for r in rows if r.get("run_id")), key=lambda r: r["created_at"])["run_id"]
        t = load_task(Store(runs).get_run(run_id)["task_path"])
    elif not tasks:
        raise LadderError(
            "the log holds no requests to a task model in that window.",
            fix="serve a run (`ladder serve RUN`), send it traffic, or widen --since.",
        )
    else:
        raise LadderError(
            f"the log holds requests for several tasks: {', '.join(tasks)}.",
            fix="choose one with --model TASK (or --task FOLDER).",
        )
    rows = [r for r in rows if r["task"] == t.name]
    ds = load_dataset(t, "report")  # only the splits are needed here, never a refusal
    routes = [x.strip() for x in route.split(",") if x.strip()] if route else None
    res = curate(rows, t, ds, routes=routes, feedback=feedback, include_invalid=include_invalid)
    write_trainset(out, res.examples, t, format)
    card = write_card(out, t, res, format, since=since, model=model, feedback=feedback)
    c = res.counts
    console.print(
        f"{c['logged']} logged · dropped: {c['unusable']} not a task answer, {c['route']} other route, {c['feedback']} feedback, "
        f"{c['invalid']} invalid, {c['duplicate']} duplicate, {c['known']} already in train/dev, {c['holdout']} overlapping the hold-out",
        highlight=False,
    )
    nxt = (
        f"next: `ladder climb {t.dir} --add-data {out}`"
        if format == "ladder"
        else f"{format} format"
    )
    console.print(
        f"Wrote [bold]{c['kept']}[/] examples to {out}  ·  card {card}  ·  {nxt}", highlight=False
    )
