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
    assert "hold-out n is never cut" in mild.widened[-1]
    assert "gate 3 judges 'enough data' without a curve" in mild.widened
    tight = make_plan(ctx, RUNGS, SLOW, no_curve * 0.75)
    assert tight.eta_s <= no_curve * 0.75
    assert tight.overrides["lora"]["data_curve"] is None
    assert tight.overrides["lora"]["epochs"] in (2, 3)
    order = [c.split(" ")[0] for c in tight.cuts]
    assert order[0] == "lora.data_curve"
    # the dev race shrinks to 64 items before the first epoch goes (n_dev > 64 here)
    assert order.index("zero-shot.dev_items") < order.index("lora.epochs")
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
    # instructions and instructions+format; the calibrated variant reuses the latter's scores
    assert full.rungs["zero-shot"]["dev selection"] == pytest.approx(2 * n_dev * SLOW.item_s)
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


def test_a_tight_budget_races_on_fewer_dev_items_and_says_how_much_wider(ctx):
    n_dev = len(ctx.examples("dev"))
    assert n_dev > 64
    loose = make_plan(ctx, RUNGS, SLOW, None)
    floor = sum(p["hold-out"] for p in loose.rungs.values())  # what no cut can touch
    tight = make_plan(ctx, RUNGS, SLOW, floor * 1.05)
    assert tight.overrides["zero-shot"]["dev_items"] == 32
    assert tight.overrides["few-shot"]["dev_items"] == 32
    assert tight.overrides["lora"]["epochs"] == 2
    assert tight.overrides["few-shot"]["selection"] == ["knn", "balanced"]
    dev_cost = tight.rungs["zero-shot"]["dev selection"]
    assert dev_cost < loose.rungs["zero-shot"]["dev selection"]
    widened = " ".join(tight.widened)
    assert f"variants are chosen on 32 of {n_dev} dev items" in widened
    wide = f"±0.17 instead of ±{1.96 * (0.25 / n_dev) ** 0.5:.2f}"  # widest 95% CI at n
    assert wide in widened
    # the hold-out is the same in every plan
    assert all(tight.rungs[r]["hold-out"] == loose.rungs[r]["hold-out"] for r in RUNGS)


def test_the_plan_counts_the_prompts_it_will_score(ctx):
    from ladder.registry import registries

    # the fake engine scores labels: zero-shot has 3 variants, few-shot 5, but a calibrated
    # variant shows its twin's prompts and reuses their scores (2 and 3 prompt sets)
    for rung, prompt_sets in (("zero-shot", 2), ("few-shot", 3)):
        r = registries().rungs.get(rung)
        full = make_plan(Context(**{**vars(ctx), "schedule": "exhaustive"}), [rung], SLOW, None)
        names = {c.variant for c in r.candidates(ctx)}
        n = len({v.removesuffix("+calibrated") for v in names})
        assert n == prompt_sets
        assert full.rungs[rung]["dev selection"] == pytest.approx(
            n * len(ctx.examples("dev")) * SLOW.item_s * _factor(ctx, rung)
        )


def _factor(ctx, rung):
    from ladder.planner import _cfg, _length_factor

    return _length_factor(ctx, rung, _cfg(ctx, rung, {}), SLOW)


def test_a_budget_relaxes_the_consistency_sample_of_generated_answers(tmp_path):
    from conftest import write_extract_task

    root = write_extract_task(tmp_path / "ex", n=200, extra_yaml="leakage: {mode: report}\n")
    yaml = (root / "task.yaml").read_text()  # the sample sized by the planner, not set by hand
    (root / "task.yaml").write_text(yaml.replace(" consistency_sample: 4,", ""))
    task = load_task(root)
    c = Context(task, load_dataset(task), Store(tmp_path / "runs"), "r", tmp_path, "fake")
    loose = make_plan(c, ["zero-shot"], SLOW, None)
    assert "consistency" in loose.rungs["zero-shot"]
    tight = make_plan(c, ["zero-shot"], SLOW, loose.eta_s - 1)
    assert tight.cuts[0].startswith("eval.consistency_half_width")
    assert tight.rungs["zero-shot"]["consistency"] < loose.rungs["zero-shot"]["consistency"]
    assert any("consistency: 95% CI up to ±0.25 instead of ±0.15" in w for w in tight.widened)


def test_a_budgeted_climb_races_only_on_the_dev_items_its_plan_allows(tmp_path):
    task_dir = write_classify_task(tmp_path / "big", rows=ROWS, labels=LABELS)
    res = climb(task_dir, ClimbOptions(model="fake", rungs=["zero-shot"], budget=1e-9))
    assert res.plan.overrides["zero-shot"]["dev_items"] == 32
    rows = (
        Store()
        .db.execute(
            "SELECT DISTINCT example_id, split FROM predictions WHERE run_id=? AND rung='zero-shot'",
            (res.run_id,),
        )
        .fetchall()
    )
    dev_ids = {r["example_id"] for r in rows if r["split"] == "dev"}
    assert 16 <= len(dev_ids) <= 32
    held = {r["example_id"] for r in rows if r["split"] == "holdout"}
    assert (
        len(held) == len(res.dataset.holdout) == res.scorecards[0].n
    )  # the whole hold-out, untouched by the budget


def test_training_is_planned_from_the_timed_forward_of_its_own_records(ctx):
    from ladder.planner import TRAIN_COST, _record_seconds
    from ladder.rungs.lora import LoraConfig

    assert _record_seconds(ctx, "lora") > 0  # the fake engine scores: its records are timed
    timed = Speed(item_s=0.5, prompt_tokens=200, tokens_per_s=400, items=4, record_s=0.1)
    n_train, n_dev = len(ctx.dataset.train), len(ctx.examples("dev"))
    plan = make_plan(ctx, ["lora"], timed, None)
    epochs = LoraConfig().epochs
    assert plan.rungs["lora"]["training"] == pytest.approx(
        epochs * (n_train * TRAIN_COST + n_dev) * 0.1
    )
