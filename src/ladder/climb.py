"""The climb: every rung, cheapest first, measured on the same hold-out, stored as it goes.

`climb()` is what `ladder climb` and `ladder eval` run. It stops at the first rung whose
hold-out score meets the task's bar unless `all_rungs` is set. A killed climb is resumed with
`resume=True`: rungs already scored are read back, and within a rung only the predictions the
store lacks are computed.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ladder import guard, provenance
from ladder.dataset import Dataset, load_dataset
from ladder.engines.numerics import check_dtype
from ladder.errors import LadderError, StoreError
from ladder.evaluation.bar import for_task as bar_verdict
from ladder.evaluation.scorecard import Scorecard
from ladder.fsutil import atomic_write_json
from ladder.progress import NullProgress, Progress
from ladder.registry import registries
from ladder.rungs.base import RungSkipped
from ladder.rungs.context import Context
from ladder.store.db import Store
from ladder.task import Task, load_task
from ladder.timing import CLIMB, PhaseClock, phase_table


@dataclass
class ClimbOptions:
    rungs: list[str] | None = None  # default: every registered rung, in ladder order
    all_rungs: bool = False  # keep climbing after the bar is met
    limit: int | None = None  # evaluate on the first N dev/holdout examples
    resume: bool = False
    run_id: str | None = None  # resume this run (default: the task's latest unfinished one)
    model: str | None = None  # override the task's model for the prompting rungs
    leakage: str | None = None  # refuse | report | drop (overrides task.yaml)
    runs_dir: str | None = None
    seed: int | None = None
    variant: str | None = None  # force one prompt variant
    options: dict[str, Any] = field(default_factory=dict)  # rung-specific
    prices: list[str] = field(default_factory=list)  # price files over the task's (economics)
    add_data: list[str] | None = None  # extra train examples (JSONL from `ladder curate`)
    schedule: str = "race"  # race (default) | exhaustive: every variant on every dev item
    budget: float | None = None  # seconds the climb should fit in (the planner cuts to fit)
    dtype: str | None = None  # auto (None) | float32 | bfloat16: number format of every phase


@dataclass
class ClimbResult:
    run_id: str
    run_dir: Path
    task: Task
    dataset: Dataset
    scorecards: list[Scorecard]
    skipped: dict[str, str]
    bar_met_by: str | None
    status: str
    outcome: Any = None  # ladder.report.Outcome: priced scorecards, decision, report files
    plan: Any = None  # ladder.planner.Plan: the estimate the climb started from, and its cuts
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # rung -> phase -> s


Events = Callable[..., None]


def _no_events(event: str, **data: Any) -> None:
    pass


def _check_schedule(schedule: str) -> None:
    from ladder.rungs.racing import SCHEDULES

    if schedule not in SCHEDULES:
        raise LadderError(
            f"unknown schedule {schedule!r}.",
            fix=f"use one of: {', '.join(SCHEDULES)} (exhaustive: every variant on all of dev).",
        )


def rung_order() -> list[str]:
    return registries().rungs.names()


def _pick_rungs(requested: list[str] | None) -> list[str]:
    order = rung_order()
    if not requested:
        return order
    unknown = [r for r in requested if r not in order]
    if unknown:
        raise LadderError(
            f"unknown rung(s): {', '.join(unknown)}.", fix=f"choose from: {', '.join(order)}."
        )
    return [r for r in order if r in requested]


def _bar_met(task: Task, card: Scorecard) -> bool:
    """Met with the task's stated confidence (`bar.confidence`), not by the point estimate alone."""
    v = bar_verdict(task, card)
    return bool(v and v["met"])


def _new_run_id(store: Store, task: str) -> str:
    base = f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_id, n = base, 1
    existing = {r["id"] for r in store.list_runs(task, limit=1000)}
    while run_id in existing:
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def _load_data(store: Store, task: Task, opts: ClimbOptions) -> Dataset:
    """The task's dataset, plus extra train examples (`--add-data`, or the resumed run's)."""
    from ladder.curate import extra_digest, load_extra_examples

    if (opts.resume or opts.run_id) and not opts.add_data:
        run = store.get_run(opts.run_id) if opts.run_id else store.latest_unfinished(task.name)
        opts.add_data = ((run or {}).get("config") or {}).get("options", {}).get("add_data")
    if not opts.add_data:
        return load_dataset(task, opts.leakage)
    opts.add_data = [str(Path(p).expanduser().resolve()) for p in opts.add_data]
    extra = [e for p in opts.add_data for e in load_extra_examples(task, p)]
    ds = load_dataset(task, opts.leakage, extra=extra)
    ds.data_hash = hashlib.sha256((ds.data_hash + extra_digest(opts.add_data)).encode()).hexdigest()
    ds.warnings.append(
        f"{len(extra)} extra train example(s) from {', '.join(Path(p).name for p in opts.add_data)}"
    )
    return ds


