"""`ladder cost`: what each option costs at a volume, from a run or from flags alone.

ladder cost examples/email-triage --volume 1e6/day       # the task's latest run, re-priced
ladder cost --volume 10M/month --prompt-tokens 2000 --tuned-prompt-tokens 300 --model gpt-4o
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ladder.cli.render import console, print_wide
from ladder.economics import (
    DAYS_PER_MONTH,
    VolumeError,
    human,
    money,
    parse_volume,
    per_month,
    prompt_shrink,
)
from ladder.errors import StoreError
from ladder.prices import ModelPrice, PriceBook, PriceError, load_price_book
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
        float | None, Opt("--price-in", min=0, max=1e6, help="$ per M input tokens")
    ] = None,
    price_out: Annotated[
        float | None, Opt("--price-out", min=0, max=1e6, help="$ per M output")
    ] = None,
    training_cost: Annotated[
        float, Opt("--training-cost", min=0, max=1e10, help="$ one-time")
    ] = 0.0,
    maintenance: Annotated[
        float | None, Opt("--maintenance", min=0, max=1e9, help="$ per month to keep the fine-tune")
    ] = None,
    prices: Annotated[list[str] | None, Opt("--prices", help="price file(s)")] = None,
    runs: Annotated[str | None, Opt("--runs", help="run store folder")] = None,
) -> None:
    """Cost per call and per month of each option, and the break-even volume of fine-tuning."""
    if target is None:
        if volume is None or prompt_tokens is None or tuned_prompt_tokens is None:
            raise typer.BadParameter(
                "without a task or run, give --volume, --prompt-tokens and --tuned-prompt-tokens "
                "(and --model or --price-in/--price-out)"
            )
        book = load_price_book(files=prices or [])
        before = _price(book, model, price_in, price_out, "--model")
        after = _price(book, tuned_model or model, price_in, price_out, "--tuned-model")
        maint = book.assumptions.maintenance_per_month if maintenance is None else maintenance
        args = (prompt_tokens, tuned_prompt_tokens, output_tokens, before, after)
        _standalone(parse_volume(volume), *args, training_cost, maint, book)
        return
    _from_run(target, volume, prices or [], runs)


def _price(book: PriceBook, name, p_in, p_out, flag: str) -> ModelPrice:
    if p_in is not None or p_out is not None:
        return ModelPrice(input=p_in or 0.0, output=p_out or 0.0, source="flags")
    if not name:
        raise typer.BadParameter("give --model NAME or --price-in/--price-out", param_hint=flag)
    found = book.model(name)
    if found is None:
        raise PriceError(
            f"no price for the model {name!r} in the price book.",
            fix="pass --price-in/--price-out, or add it under `models:` in a file given with --prices "
            f"(known: {', '.join(book.models)}).",
        )
    return found[1]


def _standalone(cpd, before_t, after_t, out_t, before, after, once, maint, book) -> None:
    """The arithmetic, line by line, so a reader can check every figure."""
    months = book.assumptions.amortize_months
    r = prompt_shrink(
        cpd * DAYS_PER_MONTH, before_t, after_t, out_t, before, after, once, months, maint
    )
    n = r["calls_per_month"]
    console.print(
        f"Volume      {n:,.0f} calls/month ({human(cpd)}/day)", highlight=False, soft_wrap=True
    )
    for tag, tok, key, price in (
        ("Prompted", before_t, "before", before),
        ("Fine-tuned", after_t, "after", after),
    ):
        console.print(
            f"{tag:<11} {n:,.0f} × {tok:,.0f} tokens = {human(r['input_tokens_' + key])} input tokens "
            f"× ${price.input}/M = {money(r['input_cost_' + key])}/month",
            highlight=False,
            soft_wrap=True,
        )
        if out_t:
            console.print(
                f"{'':<11} {n:,.0f} × {out_t:,.0f} tokens out × ${price.output}/M = {money(r['output_cost_' + key])}/month",
                highlight=False,
            )
    if once or maint:
        console.print(
            f"Fine-tune   {money(once)} one-time ÷ {months:g} months + {money(maint)}/month maintenance",
            highlight=False,
            soft_wrap=True,
        )
    share = r["saving_per_month"] / r["monthly_before"] if r["monthly_before"] else 0.0
    console.print(
        f"[bold]Saving      {money(r['saving_per_month'])}/month ({money(r['saving_per_year'])}/year), "
        f"{100 * share:.0f}% of the bill[/]",
        highlight=False,
    )
    be = r["break_even_per_day"]
    tail = (
        "never (the fine-tuned call is not cheaper)"
        if be is None
        else f"{human(be)} calls/day ({human(r['break_even_per_month'])}/month)"
    )
    console.print(f"Break-even  {tail}", highlight=False, soft_wrap=True)


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
    for r in data["decision"]["break_even"]:
        be = r["break_even_per_day"]
        console.print(
            f"{r['tuned']} vs {r['prompted']}: break-even {'never' if be is None else human(be) + ' calls/day'}",
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
