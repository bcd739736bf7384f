"""Serving a run: each finished rung rebuilt from the store, the winner, and the hybrid route.

`Store.rungs(run_id)` records each rung's solution as `describe()` gave it; prompt solutions
(with an adapter, for fine-tuned rungs) are rebuilt from that with the run's own data and
split, so a served answer is the answer the climb measured. With a large model, the route
answers with the best local rung and asks the large model (the best prompting rung's prompt on
it) below a confidence threshold calibrated on the run's hold-out.
"""

from __future__ import annotations

import copy
import json
from functools import partial
from pathlib import Path
from typing import Any

from ladder.context import Context
from ladder.errors import LadderError
from ladder.fsutil import atomic_write_json
from ladder.progress import Progress
from ladder.serve.catalog import (
    Catalog,
    ServeOptions,
    add_adapters,
    add_large,
    is_local,
    wanted_adapters,
)
from ladder.serve.router import Calibration, Route, calibrate, confidences
from ladder.serve.targets import TaskModel
from ladder.store.db import Store


def open_run(ref: str, runs_dir: str | None) -> tuple[Store, dict[str, Any]]:
    """A run by id, or by its folder (`runs/TASK/RUN_ID`, which holds run.json)."""
    folder = Path(ref).expanduser()
    if (folder / "run.json").exists():
        run_id = json.loads((folder / "run.json").read_text())["run_id"]
        store = Store(folder.resolve().parent.parent)
        return store, store.get_run(run_id)
    store = Store(runs_dir)
    return store, store.get_run(ref)


def _context(store: Store, run: dict, opts: ServeOptions, progress: Progress) -> Context:
    from ladder.curate import load_extra_examples
    from ladder.dataset import load_dataset
    from ladder.task import load_task

    task = load_task(run["task_path"])
    o = run["config"].get("options", {})
    extra = [e for p in o.get("add_data") or [] for e in load_extra_examples(task, p)]
    ds = load_dataset(task, o.get("leakage"), extra=extra or None)
    seed = o.get("seed") if o.get("seed") is not None else task.spec.eval.seed
    ctx = Context(
        task,
        ds,
        store,
        run["id"],
        Path(run["run_dir"]),
        o.get("model") or task.spec.model,
        progress,
        seed=seed,
    )
    for name, eng in opts.engines.items():
        ctx.set_engine(name, eng)
    return ctx


def from_run(cat: Catalog, opts: ServeOptions, progress: Progress) -> None:
    store, run = open_run(opts.run, opts.runs_dir)
    ctx = cat.ctx = _context(store, run, opts, progress)
    task = ctx.task
    cat.task, cat.run_id = task.name, run["id"]
    base = ctx.engine(ctx.model)
    by_path = {}
    if is_local(base):
        by_path = add_adapters(cat, base, ctx.model, wanted_adapters(opts, store, run, task.name))
        if by_path:
            ctx.set_engine(ctx.model, cat.targets[ctx.model].engine)
            for name in by_path.values():
                ctx.set_engine(name, cat.targets[name].engine)
    solved = _solutions(cat, ctx, store, by_path)
    if not solved:
        raise LadderError(
            f"run {run['id']} has no finished rung to serve.",
            fix="serve a run whose climb scored at least one rung (`ladder runs`).",
        )
    ranked = _ranked(store, run["id"], solved)
    winner = (run.get("summary") or {}).get("bar_met_by") or ranked[0]
    if opts.large:
        _route(cat, ctx, opts, solved, ranked)
    else:
        cat.targets[task.name] = _alias(solved[winner], task.name)
        cat.lines.insert(0, f"{task.name}: {winner} (the run's winner)")


def _alias(target: TaskModel, name: str) -> TaskModel:
    """The same served solution under another name (the task's own, for its winner)."""
    alias = copy.copy(target)
    alias.name = name
    return alias


def _solutions(
    cat: Catalog, ctx: Context, store: Store, by_path: dict[Path, str]
) -> dict[str, TaskModel]:
    """Every finished rung, rebuilt as a served task model `TASK/RUNG`."""
    solved: dict[str, TaskModel] = {}
    arts = {a["rung"]: a["path"] for a in store.artifacts(ctx.run_id) if a["kind"] == "adapter"}
    for row in store.rungs(ctx.run_id):
        desc = row.get("solution")
        if row["status"] != "done" or not desc:
            continue
        if not desc.get("adapter") and row["rung"] in arts:  # the rung's adapter, as stored
            desc = {**desc, "adapter": arts[row["rung"]]}
        try:
            sol = rebuild(ctx, desc, by_path)
        except LadderError as exc:
            cat.lines.append(f"not served: {ctx.task.name}/{row['rung']}: {exc}")
            continue
        solved[row["rung"]] = _task_model(
            cat, f"{ctx.task.name}/{row['rung']}", sol, row["rung"], likelihood=False
        )
        cat.add(solved[row["rung"]])
    return solved


