"""Gather a run's report: priced scorecards, paired comparisons, break-even curves, the hybrid,
the decision, latency samples and the worst errors. Everything `report.json` holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ladder.dataset import Dataset, Example, Prediction, load_dataset
from ladder.decide import Facts, decide, hybrid_pair
from ladder.economics import (
    DAYS_PER_MONTH,
    cost_curves,
    is_fine_tuned,
    option_of,
    per_month,
    price_card,
    volume_grid,
)
from ladder.errors import LadderError, StoreError
from ladder.evaluation.compare import compare_all, find
from ladder.evaluation.scorecard import Scorecard
from ladder.hybrid import confidence, recommend
from ladder.prices import PriceBook, load_price_book
from ladder.store.db import Store
from ladder.task import Task, TaskSpec, judged_metric, load_task

REPORT_VERSION = 1
WORST_ERRORS = 8


@dataclass
class RunView:
    """A stored run with what its report needs: the task as run, the hold-out, predictions."""

    run: dict[str, Any]
    spec: TaskSpec
    cards: list[Scorecard]
    task: Task | None = None
    holdout: list[Example] | None = None
    preds: dict[str, list[Prediction]] = field(default_factory=dict)
    split: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_view(store: Store, run_id: str, dataset: Dataset | None = None) -> RunView:
    """Read a run back; a task file that moved or changed only costs the per-item sections."""
    run = store.get_run(run_id)
    cards = [Scorecard.model_validate(c) for c in store.scorecards(run_id)]
    if not cards:
        raise StoreError(
            f"run {run_id} has no scorecards: no rung finished on the hold-out.",
            where=store.path,
            fix=f"finish it with `ladder climb {run['task_path']} --resume`, or pick another run from `ladder runs`.",
        )
    view = RunView(run, TaskSpec.model_validate(run["config"]["task"]), cards)
    opts = run["config"].get("options", {})
    try:
        view.task = load_task(run["task_path"])
        ds = dataset or load_dataset(view.task, opts.get("leakage"))
    except LadderError as exc:
        view.notes.append(f"per-item sections left out: the task no longer loads ({exc})")
        return view
    if ds.data_hash != run["data_hash"]:
        view.notes.append("per-item sections left out: the data file changed since this run")
        return view
    return _with_holdout(view, store, ds, opts.get("limit"))


def climb_view(
    store: Store, run_id: str, task: Task, dataset: Dataset, cards: list[Scorecard]
) -> RunView:
    """The view of a climb that just ended, from what it holds: its task, data and scorecards
    (the report prices these very objects). Only the run's metadata and its stored hold-out
    answers are read from the store; the task file is not reloaded."""
    run = store.get_run(run_id)
    view = RunView(run, task.spec, cards, task=task)
    return _with_holdout(view, store, dataset, run["config"].get("options", {}).get("limit"))


def _with_holdout(view: RunView, store: Store, ds: Dataset, limit: int | None) -> RunView:
    """The per-item part of a view: split sizes, data warnings, hold-out answers per rung."""
    view.split = ds.counts()
    view.notes.extend(w for w in ds.warnings if w not in view.notes)  # data-quality warnings
    view.holdout = ds.splits["holdout"][: limit or None]
    for card in view.cards:
        stored = store.predictions(view.run["id"], card.rung, card.variant, "holdout")
        if all(e.id in stored for e in view.holdout):
            view.preds[card.rung] = [stored[e.id] for e in view.holdout]
    return view


def price_book_for(view: RunView, files: Sequence[str | Path] = ()) -> PriceBook:
    """The price book: the task's current `prices:` when its file still loads, else as run."""
    prices = view.task.spec.prices if view.task else view.spec.prices
    return load_price_book(prices, view.task.dir if view.task else None, list(files))


