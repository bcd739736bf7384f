"""'Bar met' means met with the task's stated confidence, from the scorecard's own bootstrap."""

from __future__ import annotations

from ladder.evaluation.bar import verdict
from ladder.evaluation.scorecard import MetricValue, Scorecard


def card(value, lo, hi, p_bar=None, bar=None):
    return Scorecard(
        rung="lora",
        variant="v",
        model="m",
        n=128,
        primary_metric="accuracy",
        metrics={"accuracy": MetricValue(value=value, ci_low=lo, ci_high=hi, p_bar=p_bar, bar=bar)},
        validity=1.0,
    )


def test_confident_point_only_and_below():
    assert verdict(card(0.9, 0.85, 0.95, 0.99, 0.8), "accuracy", 0.8)["met"]
    v = verdict(card(0.83, 0.77, 0.89, 0.84, 0.8), "accuracy", 0.8)
    assert v["point_reached"] and not v["met"] and not v["interval_clears"]
    assert "bar reached by the point estimate, not shown at 95%" in v["text"]
    assert verdict(card(0.83, 0.77, 0.89, 0.84, 0.8), "accuracy", 0.8, confidence=0.8)["met"]
    assert not verdict(card(0.7, 0.6, 0.8, 0.05, 0.8), "accuracy", 0.8)["point_reached"]


def test_a_card_without_its_bootstrap_probability_is_judged_by_its_interval():
    assert verdict(card(0.9, 0.82, 0.95), "accuracy", 0.8)["met"]
    assert not verdict(card(0.9, 0.78, 0.95), "accuracy", 0.8)["met"]
    # a probability computed for another threshold is not reused
    assert verdict(card(0.9, 0.82, 0.95, 0.1, 0.7), "accuracy", 0.8)["p_meets"] is None


def test_the_climb_stores_the_bar_probability(classify_task):
    from ladder.climb import ClimbOptions, climb

    res = climb(classify_task, ClimbOptions(model="fake", rungs=["zero-shot"]))
    mv = res.scorecards[0].metrics["accuracy"]
    assert mv.bar == 0.9 and 0.0 <= mv.p_bar <= 1.0
    assert res.outcome.decision["bar_verdicts"][0]["rung"] == "zero-shot"
    assert res.outcome.decision["basis"]["basis"] == "only option"