def rebuild(ctx: Context, desc: dict[str, Any], by_path: dict[Path, str]):
    """A solution from its recorded description (prompt solutions, with or without an adapter)."""
    from ladder.rungs.prompting import PromptSolution

    if "template" not in desc or "variant" not in desc:
        raise LadderError(
            f"the {desc.get('rung')} rung recorded no prompt solution Ladder can rebuild."
        )
    adapter = desc.get("adapter")
    model = None
    if adapter:
        path = Path(adapter if isinstance(adapter, str) else adapter.get("path", "")).resolve()
        if path not in by_path:
            raise LadderError(
                f"its adapter {path} is not loaded.", fix="check the folder still exists."
            )
        model = by_path[path]
    return PromptSolution.from_description(ctx, desc, model=model)


def _task_model(
    cat: Catalog, name: str, sol, route: str, *, likelihood: bool, prices=(0.0, 0.0), price_hour=0.0
) -> TaskModel:
    local = is_local(sol.engine)
    return TaskModel(
        name,
        sol,
        route,
        worker=cat.worker if local else None,
        pool=None if local else cat.pool,
        gate=cat.remote_gate,
        confidence=partial(confidences, likelihood=likelihood),
        price_hour=price_hour if local else 0.0,
        prices=(0.0, 0.0) if local else prices,
        timeout=cat.limits.request_timeout_s,
    )


def _ranked(store: Store, run_id: str, solved: dict[str, TaskModel]) -> list[str]:
    cards = {c["rung"]: c for c in store.scorecards(run_id)}

    def value(rung: str) -> float:
        c = cards.get(rung)
        return c["metrics"][c["primary_metric"]]["value"] if c else -1.0

    return sorted(solved, key=value, reverse=True)


def _route(
    cat: Catalog, ctx: Context, opts: ServeOptions, solved: dict[str, TaskModel], ranked: list[str]
) -> None:
    from ladder.rungs.prompting import PromptSolution

    large_name, engine, health = add_large(cat, opts, ctx.task)
    ctx.set_engine(large_name, engine)
    local = [r for r in ranked if is_local(solved[r].solution.engine)]
    small_rung = opts.small or (local[0] if local else None)
    if small_rung not in solved:
        raise LadderError(
            f"no local rung {small_rung!r} to route from.",
            fix=f"use --small with one of: {', '.join(solved)}.",
        )
    prompting = [
        r
        for r in ranked
        if "demos" in solved[r].solution.describe()
        and not solved[r].solution.describe().get("adapter")
    ]
    desc = solved[prompting[0] if prompting else small_rung].solution.describe()
    route_large = f"{desc['rung']}@{large_name}"
    large_sol = PromptSolution.from_description(
        ctx, {**desc, "adapter": None}, model=large_name, rung=route_large
    )
    large = _task_model(
        cat,
        f"{ctx.task.name}/{route_large}",
        large_sol,
        route_large,
        likelihood=False,
        prices=opts.large_price,
    )
    cat.add(large)
    small = _task_model(
        cat,
        ctx.task.name,
        solved[small_rung].solution,
        small_rung,
        likelihood=True,
        price_hour=opts.price_hour,
    )
    cal = _calibrate(ctx, opts, small, large)
    cat.calibration = cal
    route = Route(ctx.task.name, small, large, cal.threshold, health)
    cat.add(route)
    a = cal.achieved
    q = (
        f"quality {a['quality']} with {a['large_share']:.0%} large calls (small only {a['small_only']}, large only {a['large_only']})"
        if a["quality"] is not None
        else f"{a['large_share']:.0%} large calls"
    )
    cat.lines.insert(
        0,
        f"{ctx.task.name}: hybrid {small_rung}, else {route_large} below {cal.confidence} {cal.threshold:.3g} · hold-out n={cal.n}: {q}"
        + (f" · note: {cal.note}" if cal.note else ""),
    )


def _calibrate(ctx: Context, opts: ServeOptions, small: TaskModel, large: TaskModel) -> Calibration:
    """Calibrate to the target given; by default to the task's bar, or 20% large calls without one."""
    quality, bar = opts.target_quality, ctx.task.spec.bar
    by_bar = quality is None and opts.target_share is None and opts.threshold is None and bar
    run = partial(
        calibrate,
        ctx,
        ctx.task.name,
        small,
        large,
        share=opts.target_share,
        threshold=opts.threshold,
    )
    try:
        cal = run(quality=bar.threshold if by_bar else quality)
    except LadderError as exc:
        if not by_bar:
            raise
        cal = run(quality=None, large_error=str(exc))  # the large model is down: a share target
    atomic_write_json(ctx.run_dir / "serve" / f"calibration-{ctx.task.name}.json", cal.to_json())
    return cal
