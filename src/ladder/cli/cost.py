"""`ladder cost`: what each option costs at a volume, from a run or from flags alone.

ladder cost examples/email-triage --volume 1e6/day       # the task's latest run, re-priced
ladder cost --volume 10M/month --prompt-tokens 2000 --tuned-prompt-tokens 300 --model gpt-4o
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ladder.cli.cost_flags import Flags, standalone
from ladder.cli.render import console, print_wide
from ladder.economics import VolumeError, human, money, parse_volume, per_month
from ladder.errors import StoreError
from ladder.prices import load_price_book
from ladder.scenario import payback_words
from ladder.store.db import Store

Opt = typer.Option


def register(app: typer.Typer) -> None:
    app.command("cost")(cost_cmd)


def cost_cmd(
    target: Annotated[
        str | None, typer.Argument(help="task folder or run id (omit to work from flags)")
    ] = None,
    volume: Annotated[str | None, Opt("--volume", help="calls: 50000/day, 10M/month")] = None,
    prompt_tokens: Annotated[
        float | None, Opt("--prompt-tokens", min=0, max=1e7, help="prompt tokens per call today")
    ] = None,
    tuned_prompt_tokens: Annotated[
        float | None,
        Opt("--tuned-prompt-tokens", min=0, max=1e7, help="prompt tokens after fine-tuning"),
    ] = None,
    output_tokens: Annotated[
        float, Opt("--output-tokens", min=0, max=1e6, help="tokens out per call")
    ] = 0,
    model: Annotated[str | None, Opt("--model", help="price-book model prompted today")] = None,
    tuned_model: Annotated[
        str | None, Opt("--tuned-model", help="price-book model after tuning (default: --model)")
    ] = None,
    price_in: Annotated[
        float | None,
        Opt("--price-in", min=0, max=1e6, help="$/M input tokens of the prompted model"),
    ] = None,
    price_out: Annotated[
        float | None, Opt("--price-out", min=0, max=1e6, help="$/M output, prompted")
    ] = None,
    tuned_price_in: Annotated[
        float | None,
        Opt("--tuned-price-in", min=0, max=1e6, help="$/M input tokens, fine-tuned model"),
    ] = None,
    tuned_price_out: Annotated[
        float | None, Opt("--tuned-price-out", min=0, max=1e6, help="$/M output, fine-tuned model")
    ] = None,
    tuned_seconds: Annotated[
        float | None,
        Opt("--tuned-seconds", min=0, max=1e4, help="self-hosted: s per call (at batch)"),
    ] = None,
    tuned_hardware: Annotated[
        str | None, Opt("--tuned-hardware", help="self-hosted: price-book hardware kind")
    ] = None,
    training_cost: Annotated[
        float, Opt("--training-cost", min=0, max=1e10, help="$ one-time")
    ] = 0.0,
    train_hardware: Annotated[
        str | None, Opt("--train-hardware", help="hardware kind training runs on")
    ] = None,
    train_gpus: Annotated[
        int, Opt("--train-gpus", min=1, max=100000, help="GPUs (vCPUs for cpu)")
    ] = 1,
    train_hours: Annotated[
        float | None, Opt("--train-hours", min=0, max=1e6, help="measured training hours")
    ] = None,
    train_params: Annotated[
        str | None, Opt("--train-params", help="model size for an estimate: 7B")
    ] = None,
    train_tokens: Annotated[
        str | None, Opt("--train-tokens", help="tokens trained on (× epochs): 20M")
    ] = None,
    mfu: Annotated[float, Opt("--mfu", min=0.01, max=1, help="model FLOPs utilisation")] = 0.35,
    labelling: Annotated[
        float | None, Opt("--labelling", min=0, max=1e4, help="$ per labelled example")
    ] = None,
    examples: Annotated[int, Opt("--examples", min=0, max=10**9, help="examples labelled")] = 0,
    prompt_hours: Annotated[
        float,
        Opt("--prompt-hours", min=0, max=1e5, help="engineering hours of the prompted option"),
    ] = 0.0,
    tuning_hours: Annotated[
        float, Opt("--tuning-hours", min=0, max=1e5, help="engineering hours of the fine-tune")
    ] = 0.0,
    engineer_rate: Annotated[
        float | None, Opt("--engineer-rate", min=0, max=1e5, help="$ per engineering hour")
    ] = None,
    retrain_every: Annotated[
        float | None, Opt("--retrain-every", min=0.1, max=120, help="months between retrainings")
    ] = None,
    maintenance: Annotated[
        float | None, Opt("--maintenance", min=0, max=1e9, help="$ per month to keep the fine-tune")
    ] = None,
    prices: Annotated[list[str] | None, Opt("--prices", help="price file(s)")] = None,
    runs: Annotated[str | None, Opt("--runs", help="run store folder")] = None,
) -> None:
    """Cost per call and per month of each option, payback and the break-even volume."""
    if target is None:
        if volume is None or prompt_tokens is None or tuned_prompt_tokens is None:
            raise typer.BadParameter(
                "without a task or run, give --volume, --prompt-tokens and --tuned-prompt-tokens "
                "(and --model or --price-in/--price-out)"
            )
        book = load_price_book(files=prices or [])
        maint = book.assumptions.maintenance_per_month if maintenance is None else maintenance
        months = retrain_every or book.assumptions.amortize_months
        flags = {k: v for k, v in locals().items() if k in Flags.__dataclass_fields__}
        standalone(Flags(**flags), book, parse_volume(volume), months, maint)
        return
    _from_run(target, volume, prices or [], runs)


def _from_run(target: str, volume: str | None, prices: list[str], runs: str | None) -> None:
    from ladder.report.build import build
    from ladder.report.html import decision_title

    store = Store(runs)
    run_id = _latest_run(store, target) if Path(target).exists() else target
    cpd = parse_volume(volume) if volume is not None else None
    data = build(store, run_id, price_files=prices, calls_per_day=cpd)
    cpd = data["task"]["calls_per_day"]
    if cpd is None:
        raise VolumeError(
            "no volume: the task declares none.",
            fix="pass --volume 50000/day (or add `volume: {calls_per_day: N}` to task.yaml).",
        )
    t = Table(show_edge=False, header_style="bold", box=None)
    for col in (
        "rung",
        "model",
        "basis",
        "$ per call",
        "$/1k calls",
        "one-time",
        f"$/month at {human(cpd)}/day",
    ):
        t.add_column(col, justify="left" if col in ("rung", "model", "basis") else "right")
    for c in data["scorecards"]:
        k = c["cost"]
        t.add_row(
            c["rung"],
            c["model"],
            k["formula"],
            f"{k['per_call']:.3g}",
            money(k["per_1k_calls"]),
            money(k["one_time"]),
            money(k["monthly"]),
        )
    console.print(
        f"Run {run_id} · {human(cpd)} calls/day = {human(per_month(cpd))}/month", highlight=False
    )
    print_wide(t)
    months = data["prices"]["assumptions"]["amortize_months"]
    for r in data["decision"]["break_even"]:
        be = r["break_even_per_day"]
        pay = payback_words(r.get("payback_days"), cpd, human, months)
        console.print(
            f"{r['tuned']} vs {r['prompted']}: break-even "
            f"{'never' if be is None else human(be) + ' calls/day'}; "
            f"{pay if pay.startswith('never') else 'pays back ' + pay}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"[bold]Decision at this volume: {decision_title(data['decision'], data['task']['bar'])}[/]",
        highlight=False,
    )


def _latest_run(store: Store, task_path: str) -> str:
    from ladder.task import load_task

    task = load_task(task_path)
    for r in store.list_runs(task.name, limit=200):
        if store.scorecards(r["id"]):
            return r["id"]
    raise StoreError(
        f"task {task.name!r} has no run with scorecards in the store.",
        where=store.path,
        fix=f"run `ladder climb {task_path}` first, or use `ladder cost` with flags only.",
    )