def _open_run(
    store: Store, task: Task, ds: Dataset, opts: ClimbOptions
) -> tuple[str, ClimbOptions, bool, guard.RunLock]:
    """Create a run, or find the one to resume and return the options it was started with."""
    if opts.resume or opts.run_id:
        run = store.get_run(opts.run_id) if opts.run_id else store.latest_unfinished(task.name)
        if run is None:
            raise StoreError(
                f"no unfinished run of task {task.name!r} to resume.",
                where=store.path,
                fix="start a new climb without --resume.",
            )
        if run["task"] != task.name:
            raise StoreError(f"run {run['id']} belongs to task {run['task']!r}, not {task.name!r}.")
        if run["config_hash"] != task.config_hash() or run["data_hash"] != ds.data_hash:
            what = "task.yaml" if run["config_hash"] != task.config_hash() else "the data file"
            raise StoreError(
                f"{what} changed since run {run['id']} started, so its stored predictions no longer apply.",
                fix="start a new climb (without --resume), or restore the previous version.",
            )
        stored = ClimbOptions(
            **{
                k: v
                for k, v in run["config"]["options"].items()
                if k in ClimbOptions.__dataclass_fields__
            }
        )
        guard.refuse_mismatch(task, run["id"], opts, stored)
        stored.resume, stored.run_id = True, run["id"]
        stored.all_rungs = stored.all_rungs or opts.all_rungs  # stopping, not predictions
        stored.prices = opts.prices or stored.prices
        lock = guard.lock_run(store.runs_dir / task.name / run["id"], run["id"])
        store.set_run_status(run["id"], "running")
        return run["id"], stored, True, lock
    run_id = _create_run(store, task, ds, opts)
    return run_id, opts, False, guard.lock_run(store.runs_dir / task.name / run_id, run_id)


def _create_run(store: Store, task: Task, ds: Dataset, opts: ClimbOptions) -> str:
    """A new run under a fresh id; a climb started the same second elsewhere takes the next one."""
    config = {
        "task": task.spec.model_dump(mode="json"),
        "task_file": str(task.file),
        "options": asdict(opts),
    }
    prov = provenance.collect(opts.seed or 0, task.dir)
    for _ in range(100):
        run_id = _new_run_id(store, task.name)
        run_dir = store.runs_dir / task.name / run_id
        try:
            store.create_run(
                run_id, task.name, str(task.file), str(run_dir), task.config_hash(),
                ds.data_hash, config, prov,
            )  # fmt: skip
            return run_id
        except sqlite3.IntegrityError:  # taken between our read and our insert
            continue
    raise StoreError("could not find a free run id after 100 tries.", where=store.path)


def _preflight(task: Task, ds: Dataset, opts: ClimbOptions) -> None:
    """Everything detectable before any work, checked before a run exists to be left behind."""
    from ladder.engines.resolve import resolve_model

    guard.check_prices(opts.prices)
    if not (opts.resume or opts.run_id):
        resolve_model(opts.model or task.spec.model, task)
    ds.warnings.extend(guard.check_evidence(task, ds, opts.limit))


def climb(
    task_path: str | Path,
    opts: ClimbOptions | None = None,
    *,
    progress: Progress | None = None,
    events: Events | None = None,
    ctx_hook: Callable[[Context], None] | None = None,
) -> ClimbResult:
    opts = opts or ClimbOptions()
    _check_schedule(opts.schedule)
    check_dtype(opts.dtype)
    progress = progress or NullProgress()
    emit = events or _no_events
    task = load_task(task_path)
    store = Store(opts.runs_dir)
    ds = _load_data(store, task, opts)
    _pick_rungs(opts.rungs)
    _preflight(task, ds, opts)
    run_id, opts, resumed, lock = _open_run(store, task, ds, opts)
    try:
        return _climb_run(task, store, ds, opts, run_id, resumed, progress, emit, ctx_hook)
    except LadderError:
        # bad input found only once rungs were built (a --variant no rung has, a model that
        # fails to load): a new run that stored no answer is not left behind as a failed run
        if not resumed and not store.count_predictions(run_id) and not store.scorecards(run_id):
            store.discard_run(run_id)
            shutil.rmtree(store.runs_dir / task.name / run_id, ignore_errors=True)
        raise
    finally:
        lock.release()


