"""The planner: estimates per rung and phase, cuts to a budget in order, exhaustive untouched."""

from __future__ import annotations

import pytest

from conftest import write_classify_task
from ladder.climb import ClimbOptions, climb
from ladder.dataset import load_dataset
from ladder.errors import LadderError
from ladder.planner import Speed, make_plan, parse_budget
from ladder.rungs.context import Context
from ladder.store.db import Store
from ladder.task import load_task

LABELS = ("work", "personal", "spam")
ROWS = [(f"message number {i} about topic {i % 7}", LABELS[i % 3]) for i in range(400)]
SLOW = Speed(item_s=0.5, prompt_tokens=200, tokens_per_s=400, items=4)
RUNGS = ["zero-shot", "few-shot", "lora"]


@pytest.fixture
def ctx(tmp_path):
    task = load_task(write_classify_task(tmp_path / "big", rows=ROWS, labels=LABELS))
    return Context(task, load_dataset(task), Store(tmp_path / "runs"), "r", tmp_path, "fake")


def test_budgets_parse_and_bad_ones_are_refused():
    assert parse_budget("10m") == 600 and parse_budget("90s") == 90 and parse_budget("1.5h") == 5400
    assert parse_budget("45") == 45
    for bad in ("ten minutes", "0m", "-5s", ""):
        with pytest.raises(LadderError, match="not a duration"):
            parse_budget(bad)


def test_without_a_budget_nothing_is_cut(ctx):
    plan = make_plan(ctx, RUNGS, SLOW, None)
    assert plan.cuts == [] and plan.overrides == {}
    assert set(plan.rungs) == set(RUNGS)
    assert {"training", "data curve", "hold-out"} <= set(plan.rungs["lora"])
    assert plan.eta_s == pytest.approx(sum(sum(p.values()) for p in plan.rungs.values()))


def test_the_plan_fits_its_budget_cutting_the_curve_first_then_epochs(ctx):
    full = make_plan(ctx, RUNGS, SLOW, None).eta_s
    no_curve = full - make_plan(ctx, RUNGS, SLOW, None).rungs["lora"]["data curve"]
    mild = make_plan(ctx, RUNGS, SLOW, no_curve + 1)
    assert mild.eta_s <= no_curve + 1 < full
    assert mild.overrides == {"lora": {"data_curve": None}}
    assert "hold-out n is never cut" in mild.widened[0]
    tight = make_plan(ctx, RUNGS, SLOW, no_curve * 0.75)
    assert tight.eta_s <= no_curve * 0.75
    assert tight.overrides["lora"]["data_curve"] is None
    assert tight.overrides["lora"]["epochs"] in (2, 3)
    assert [c.split(" ")[0] for c in tight.cuts][:2] == ["lora.data_curve", "lora.epochs"]
    # hold-out estimates are the same in every plan: its size is never cut
    assert (
        tight.rungs["lora"]["hold-out"]
        == make_plan(ctx, RUNGS, SLOW, None).rungs["lora"]["hold-out"]
    )


def test_racing_is_planned_cheaper_and_exhaustive_is_never_cut(ctx):
    race = make_plan(ctx, RUNGS, SLOW, None)
    ctx.schedule = "exhaustive"
    full = make_plan(ctx, RUNGS, SLOW, 1.0)
    assert full.cuts == [] and full.overrides == {}
    n_dev = len(ctx.examples("dev"))
    assert full.rungs["zero-shot"]["dev selection"] == pytest.approx(3 * n_dev * SLOW.item_s)
    assert race.rungs["zero-shot"]["dev selection"] < full.rungs["zero-shot"]["dev selection"]


def test_a_budgeted_climb_shows_and_records_its_plan(tmp_path):
    task_dir = write_classify_task(tmp_path / "big", rows=ROWS, labels=LABELS)
    events = []
    res = climb(
        task_dir,
        ClimbOptions(model="fake", rungs=["zero-shot"], budget=60),
        events=lambda e, **d: events.append((e, d)),
    )
    names = [e for e, _ in events]
    assert names.index("plan") < names.index("rung_start")
    assert res.plan.budget_s == 60 and res.plan.speed.items == 4
    stored = [a for a in Store().artifacts(res.run_id) if a["kind"] == "plan"]
    assert stored and stored[0]["meta"]["budget_s"] == 60
    assert (res.run_dir / "plan.json").is_file()


def test_the_data_curve_is_skipped_only_when_gate_3_does_not_need_it():
    from types import SimpleNamespace

    from ladder.rungs.finetune_checks import curve_unneeded
    from ladder.task import BarSpec

    def ctx(schedule="race", threshold=0.8):
        bar = BarSpec(metric="accuracy", threshold=threshold)
        return SimpleNamespace(
            schedule=schedule, task=SimpleNamespace(spec=SimpleNamespace(bar=bar))
        )

    full = {"metric": "accuracy", "value": 0.86}
    assert "gate 3 answers yes without it" in curve_unneeded(ctx(), 307, 128, full)
    assert curve_unneeded(ctx(threshold=0.9), 307, 128, full) is None  # misses the bar
    assert curve_unneeded(ctx(), 60, 128, full) is None  # too little train for the rule of thumb
    assert curve_unneeded(ctx(), 307, 20, full) is None  # too small a hold-out
    assert curve_unneeded(ctx("exhaustive"), 307, 128, full) is None  # today's schedule