def facts_for(view: RunView, book: PriceBook, calls_per_day: float | None) -> Facts:
    spec = view.task.spec if view.task else view.spec
    bar = view.spec.bar
    # the stored spec's bar, else the kind's primary metric as the run recorded it on its cards
    metric = judged_metric(view.spec, view.cards[0].primary_metric)
    if calls_per_day is None and spec.volume is not None:
        calls_per_day = spec.volume.calls_per_day
    return Facts(
        metric=metric,
        bar=bar.threshold if bar else None,
        calls_per_day=calls_per_day,
        knowledge=view.spec.knowledge,
        documents=bool(view.spec.documents),
        n_labels=len(view.spec.labels or []),
        split=_split(view),
        amortize_months=book.assumptions.amortize_months,
        bar_confidence=bar.confidence if bar else 0.95,
        scope=spec.scope,
        merged=_merged(view),
    )


def _merged(view: RunView) -> bool:
    """Whether a fine-tuned rung was asked to merge: task.yaml as run, or `ladder train --merge`."""
    from ladder.registry import rung_family

    overrides = view.run["config"].get("options", {}).get("options", {})
    rungs = {*view.spec.rungs, *overrides}
    return any(
        {**(view.spec.rungs.get(r) or {}), **(overrides.get(r) or {})}.get("merge")
        for r in rungs
        if rung_family(r) == "fine-tune"
    )


def _split(view: RunView) -> dict[str, int]:
    return view.split or {"holdout": view.cards[0].n}


def build(
    store: Store,
    run_id: str,
    *,
    dataset: Dataset | None = None,
    price_files: Sequence[str | Path] = (),
    calls_per_day: float | None = None,
    view: RunView | None = None,
) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready data (priced scorecards included).

    `view` is a climb's own (`climb_view`); without one the run is read back (`load_view`).
    """
    view = view or load_view(store, run_id, dataset)
    book = price_book_for(view, price_files)
    facts = facts_for(view, book, calls_per_day)
    hardware = view.run["provenance"].get("hardware", {})
    for card in view.cards:
        card.cost = price_card(card, book, hardware, facts.calls_per_day)
    comparisons = (
        compare_all(view.task, view.holdout, view.preds, facts.metric)
        if view.task is not None and view.holdout is not None and len(view.preds) > 1
        else []
    )
    hybrid = _hybrid(view, facts)
    decision = decide(view.cards, facts, comparisons, hybrid)
    return {
        "version": REPORT_VERSION,
        "generated_at": dt.datetime.now().isoformat(timespec="seconds"),
        "run": _run_meta(view),
        "task": _task_meta(view, facts),
        "prices": _prices_meta(book, view.cards),
        "scorecards": [c.model_dump(mode="json") for c in view.cards],
        "comparisons": comparisons,
        "headline": _headline(decision, comparisons, view.cards, facts),
        "cost_curves": _curves(view.cards, facts, decision),
        "decision": decision,
        "latency_ms": {r: [1000 * p.latency_s for p in ps] for r, ps in view.preds.items()},
        "worst_errors": _worst_errors(view, decision),
        "notes": view.notes,
    }


def _hybrid(view: RunView, f: Facts) -> dict[str, Any] | None:
    pair = hybrid_pair(view.cards, f)
    if pair is None or view.task is None or view.holdout is None:
        return None  # a task that no longer loads leaves no hold-out (load_view)
    if not all(r in view.preds for r in pair):
        return None
    cost = {c.rung: _cost(c)["per_call"] for c in view.cards}
    small, large = pair
    h = recommend(
        view.task,
        view.holdout,
        (small, view.preds[small], cost[small]),
        (large, view.preds[large], cost[large]),
        f.metric,
        f.bar,
        f.bar_confidence,
    )
    card = next(c for c in view.cards if c.rung == small)
    h["fixed"] = (
        option_of(small, _cost(card)).one_time / f.amortize_months + _cost(card)["monthly_fixed"]
    )
    return h


def _cost(card: Scorecard) -> dict[str, Any]:
    """A card's cost, which `build` fills in for every card before anything reads it."""
    assert card.cost is not None
    return card.cost