def _climb_run(task, store, ds, opts, run_id, resumed, progress, emit, ctx_hook) -> ClimbResult:
    rung_names = _pick_rungs(opts.rungs)
    run_dir = store.runs_dir / task.name / run_id
    seed = opts.seed if opts.seed is not None else task.spec.eval.seed
    ctx = Context(
        task,
        ds,
        store,
        run_id,
        run_dir,
        opts.model or task.spec.model,
        progress,
        opts.limit,
        seed,
        opts.variant,
        options=opts.options,
        schedule=opts.schedule,
        clock=PhaseClock(store, run_id),
        dtype=opts.dtype,
    )
    if ctx_hook:
        ctx_hook(ctx)
    emit(
        "start",
        task=task,
        dataset=ds,
        run_id=run_id,
        run_dir=run_dir,
        model=ctx.model,
        resumed=resumed,
        rungs=rung_names,
        limit=opts.limit,
    )
    done = {r["rung"]: r for r in store.rungs(run_id)}
    todo = [r for r in rung_names if done.get(r, {}).get("status") != "done"]
    plan = _plan(ctx, [r for r in todo if not registries().rungs.get(r).skip_reason(ctx)], opts)
    if plan is not None:
        emit("plan", plan=plan)
    cards: list[Scorecard] = []
    skipped: dict[str, str] = {}
    bar_met_by = None
    status = "failed"
    stored_cards = {c["rung"]: c for c in store.scorecards(run_id)}
    try:
        for name in rung_names:
            rung = registries().rungs.get(name)
            if done.get(name, {}).get("status") == "done" and name in stored_cards:
                card = Scorecard.model_validate(stored_cards[name])
                emit("rung_done", rung=name, scorecard=card, resumed=True)
            else:
                reason = rung.skip_reason(ctx)
                if reason:
                    skipped[name] = reason
                    store.finish_rung(run_id, name, "skipped", reason=reason)
                    emit("rung_skip", rung=name, reason=reason)
                    continue
                if plan is not None:
                    emit("eta", rung=name, left_s=_left(plan, rung_names, name))
                try:
                    with ctx.clock.rung_scope(name):
                        card = _run_rung(ctx, rung, emit)
                except RungSkipped as exc:  # declined once it had measured (stored as skipped)
                    skipped[name] = exc.reason
                    emit("rung_skip", rung=name, reason=exc.reason)
                    continue
            cards.append(card)
            if _bar_met(task, card):
                bar_met_by = bar_met_by or name
                if not opts.all_rungs:
                    emit("bar_met", rung=name, scorecard=card)
                    break
            elif (v := bar_verdict(task, card)) and v["point_reached"]:
                emit("bar_point_only", rung=name, verdict=v)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        summary = _summary(task, cards, skipped, bar_met_by)
        store.set_run_status(run_id, status, summary)
        if status != "finished" or not cards:  # else once the report has priced the cards
            _write_run_json(store, run_id, run_dir, ds, cards, summary, status)
        ctx.close()
    result = ClimbResult(run_id, run_dir, task, ds, cards, skipped, bar_met_by, status, plan=plan)
    if status == "finished" and cards:
        from ladder.report import finalize

        try:
            with ctx.phase("report"):
                result.outcome = finalize(store, run_id, task, ds, cards, opts.prices)
        finally:  # a price that is missing still leaves run.json, unpriced
            _write_run_json(store, run_id, run_dir, ds, cards, summary, status, result.outcome)
    result.phases = phase_table(store.phase_times(run_id))
    emit("finish", result=result)
    return result


