"""Serving a run: each finished rung rebuilt from the store, the winner, and the hybrid route.

`Store.rungs(run_id)` records each rung's solution as `describe()` gave it; prompt solutions
(with an adapter, for fine-tuned rungs) are rebuilt from that with the run's own data and
split, so a served answer is the answer the climb measured. A rag solution retrieves from the
task's index at request time (brought up to date with its documents when serving starts) and
cites passages; a long-context one puts the current documents in its prefix. With a large model, the route
answers with the best local rung and asks the large model (the best prompting rung's prompt on
it) below a confidence threshold calibrated on the run's hold-out.
"""

from __future__ import annotations

import copy
import json
from functools import partial
from pathlib import Path
from typing import Any

from ladder.errors import LadderError
from ladder.fsutil import atomic_write_json
from ladder.progress import Progress
from ladder.rungs.context import Context
from ladder.serve.catalog import (
    Catalog,
    ServeOptions,
    add_adapters,
    add_large,
    add_vllm,
    in_process,
    is_local,
    price_local,
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
    assert opts.run is not None  # the catalog serves a run only when --run names one
    store, run = open_run(opts.run, opts.runs_dir)
    ctx = cat.ctx = _context(store, run, opts, progress)
    task = ctx.task
    cat.task, cat.run_id = task.name, run["id"]
    by_path: dict[Path, str] = {}
    if opts.engine == "vllm":  # the base model and the adapters on vLLM; no model loaded here
        wanted = wanted_adapters(opts, store, run, task.name)
        log = ctx.run_dir / "serve" / "vllm.log"
        engines, by_path = add_vllm(
            cat, opts, ctx.model, wanted, task=task, log=log, progress=progress
        )
        for name, engine in engines.items():
            ctx.set_engine(name, engine)
    elif is_local(base := ctx.engine(ctx.model)):
        price_local(cat, opts, task, base)
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
    """A solution from its recorded description: a prompt (with or without an adapter), or a
    retrieval rung over the task's documents."""
    from ladder.rungs.longcontext import LongContextSolution
    from ladder.rungs.prompting import PromptSolution
    from ladder.rungs.rag import RagSolution

    if desc.get("rung") == RagSolution.rung:
        return RagSolution.from_description(ctx, desc)
    if desc.get("rung") == LongContextSolution.rung:
        return LongContextSolution.from_description(ctx, desc)
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
    cat: Catalog, name: str, sol, route: str, *, likelihood: bool, large: bool = False
) -> TaskModel:
    """A task solution as a target; its answers cost machine hours when its engine is priced
    so, and the large model's token prices (given or from the book) when it is the large side,
    wherever that runs: as economics prices a model with a listed price by its tokens."""
    local, here = is_local(sol.engine) and not large, in_process(sol.engine)
    return TaskModel(
        name,
        sol,
        route,
        worker=cat.worker if here else None,
        pool=None if here else cat.pool,
        gate=cat.remote_gate,
        confidence=partial(confidences, likelihood=likelihood),
        price_hour=cat.price_hour if local else 0.0,
        prices=(0.0, 0.0) if local else cat.large_price,
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
    """The task's name as a hybrid route: the best local rung, else the large model."""
    large_name, engine, health = add_large(cat, opts, ctx.task)
    ctx.set_engine(large_name, engine)
    local = [r for r in ranked if is_local(solved[r].solution.engine)]
    small_rung = opts.small or (local[0] if local else None)
    if small_rung not in solved:
        raise LadderError(
            f"no local rung {small_rung!r} to route from.",
            fix=f"use --small with one of: {', '.join(solved)}.",
        )
    large = _large_model(cat, ctx, opts, solved, ranked, large_name)
    cat.add(large)
    sol = solved[small_rung].solution
    # the report's confidence (no likelihood): the route delivers what the report promised
    small = _task_model(cat, ctx.task.name, sol, small_rung, likelihood=False)
    cal = cat.calibration = _calibrate(ctx, opts, small, large)
    cat.add(Route(ctx.task.name, small, large, cal.threshold, health))
    cat.lines.insert(0, _describe(ctx.task.name, cal))


def _large_model(cat, ctx, opts, solved, ranked, large_name: str) -> TaskModel:
    """The best prompting rung's prompt (no adapter) on the large model: `TASK/RUNG@LARGE`."""
    from ladder.rungs.prompting import PromptSolution

    prompts = [r for r in ranked if isinstance(solved[r].solution, PromptSolution)]
    prompting = [r for r in prompts if getattr(solved[r].solution.engine, "adapter", None) is None]
    prompting = prompting or prompts
    if not prompting:
        raise LadderError(
            "the hybrid route asks the large model with the run's best prompt, and no prompting "
            "rung finished.",
            fix="climb the zero-shot or few-shot rung too, or serve without --large.",
        )
    desc = solved[prompting[0]].solution.describe()
    rung = f"{desc['rung']}@{large_name}"
    sol = PromptSolution.from_description(ctx, desc, model=large_name, rung=rung)
    return _task_model(cat, f"{ctx.task.name}/{rung}", sol, rung, likelihood=False, large=True)


def _describe(name: str, cal: Calibration) -> str:
    a = cal.achieved
    if a["quality"] is not None:
        q = f"quality {a['quality']} with {a['large_share']:.0%} large calls (small only {a['small_only']}, large only {a['large_only']})"
    else:
        q = f"{a['large_share']:.0%} large calls"
    note = f" · note: {cal.note}" if cal.note else ""
    return f"{name}: hybrid {cal.small}, else {cal.large} below {cal.confidence} {cal.threshold:.3g} · hold-out n={cal.n}: {q}{note}"


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
        cal = run(quality=bar.threshold if by_bar and bar is not None else quality)
    except LadderError as exc:
        if not by_bar:
            raise
        cal = run(quality=None, large_error=str(exc))  # the large model is down: a share target
    atomic_write_json(ctx.run_dir / "serve" / f"calibration-{ctx.task.name}.json", cal.to_json())
    return cal