def _headline(decision: dict, comparisons: list, cards: list, f: Facts) -> str | None:
    """The one comparison a reader needs: the recommendation against its strongest rival."""
    rec = decision["recommendation"]
    if rec == "hybrid":
        rec = decision["hybrid"]["small"]
    rivals = [c for c in cards if c.rung != rec]
    if not rivals:
        return None
    rival = max(rivals, key=lambda c: c.metrics[f.metric].value)
    c = find(comparisons, rival.rung, rec)
    return c["sentence"] if c else None


def _curves(cards: list[Scorecard], f: Facts, decision: dict) -> dict[str, Any]:
    """Monthly cost vs calls per month for every option, spanning the break-evens and the volume."""
    marks = [r["break_even_per_month"] for r in decision["break_even"] if r["break_even_per_month"]]
    if f.calls_per_day:
        marks.append(per_month(f.calls_per_day))
    lo = min([*marks, 1e4]) / 30
    hi = max([*marks, 1e6]) * 30
    volumes = volume_grid(lo, hi)
    options = [option_of(c.rung, _cost(c)) for c in cards]
    return {
        "volumes_per_month": volumes,
        "monthly": cost_curves(options, volumes, f.amortize_months),
        "declared_per_month": per_month(f.calls_per_day) if f.calls_per_day else None,
        "days_per_month": DAYS_PER_MONTH,
        "fine_tuned": [c.rung for c in cards if is_fine_tuned(c)],
    }


def _worst_errors(view: RunView, decision: dict) -> dict[str, Any] | None:
    """The recommended rung's most confident mistakes, with their inputs."""
    rung = decision["recommendation"]
    if rung == "hybrid":
        rung = decision["hybrid"]["small"]
    if view.holdout is None or rung not in view.preds:
        return None
    pairs = [
        (ex, p)
        for ex, p in zip(view.holdout, view.preds[rung])
        if not p.valid or p.output != ex.output
    ]
    pairs.sort(key=lambda ep: -confidence(ep[1]))
    items = [
        {
            "id": ex.id,
            "input": ex.input[:600],
            "gold": ex.output,
            "predicted": p.output if p.valid else None,
            "raw": (p.raw or "")[:200],
            "error": p.error,
            "confidence": round(confidence(p), 3),
        }
        for ex, p in pairs[:WORST_ERRORS]
    ]
    return {"rung": rung, "wrong": len(pairs), "n": len(view.holdout), "items": items}


def _run_meta(view: RunView) -> dict[str, Any]:
    r, prov = view.run, view.run["provenance"]
    return {
        "id": r["id"],
        "task": r["task"],
        "status": r["status"],
        "created_at": r["created_at"],
        "finished_at": r["finished_at"],
        "run_dir": r["run_dir"],
        "limit": r["config"].get("options", {}).get("limit"),
        "split": _split(view),
        "hardware": prov.get("hardware", {}),
        "ladder_version": prov.get("ladder_version"),
        "git": prov.get("ladder_git"),
    }


def _task_meta(view: RunView, f: Facts) -> dict[str, Any]:
    s = view.spec
    return {
        "name": s.name,
        "kind": s.kind,
        "description": s.description,
        "metric": f.metric,
        "bar": f.bar,
        "calls_per_day": f.calls_per_day,
        "knowledge": f.knowledge,
        "labels": list(s.labels or []),
    }


def _prices_meta(book: PriceBook, cards: list[Scorecard]) -> dict[str, Any]:
    used_models = {_cost(c)["price"] for c in cards if _cost(c).get("price")}
    used_hw = {_cost(c)["hardware"]["kind"] for c in cards if _cost(c).get("hardware")}
    return {
        "as_of": book.as_of.isoformat(),
        "age_days": book.age_days(),
        "currency": book.currency,
        "layers": book.layers,
        "assumptions": book.assumptions.model_dump(),
        "models": {k: v.model_dump() for k, v in book.models.items() if k in used_models},
        "hardware": {k: v.model_dump() for k, v in book.hardware.items() if k in used_hw},
    }
