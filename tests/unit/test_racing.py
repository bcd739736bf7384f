"""Racing prompt variants on dev: a clearly worse variant stops early, never the hold-out."""

from __future__ import annotations

import pytest

from conftest import write_classify_task
from ladder.climb import ClimbOptions, climb
from ladder.engines.fake import FakeEngine
from ladder.errors import LadderError
from ladder.rungs.racing import FIRST_ROUND, round_sizes
from ladder.store.db import Store

LABELS = ("work", "personal", "spam")
ROWS = [(f"message number {i} about topic {i % 7}", LABELS[i % 3]) for i in range(400)]
GOLD = dict(ROWS)


def scorer(req):
    """Knows the answer when the prompt shows the answer format; no skill otherwise."""
    query = req.prompt.rsplit("Input:\n", 1)[-1]
    text = next((t for t in GOLD if query.startswith(t + "\n") or query == t), None)
    if text is None:
        return [-1.0 for _ in req.choices]
    skilled = _variant(req.prompt) != "instructions"
    right = GOLD[text] if skilled else LABELS[(LABELS.index(GOLD[text]) + 1) % 3]
    return [0.0 if c.strip() == right else -5.0 for c in req.choices]


def _variant(prompt: str) -> str:
    return "instructions+format" if "work" in prompt.split("Input:\n", 1)[0] else "instructions"


def climb_zero_shot(task_dir, schedule):
    eng = FakeEngine(scorer=scorer)
    res = climb(
        task_dir,
        ClimbOptions(model="fake", rungs=["zero-shot"], schedule=schedule),
        ctx_hook=lambda ctx: ctx.set_engine("fake", eng),
    )
    return res, eng


@pytest.fixture
def big_task(tmp_path):
    return write_classify_task(tmp_path / "big", rows=ROWS, labels=LABELS)


def test_round_sizes_grow_and_end_at_dev():
    assert round_sizes(80) == [16, 24, 36, 54, 80]
    assert round_sizes(10) == [10]
    assert round_sizes(FIRST_ROUND) == [FIRST_ROUND]


def test_a_clearly_worse_variant_is_dropped_early_and_never_sees_the_holdout(big_task):
    res, _ = climb_zero_shot(big_task, "race")
    sel = res.scorecards[0].selection
    n_dev = len(res.dataset.dev)
    assert n_dev > 2 * FIRST_ROUND
    worse = sel["instructions"]
    assert worse["dropped"]["after"] == FIRST_ROUND and worse["n"] == FIRST_ROUND
    assert worse["dropped"]["ci"][0] > 0 and not worse["chosen"]
    assert res.scorecards[0].variant != "instructions"
    store = Store()
    assert len(store.predictions(res.run_id, "zero-shot", "instructions", "dev")) == FIRST_ROUND
    assert store.predictions(res.run_id, "zero-shot", "instructions", "holdout") == {}


def test_exhaustive_is_the_full_schedule_and_chooses_the_same(big_task):
    race, race_eng = climb_zero_shot(big_task, "race")
    full, full_eng = climb_zero_shot(big_task, "exhaustive")
    n_dev = len(full.dataset.dev)
    sel = full.scorecards[0].selection
    assert all(s["n"] == n_dev and "dropped" not in s for s in sel.values())
    store = Store()
    for variant in sel:
        assert len(store.predictions(full.run_id, "zero-shot", variant, "dev")) == n_dev
    assert full.scorecards[0].variant == race.scorecards[0].variant
    assert race_eng.calls["score"] < full_eng.calls["score"]


def test_an_unknown_schedule_is_refused(big_task):
    with pytest.raises(LadderError, match="unknown schedule 'fast'"):
        climb(big_task, ClimbOptions(model="fake", schedule="fast"))


def test_the_consistency_sample_is_sized_for_its_stated_interval(extract_task):
    from types import SimpleNamespace

    from ladder.evaluation.evaluate import consistency_items
    from ladder.task import EvalSpec

    def method(schedule):
        opts = ClimbOptions(model="fake", rungs=["zero-shot"], schedule=schedule)
        return climb(extract_task, opts).scorecards[0].consistency_method

    for schedule in ("race", "exhaustive"):  # the task sets consistency_sample: 4
        assert "on 4 items (95% CI ±" in method(schedule)
        assert "eval.consistency_sample = 4" in method(schedule)

    def ctx(schedule, **ev):
        return SimpleNamespace(
            schedule=schedule, task=SimpleNamespace(spec=SimpleNamespace(eval=EvalSpec(**ev)))
        )

    assert consistency_items(ctx("race"), 3) == 19  # (1.96 * 1/3 / 0.15)^2, the widest spread
    assert consistency_items(ctx("race"), 5) == 28
    assert consistency_items(ctx("exhaustive"), 3) == 16  # today's default
    assert consistency_items(ctx("race", consistency_sample=5), 3) == 5  # a task's own is honoured