def _plan(ctx: Context, rung_names: list[str], opts: ClimbOptions):
    """Measure this machine, estimate every rung, cut to the budget; record it with the run.

    The measurement answers zero-shot's first dev items (kept for its race), so a climb without
    zero-shot plans only when it has a budget to fit.
    """
    from ladder.planner import EVAL, LORA_RUNGS, PLAN_ONLY, make_plan, measure_speed

    if opts.budget is None and ("zero-shot" not in rung_names or opts.variant):
        return None  # nothing to fit (one forced variant is no selection to plan)
    tuned = next((r for r in rung_names if r in LORA_RUNGS), None)
    ctx.engine()  # loaded (and its bf16 choice checked) in phases of their own, not the probe's
    with ctx.phase("planning"):
        plan = make_plan(ctx, rung_names, measure_speed(ctx, tuned), opts.budget)
    for rung, settings in plan.overrides.items():
        if rung == EVAL:
            ctx.consistency_half_width = settings["consistency_half_width"]
            continue
        if "dev_items" in settings:
            ctx.dev_limit[rung] = settings["dev_items"]
        rung_settings = {k: v for k, v in settings.items() if k not in PLAN_ONLY}
        if rung_settings:
            ctx.options[rung] = {**ctx.options.get(rung, {}), **rung_settings}
    path = ctx.run_dir / "plan.json"
    atomic_write_json(path, plan.describe())
    ctx.store.add_artifact(ctx.run_id, CLIMB, "plan", str(path), None, plan.describe())
    return plan


def _left(plan, rung_names: list[str], current: str) -> float:
    """Estimated seconds from the start of `current` to the end of the climb."""
    rest = rung_names[rung_names.index(current) :]
    return sum(sum(plan.rungs.get(r, {}).values()) for r in rest)


def _run_rung(ctx: Context, rung, emit: Events) -> Scorecard:
    from ladder.evaluation.evaluate import evaluate

    ctx.store.start_rung(ctx.run_id, rung.name)
    emit("rung_start", rung=rung.name)
    try:
        prepared = rung.prepare(ctx)
        emit("rung_prepared", rung=rung.name, prepared=prepared)
        card = evaluate(ctx, prepared)
    except RungSkipped as exc:
        ctx.store.finish_rung(ctx.run_id, rung.name, "skipped", reason=exc.reason)
        raise
    except LadderError as exc:
        ctx.store.finish_rung(ctx.run_id, rung.name, "failed", reason=str(exc))
        raise
    except KeyboardInterrupt:
        ctx.store.finish_rung(ctx.run_id, rung.name, "interrupted", reason="interrupted")
        raise
    ctx.store.save_scorecard(ctx.run_id, rung.name, "holdout", card.model_dump(mode="json"))
    ctx.store.finish_rung(
        ctx.run_id, rung.name, "done", solution=card.solution, selection=card.selection
    )
    emit("rung_done", rung=rung.name, scorecard=card, resumed=False)
    return card


def _summary(
    task: Task, cards: list[Scorecard], skipped: dict[str, str], bar_met_by: str | None
) -> dict[str, Any]:
    bar = task.spec.bar
    metric = task.metric
    best = max(cards, key=lambda c: c.metrics[metric].value, default=None)
    return {
        "bar": bar.model_dump() if bar else None,
        "bar_met_by": bar_met_by,
        "best_rung": best.rung if best else None,
        "best_value": best.metrics[metric].value if best and metric else None,
        "metric": metric,
        "rungs": [c.rung for c in cards],
        "skipped": skipped,
    }


def _write_run_json(
    store: Store,
    run_id: str,
    run_dir: Path,
    ds: Dataset,
    cards: list[Scorecard],
    summary: dict,
    status: str,
    outcome: Any = None,
) -> None:
    run = store.get_run(run_id)
    report = {}
    if outcome is not None:  # the scorecards are priced; the decision in one line
        d = outcome.decision
        report = {
            "decision": {"recommendation": d["recommendation"], "kind": d["kind"]},
            "report": {"html": str(outcome.html_path), "json": str(outcome.json_path)},
        }
    atomic_write_json(
        run_dir / "run.json",
        {
            "run_id": run_id,
            "task": run["task"],
            "status": status,
            "created_at": run["created_at"],
            "finished_at": run["finished_at"],
            "split": ds.counts(),
            "leakage": {"pairs": len(ds.leaks), "dropped": len(ds.dropped)},
            "duplicates": {"count": len(ds.skipped), "rows": ds.skipped},
            "warnings": ds.warnings,
            "summary": summary,
            "scorecards": [c.model_dump(mode="json") for c in cards],
            "provenance": run["provenance"],
            "options": run["config"]["options"],
            **report,
        },
    )
