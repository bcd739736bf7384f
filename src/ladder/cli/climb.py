"""`ladder climb` and `ladder eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ladder.cli.render import RichProgress, console, print_wide, scorecard_table
from ladder.cli.report import print_outcome
from ladder.climb import ClimbOptions, ClimbResult, climb
from ladder.evaluation.bar import for_task as bar_verdict
from ladder.planner import parse_budget
from ladder.timing import fmt_seconds, phase_line

TaskArg = Annotated[Path, typer.Argument(help="task folder (with task.yaml) or the YAML file")]
RunsOpt = Annotated[
    str | None, typer.Option("--runs", help="run store folder (default ./runs or $LADDER_RUNS)")
]
LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="evaluate on the first N dev/holdout examples only"),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="model for the prompting rungs (default: the task's)")
]
PricesOpt = Annotated[
    list[str] | None,
    typer.Option("--prices", help="price file(s) over the shipped book and the task's prices:"),
]
LeakOpt = Annotated[
    str | None,
    typer.Option(
        "--leakage", help="refuse | report | drop hold-out inputs duplicated in train/dev"
    ),
]


def _dtype(value: str | None) -> str | None:
    from ladder.engines.numerics import CHOICES

    if value is not None and value not in CHOICES:
        raise typer.BadParameter(
            f"{value!r} is not a number format: use auto (measure this machine once and pick "
            "per phase), float32 or bfloat16",
            param_hint="--dtype",
        )
    return value


DtypeOpt = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        callback=_dtype,
        help="number format of local models: auto (default: measured once per machine, bf16 "
        "per phase only where faster and checked on dev), float32 or bfloat16 (every phase)",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("climb")(climb_cmd)
    app.command("eval")(eval_cmd)


def climb_cmd(
    task: TaskArg,
    rungs: Annotated[
        str | None,
        typer.Option("--rungs", help="comma-separated rungs to run, e.g. zero-shot,few-shot"),
    ] = None,
    all_rungs: Annotated[
        bool, typer.Option("--all", help="climb every rung even after one meets the bar")
    ] = False,
    limit: LimitOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the task's latest unfinished run")
    ] = False,
    run_id: Annotated[str | None, typer.Option("--run", help="resume this run id")] = None,
    model: ModelOpt = None,
    leakage: LeakOpt = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    add_data: Annotated[
        list[Path] | None,
        typer.Option(
            "--add-data",
            help="extra train examples: JSONL rows {input, output} (e.g. from `ladder curate`); repeatable",
        ),
    ] = None,
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule",
            help="race: prompt variants race on dev, clear losers stop early (default); "
            "exhaustive: every variant on every dev item",
        ),
    ] = "race",
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            help="fit the climb in this time (e.g. 10m, 90s, 1h): the plan cuts the data curve, "
            "then epochs, and says what it cut",
        ),
    ] = None,
    runs: RunsOpt = None,
    prices: PricesOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """Climb the rungs, cheapest first, each measured on the same hold-out; stop at the bar unless --all."""
    opts = ClimbOptions(
        rungs=_rung_list(rungs),
        all_rungs=all_rungs,
        limit=limit,
        resume=resume,
        run_id=run_id,
        model=model,
        leakage=_leakage(leakage),
        runs_dir=runs,
        seed=seed,
        prices=prices or [],
        add_data=[str(p) for p in add_data] if add_data else None,
        schedule=schedule,
        budget=parse_budget(budget) if budget is not None else None,
        dtype=dtype,
    )
    _run(task, opts)


def eval_cmd(
    task: TaskArg,
    rung: Annotated[str, typer.Option("--rung", help="the rung to evaluate")],
    variant: Annotated[
        str | None,
        typer.Option("--variant", help="evaluate this prompt variant only (no dev selection)"),
    ] = None,
    limit: LimitOpt = None,
    model: ModelOpt = None,
    leakage: LeakOpt = None,
    runs: RunsOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """Evaluate one rung on the hold-out (a run of its own in the store)."""
    opts = ClimbOptions(
        rungs=[rung],
        all_rungs=True,
        limit=limit,
        model=model,
        leakage=_leakage(leakage),
        runs_dir=runs,
        variant=variant,
        dtype=dtype,
    )
    _run(task, opts)


def _rung_list(value: str | None) -> list[str] | None:
    """`--rungs a,b`; an empty list (`--rungs ,`) is refused, never read as 'every rung'."""
    if value is None:
        return None
    names = [r.strip() for r in value.split(",") if r.strip()]
    if not names:
        raise typer.BadParameter(
            f"{value!r} names no rung; give e.g. zero-shot,few-shot (or omit --rungs for all)",
            param_hint="--rungs",
        )
    return names


def _leakage(value: str | None) -> str | None:
    if value is not None and value not in ("refuse", "report", "drop"):
        raise typer.BadParameter("use refuse, report or drop", param_hint="--leakage")
    return value


def _run(task: Path, opts: ClimbOptions) -> ClimbResult:
    with RichProgress() as progress:
        return climb(task, opts, progress=progress, events=Printer(progress))


class Printer:
    """Turns climb events into the lines a user reads while the bars run."""

    def __init__(self, progress: RichProgress):
        self.out = progress.console

    def __call__(self, event: str, **data: Any) -> None:
        getattr(self, f"on_{event}", lambda **_: None)(**data)

    def on_start(self, task, dataset, run_id, run_dir, model, resumed, rungs, limit) -> None:
        n_labels = f" · {len(task.labels)} labels" if task.labels else ""
        c = dataset.counts()
        leak = f"leakage check: {len(dataset.leaks)} shared input(s)" + (
            f", {len(dataset.dropped)} dropped" if dataset.dropped else ""
        )
        self.out.print(
            f"[bold]Task[/]     {task.name} · {task.kind}{n_labels} · {len(dataset.examples)} examples ({dataset.source.name})"
        )
        self.out.print(
            f"[bold]Split[/]    train {c['train']} · dev {c['dev']} · holdout {c['holdout']}   ({leak})"
        )
        if limit:
            self.out.print(
                f"[yellow]Limit[/]    dev and holdout cut to the first {limit} examples (quick run: compare only within it)"
            )
        for w in dataset.warnings:
            self.out.print(f"[yellow]Note[/]     {w}")
        self.out.print(f"[bold]Model[/]    {model}")
        self.out.print(
            f"[bold]Run[/]      {run_id}{'  (resumed)' if resumed else ''}  ·  rungs: {', '.join(rungs)}"
        )
        self.out.print()

    def on_plan(self, plan) -> None:
        self.plan = plan
        budget = f" (budget {fmt_seconds(plan.budget_s)})" if plan.budget_s else ""
        sp = plan.speed
        self.out.print(
            f"[bold]Plan[/]     ETA {fmt_seconds(plan.eta_s)}{budget} if no rung meets the bar "
            f"sooner; measured {sp.item_s:.2f} s per answer ({sp.tokens_per_s:.0f} prompt tok/s, "
            f"{sp.items} dev answers)"
        )
        for rung, phases in plan.rungs.items():
            self.out.print(f"[dim]  {rung:<13} ~{phase_line(phases)}[/]")
        for cut in plan.cuts:
            self.out.print(f"[yellow]Cut[/]      {cut}")
        for line in plan.widened:
            self.out.print(f"[yellow]Intervals[/] {line}")
        if plan.budget_s and plan.eta_s > plan.budget_s:
            self.out.print(
                f"[yellow]Note[/]     even after the cuts the estimate exceeds the budget by "
                f"{fmt_seconds(plan.eta_s - plan.budget_s)}: use --rungs to climb fewer rungs"
            )
        self.out.print()

    def on_eta(self, rung, left_s) -> None:
        self.out.print(f"[dim]{rung:<13} starting · climb ETA ~{fmt_seconds(left_s)} left[/]")

    def on_rung_skip(self, rung, reason) -> None:
        self.out.print(f"[dim]{rung:<13} skipped: {reason}[/]")

    def on_rung_prepared(self, rung, prepared) -> None:
        sel = prepared.selection or {}
        if len(sel) > 1:
            best = prepared.solution.variant
            metric = next((k for k in sel[best] if k not in ("tokens_in", "n", "chosen")), None)
            score = (
                f" ({metric} {sel[best][metric]:.2f} on dev, n={sel[best]['n']})" if metric else ""
            )
            self.out.print(f"{rung:<13} dev: {len(sel)} variants → best [bold]{best}[/]{score}")
            for variant, s in sel.items():
                if "dropped" in s:
                    d = s["dropped"]
                    self.out.print(
                        f"{'':<13} [dim]{variant} dropped after {d['after']} dev items: "
                        f"{d['diff']:+.2f} behind {d['behind']}, {d['level']:.0%} CI "
                        f"[{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}][/]"
                    )

    def on_rung_done(self, rung, scorecard, resumed) -> None:
        m = scorecard.primary_metric
        v = scorecard.metrics[m]
        note = "  [dim](stored, resumed)[/]" if resumed else ""
        self.out.print(
            f"{rung:<13} holdout: {m} [bold]{v.value:.2f}[/] [{v.ci_low:.2f}, {v.ci_high:.2f}]  n={scorecard.n}{note}"
        )
        retrieval = scorecard.extras.get("retrieval")
        if retrieval:
            self.out.print(f"{'':<13} {retrieval_line(retrieval)}")

    def on_bar_met(self, rung, scorecard) -> None:
        self.out.print(
            f"[green]Bar met by {rung}[/]: stopping here (use --all to climb every rung)."
        )

    def on_bar_point_only(self, rung, verdict) -> None:
        self.out.print(f"{verdict['text']}: climbing on.", highlight=False, soft_wrap=True)

    def on_finish(self, result: ClimbResult) -> None:
        console.print()
        if result.scorecards:
            print_wide(scorecard_table(result.scorecards, result.task.spec.bar))
            console.print()
            self._failures(result)
        if result.outcome is not None:
            print_outcome(result.outcome)
        bar = result.task.spec.bar
        if bar is not None:
            at = f"at {100 * bar.confidence:.0f}% confidence"
            met = next((c for c in result.scorecards if c.rung == result.bar_met_by), None)
            if met is not None:
                v = bar_verdict(result.task, met)
                assert v is not None  # the rung that met the bar was scored on its metric
                console.print(f"Bar      {v['text']}.", highlight=False, soft_wrap=True)
            else:
                best = max(
                    result.scorecards, key=lambda c: c.metrics[bar.metric].value, default=None
                )
                closest = bar_verdict(result.task, best) if best else None  # ranked on its metric
                tail = f"; closest: {closest['text']}" if closest else ""
                console.print(
                    f"Bar      {bar.metric} ≥ {bar.threshold} not met {at} by any rung climbed{tail}.",
                    highlight=False,
                    soft_wrap=True,
                )
        self._phases(result)
        console.print(
            f"Stored   run {result.run_id} · {result.run_dir}/run.json · `ladder runs show {result.run_id}`"
        )

    def _phases(self, result: ClimbResult) -> None:
        total = sum(s for phases in result.phases.values() for s in phases.values())
        if not result.phases:
            return
        plan = getattr(self, "plan", None)
        planned = f", planned {fmt_seconds(plan.eta_s)}" if plan is not None else ""
        console.print(
            f"Time     {fmt_seconds(total)} in phases{planned} (wall seconds, stored with the run):"
        )
        for rung, phases in result.phases.items():
            console.print(f"  {rung:<13} {phase_line(phases)}")

    def _failures(self, result: ClimbResult) -> None:
        for card in result.scorecards:
            fa = card.failure_analysis
            if not fa or not fa.get("recurring"):
                continue
            rec = [r for r in fa["categories"] if r["recurring"]]
            cats = "; ".join(f"{r['category']} ×{r['total']}" for r in rec[:5]) + (
                f"; +{len(rec) - 5} more" if len(rec) > 5 else ""
            )
            console.print(
                f"[bold]{card.rung}[/] errors recurring in ≥2/3 of {fa['variants']} prompt variants (dev): {cats}"
            )


def retrieval_line(r: dict[str, Any]) -> str:
    """One line of a rag scorecard's retrieval figures: hit@k, MRR, citations, groundedness."""
    names = [
        (f"hit@{r.get('k')}", "hit_rate"),
        ("MRR", "mrr"),
        ("citations correct", "citation_correctness"),
        ("grounded", "groundedness"),
    ]
    shown = [f"{label} {r[key]['value']:.2f}" for label, key in names if key in r]
    return f"retrieval ({r.get('mode')}): " + " · ".join(shown)
