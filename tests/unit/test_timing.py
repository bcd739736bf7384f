"""Phase times: every climb stores wall seconds per rung and phase, and they add up."""

from __future__ import annotations

import time

import pytest

from ladder.climb import ClimbOptions, climb
from ladder.engines.fake import FakeEngine
from ladder.store.db import Store
from ladder.timing import CLIMB, PhaseClock, phase_line, phase_table


def test_a_climb_records_its_phases_per_rung(classify_task):
    slow = FakeEngine(latency_s=0.002)
    res = climb(
        classify_task,
        ClimbOptions(model="fake", all_rungs=True),
        ctx_hook=lambda ctx: ctx.set_engine("fake", slow),
    )
    assert set(res.phases) == {"zero-shot", "few-shot", CLIMB}
    for rung in ("zero-shot", "few-shot"):
        assert {"dev selection", "hold-out", "consistency"} <= set(res.phases[rung])
        assert res.phases[rung]["hold-out"] > 0
    # the planner probes before the first rung, the report comes after the last (the engine
    # was handed over, so nothing loads; the fake engine has no number formats to check)
    assert list(res.phases[CLIMB]) == ["planning", "report"]
    stored = phase_table(Store().phase_times(res.run_id))
    assert stored == res.phases


def test_loading_the_model_is_a_phase_of_the_climb(classify_task):
    res = climb(classify_task, ClimbOptions(model="fake", rungs=["zero-shot"]))
    assert list(res.phases[CLIMB]) == ["loading", "planning", "report"]
    assert "loading" not in res.phases["zero-shot"]  # loaded once, before the rung


def test_nested_phases_count_to_the_outer_one_and_the_rest_is_other(tmp_path):
    store = Store(tmp_path)
    store.create_run("r", "t", "t.yaml", str(tmp_path), "c", "d", {}, {})
    clock = PhaseClock(store, "r")
    with clock.rung_scope("lora"):
        with clock.phase("data curve"), clock.phase("training"):
            time.sleep(0.02)
        time.sleep(0.02)
    # a resumed rung adds to what it spent
    with clock.rung_scope("lora"), clock.phase("data curve"):
        time.sleep(0.01)
    got = phase_table(store.phase_times("r"))["lora"]
    assert set(got) == {"data curve", "other"}
    assert got["data curve"] >= 0.03 and got["other"] >= 0.02
    assert "= " in phase_line(got)
    with pytest.raises(ValueError, match="unknown phase"), clock.phase("lunch"):
        pass
