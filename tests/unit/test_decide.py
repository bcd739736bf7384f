"""The decision on scorecards built by hand: each gate, the recommendation, what would change it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ladder.decide import Facts, decide, hybrid_pair
from ladder.decide.gates import gate_data, gate_knowledge, gate_narrow, gate_prompting
from ladder.evaluation.scorecard import MetricValue, Scorecard

RECURRING = {
    "variants": 3,
    "recurring": ["work → personal"],
    "categories": [
        {"category": "work → personal", "variants_with": 3, "total": 12, "recurring": True}
    ],
}


def sc(
    rung,
    value,
    per_call,
    *,
    one_time=0.0,
    fixed=0.0,
    tokens=100,
    extras=None,
    fa=None,
    basis="self-hosted",
    model="m",
):
    c = Scorecard(
        rung=rung,
        variant="v",
        model=model,
        n=200,
        primary_metric="accuracy",
        metrics={"accuracy": MetricValue(value=value, ci_low=value - 0.06, ci_high=value + 0.06)},
        validity=1.0,
        tokens_in=tokens,
        extras=extras or {},
        failure_analysis=fa,
        confusion={
            "matrix": [[40, 0], [60, 100]],
            "labels": ["a", "b"],
            "columns": ["a", "b", "(invalid)"],
        },
    )
    c.cost = {"per_call": per_call, "one_time": one_time, "monthly_fixed": fixed, "basis": basis}
    return c


def cmp(a, b, diff, significant, p=0.001):
    return {
        "a": a,
        "b": b,
        "diff": diff,
        "ci_low": diff - 0.05,
        "ci_high": diff + 0.05,
        "p_value": p,
        "significant": significant,
        "sentence": f"{b} vs {a}: {diff:+.2f}",
        "test": "McNemar",
    }


FACTS = Facts(metric="accuracy", bar=0.8, calls_per_day=50_000, split={"train": 336, "holdout": 96})
TUNED_EXTRAS = {"training": {"seconds": 130, "device": "cpu", "examples": 336}}


def test_gate_prompting_answers():
    below = [sc("zero-shot", 0.3, 1e-6), sc("few-shot", 0.4, 2e-6, fa=RECURRING)]
    g = gate_prompting(below, FACTS)
    assert (
        g["answer"] == "yes"
        and "0.40 < bar 0.80" in g["evidence"]
        and "3/3 variants" in g["evidence"]
    )
    assert gate_prompting([sc("few-shot", 0.4, 1e-6)], FACTS)["answer"] == "unclear"
    assert gate_prompting([sc("few-shot", 0.85, 1e-6)], FACTS)["answer"] == "no"
    assert gate_prompting([sc("lora", 0.85, 1e-6)], FACTS)["answer"] == "unknown"


def test_gate_knowledge_from_the_task_or_a_significant_rag_win():
    cards = [sc("few-shot", 0.5, 1e-6), sc("rag", 0.7, 2e-6)]
    assert gate_knowledge(cards, Facts("accuracy", knowledge="volatile"), [])["answer"] == "yes"
    assert gate_knowledge(cards, FACTS, [cmp("few-shot", "rag", 0.2, True)])["answer"] == "yes"
    assert (
        gate_knowledge(cards, FACTS, [cmp("few-shot", "rag", 0.02, False, 0.4)])["answer"] == "no"
    )
    assert gate_knowledge(cards[:1], FACTS, [])["answer"] == "no"


@pytest.mark.parametrize(
    ("curve", "answer", "text"),
    [
        (
            [(50, 0.6), (100, 0.8), (200, 0.86), (336, 0.87)],
            "yes",
            "flattens at ~200 examples; you have 336",
        ),
        ([(50, 0.4), (100, 0.55), (336, 0.7)], "no", "label more"),
        ([(50, 0.6), (100, 0.75), (336, 0.85)], "yes", "more labels would help"),
    ],
)
def test_gate_data_reads_the_curve(curve, answer, text):
    pts = [{"examples": n, "metric": "accuracy", "value": v} for n, v in curve]
    g = gate_data([sc("lora", 0.85, 1e-6, extras={**TUNED_EXTRAS, "data_curve": pts})], FACTS)
    assert g["answer"] == answer and text in g["evidence"]


def test_gate_data_without_a_curve_uses_counts():
    assert gate_data([], FACTS)["answer"] == "yes"
    small = Facts("accuracy", split={"train": 40, "holdout": 20})
    assert gate_data([], small)["answer"] == "no"


def fg(rise, text="the bundled general-English text", tokens=812, **extras):
    forgetting = {"adjacent": text, "relative_increase": rise, "tokens": tokens}
    return sc("lora", 0.9, 1e-6, extras={**TUNED_EXTRAS, "forgetting": forgetting, **extras})


SHARED = Facts("accuracy", bar=0.8, scope="shared")


def test_gate_narrow_single_task_reports_forgetting_but_does_not_judge_by_it():
    g = gate_narrow([fg(0.577)], FACTS)  # FACTS: scope single-task, the default
    assert g["answer"] == "yes" and g["numbers"]["relative_increase"] == 0.577
    assert g["evidence"] == (
        "scope: single-task — the adapter is served only for this task, the base model is "
        "untouched; forgetting on the bundled general-English text: +57.7% (one measurement on "
        "812 tokens) (reported, not a criterion)"
    )
    unmeasured = gate_narrow([sc("lora", 0.9, 1e-6, extras=TUNED_EXTRAS)], FACTS)
    assert unmeasured["answer"] == "yes" and "forgetting not measured" in unmeasured["evidence"]


@pytest.mark.parametrize(
    ("facts", "extras", "why"),
    [
        (SHARED, {}, "scope: shared"),
        (Facts("accuracy", bar=0.8, merged=True), {}, "merged into the base model"),
        (FACTS, {"merged": {"value": 0.9}}, "merged into the base model"),  # `--merge` run
    ],
    ids=["shared", "merged-in-task.yaml", "merged-on-the-scorecard"],
)
def test_gate_narrow_shared_or_merged_is_judged_by_the_tolerance(facts, extras, why):
    high = gate_narrow([fg(0.2, "your text support-notes.txt", 2048, **extras)], facts)
    assert high["answer"] == "no" and why in high["evidence"]
    assert (
        "your text support-notes.txt: +20.0% (one measurement on 2048 tokens)" in high["evidence"]
    )
    assert "over the 5% tolerance" in high["evidence"] and high["numbers"]["tokens"] == 2048
    low = gate_narrow([fg(0.006, **extras)], facts)
    assert low["answer"] == "yes" and "+0.6%" in low["evidence"]
    assert "within the 5% tolerance" in low["evidence"]
    assert "the bundled general-English text" in low["evidence"]


def test_gate_narrow_shared_without_a_measurement_says_how_to_measure():
    g = gate_narrow([sc("lora", 0.9, 1e-6, extras=TUNED_EXTRAS)], SHARED)
    assert g["answer"] == "unknown" and "forgetting: {text: FILE}" in g["evidence"]
    assert "`forgetting: true`" in g["evidence"]


def test_gate_narrow_names_the_text_of_runs_before_forgetting_text():
    old = "bundled general-English text (ladder/training/adjacent.txt)"
    g = gate_narrow([fg(0.2, old, tokens=None)], SHARED)
    assert (
        "forgetting on the bundled general-English text: +20.0% (one measurement)"
        in (g["evidence"])
    )


def test_high_forgetting_sets_a_fine_tune_aside_only_when_shared():
    tuned = fg(0.3)
    tuned.metrics["accuracy"] = MetricValue(value=0.95, ci_low=0.9, ci_high=0.98)
    cards = [sc("few-shot", 0.95, 20e-6, tokens=410), tuned]
    cards[0].metrics["accuracy"] = tuned.metrics["accuracy"]
    single = decide(cards, FACTS, [])
    shared = decide(cards, replace(FACTS, scope="shared"), [])
    assert single["gates"][3]["answer"] == "yes" and single["recommendation"] == "lora"
    assert shared["gates"][3]["answer"] == "no" and shared["recommendation"] == "few-shot"
    assert any("lora set aside" in r and "+30.0%" in r for r in shared["reasons"])


def test_fine_tune_when_prompting_is_exhausted():
    cards = [
        sc("zero-shot", 0.27, 4e-6, tokens=96),
        sc("few-shot", 0.38, 17e-6, tokens=410, fa=RECURRING),
        sc("lora", 0.86, 4e-6, one_time=0.01, fixed=5.0, extras=TUNED_EXTRAS),
    ]
    d = decide(cards, FACTS, [cmp("few-shot", "lora", 0.48, True)])
    assert (d["recommendation"], d["kind"], d["meets_bar"]) == ("lora", "fine-tune", True)
    gates = {g["n"]: g["answer"] for g in d["gates"]}
    assert gates[1] == "yes" and gates[5] == "yes"
    be = next(r for r in d["break_even"] if r["prompted"] == "few-shot")
    assert be["break_even_per_day"] == pytest.approx((0.01 / 3 + 5.0) / 13e-6 / (365.25 / 12))
    assert any("no prompted option meets the bar" in c["text"] for c in d["what_would_change"])
    assert d["signals"]["zero_shot"]["baseline"] == pytest.approx(160 / 200)


def test_volume_decides_between_two_options_that_meet_the_bar():
    big = sc("few-shot", 0.88, 20e-6, basis="api", model="openai:gpt-4o-mini")
    tuned = sc("lora", 0.87, 2e-6, one_time=30.0, fixed=100.0, extras=TUNED_EXTRAS)
    be_day = (30 / 3 + 100) / 18e-6 / (365.25 / 12)  # about 201 calls/day... per month 6.1M
    high = Facts("accuracy", bar=0.8, calls_per_day=be_day * 3)
    low = Facts("accuracy", bar=0.8, calls_per_day=be_day / 3)
    assert decide([big, tuned], high, [])["recommendation"] == "lora"
    d = decide([big, tuned], low, [])
    assert d["recommendation"] == "few-shot" and d["kind"] == "prompt"
    assert {g["n"]: g["answer"] for g in d["gates"]}[5] == "no"
    change = next(c for c in d["what_would_change"] if c["what"] == "volume")
    assert change["value"] == pytest.approx(be_day) and "lora costs less" in change["text"]
    d_high = decide([big, tuned], high, [])
    change = next(c for c in d_high["what_would_change"] if c["what"] == "volume")
    assert "below" in change["text"] and "few-shot costs less" in change["text"]


def test_volatile_knowledge_sets_fine_tunes_aside_when_something_else_meets_the_bar():
    cards = [sc("rag", 0.88, 30e-6), sc("lora", 0.9, 1e-6, extras=TUNED_EXTRAS)]
    f = Facts("accuracy", bar=0.8, calls_per_day=1e5, knowledge="volatile")
    d = decide(cards, f, [])
    assert d["recommendation"] == "rag" and d["kind"] == "retrieve"
    assert any("lora set aside" in r for r in d["reasons"])


def test_hybrid_when_only_routing_meets_the_bar():
    small = sc("lora", 0.75, 1e-6, extras=TUNED_EXTRAS)
    large = sc("few-shot", 0.78, 50e-6, basis="api")
    assert hybrid_pair([small, large], FACTS) == ("lora", "few-shot")
    h = {
        "small": "lora",
        "large": "few-shot",
        "signal": "label margin",
        "threshold": 0.35,
        "share_to_large": 0.2,
        "quality": 0.84,
        "per_call": 11e-6,
        "meets_bar": True,
        "fixed": 0.0,
        "metric": "accuracy",
        "curve": [],
    }
    d = decide([small, large], FACTS, [], h)
    assert d["recommendation"] == "hybrid" and d["kind"] == "hybrid"
    assert "20% of calls" in d["reasons"][0]


def test_no_bar_picks_the_cheapest_option_not_significantly_worse():
    a, b = sc("zero-shot", 0.70, 1e-6), sc("few-shot", 0.72, 9e-6)
    f = Facts("accuracy", calls_per_day=1000)
    assert (
        decide([a, b], f, [cmp("zero-shot", "few-shot", 0.02, False, 0.5)])["recommendation"]
        == "zero-shot"
    )
    assert (
        decide([a, b], f, [cmp("zero-shot", "few-shot", 0.02, True)])["recommendation"]
        == "few-shot"
    )


def test_nothing_meets_the_bar():
    d = decide([sc("zero-shot", 0.3, 1e-6), sc("few-shot", 0.5, 2e-6)], FACTS, [])
    assert d["recommendation"] == "few-shot" and d["meets_bar"] is False
    assert "no option is shown to meet the bar" in d["reasons"][0]


def test_volume_gate_says_what_is_missing_when_only_a_fine_tune_ran():
    d = decide([sc("lora", 0.86, 4e-6, one_time=0.01, fixed=5.0, extras=TUNED_EXTRAS)], FACTS, [])
    gate = next(g for g in d["gates"] if g["n"] == 5)
    assert gate["answer"] == "unknown"
    assert "no prompted rung" in gate["evidence"]
    d = decide([sc("few-shot", 0.6, 17e-6)], FACTS, [])
    gate = next(g for g in d["gates"] if g["n"] == 5)
    assert "no fine-tuned rung" in gate["evidence"]


# ---------------------------------------------------------------- how sure the verdict is


def _card_with_p(rung, value, lo, hi, p_bar, per_call, **kw):
    c = sc(rung, value, per_call, **kw)
    c.metrics["accuracy"] = MetricValue(value=value, ci_low=lo, ci_high=hi, p_bar=p_bar, bar=0.8)
    return c


def test_an_interval_straddling_the_bar_is_not_bar_met():
    lora = _card_with_p("lora", 0.83, 0.77, 0.89, 0.84, 1e-6, extras=TUNED_EXTRAS)
    few = _card_with_p("few-shot", 0.77, 0.70, 0.84, 0.2, 5e-6)
    d = decide([few, lora], FACTS, [])
    assert d["meets_bar"] is False
    v = {x["rung"]: x for x in d["bar_verdicts"]}
    assert v["lora"]["point_reached"] and not v["lora"]["met"] and v["lora"]["p_meets"] == 0.84
    assert "not shown at 95%" in v["lora"]["text"]
    assert "no option is shown to meet the bar" in d["reasons"][0]


def test_no_significant_difference_the_cheaper_wins_on_cost():
    lora = _card_with_p("lora", 0.90, 0.85, 0.94, 0.99, 1e-6, extras=TUNED_EXTRAS)
    few = _card_with_p("few-shot", 0.88, 0.83, 0.93, 0.98, 5e-6)
    comp = {
        "a": "few-shot", "b": "lora", "diff": 0.02, "ci_low": -0.03, "ci_high": 0.07,
        "significant": False, "sentence": "lora vs few-shot: no significant difference",
        "settle": {"more_examples": 900, "total": 1100, "power": 0.8, "basis": "McNemar"},
    }  # fmt: skip
    d = decide([few, lora], FACTS, [comp])
    assert d["recommendation"] == "lora" and d["basis"]["basis"] == "cost"
    assert d["basis"]["rival"] == "few-shot" and "no significant difference" in d["basis"]["text"]
    assert d["basis"]["settle"]["more_examples"] == 900


def test_a_significant_cheaper_win_is_both():
    lora = _card_with_p("lora", 0.95, 0.92, 0.98, 1.0, 1e-6, extras=TUNED_EXTRAS)
    few = _card_with_p("few-shot", 0.82, 0.77, 0.87, 0.7, 5e-6)
    comp = {
        "a": "few-shot", "b": "lora", "diff": 0.13, "ci_low": 0.08, "ci_high": 0.18,
        "significant": True, "sentence": "lora beats few-shot by 13 points [8, 18]",
    }  # fmt: skip
    d = decide([few, lora], FACTS, [comp])
    assert d["meets_bar"] and d["basis"]["basis"] == "both"


def test_a_flat_curve_at_a_low_score_is_a_rung_that_cannot_learn_not_enough_data():
    pts = [
        {"examples": n, "metric": "accuracy", "value": v}
        for n, v in [(45, 0.04), (90, 0.04), (180, 0.045)]
    ]
    cards = [
        sc("rag", 0.22, 5e-6),
        sc("lora", 0.045, 1e-6, extras={**TUNED_EXTRAS, "data_curve": pts}),
    ]
    g = gate_data(cards, FACTS)
    assert (
        g["answer"] == "no"
        and "cannot learn" in g["evidence"]
        and "rag scores 0.22" in g["evidence"]
    )


def test_volume_does_not_pay_for_a_significantly_worse_fine_tune():
    cards = [sc("rag", 0.60, 30e-6), sc("lora", 0.30, 1e-6, extras=TUNED_EXTRAS)]
    comp = cmp("rag", "lora", -0.30, True)
    f = Facts("accuracy", bar=0.8, calls_per_day=1e6)
    d = decide(cards, f, [comp])
    g5 = next(g for g in d["gates"] if g["n"] == 5)
    assert g5["answer"] == "no" and "significantly worse than rag" in g5["evidence"]
    # the same pair without a significant difference: the cheaper fine-tune pays at this volume
    comp_ns = cmp("rag", "lora", -0.02, False, 0.5)
    g5 = next(g for g in decide(cards, f, [comp_ns])["gates"] if g["n"] == 5)
    assert g5["answer"] == "yes"


@pytest.mark.parametrize(
    ("task_yaml", "overrides", "scope", "merged"),
    [
        ({}, {}, "single-task", False),
        ({"scope": "shared"}, {}, "shared", False),
        ({"rungs": {"lora": {"merge": True}}}, {}, "single-task", True),
        ({}, {"distill": {"merge": True}}, "single-task", True),  # `ladder train --merge`
    ],
)
def test_the_report_reads_scope_and_merge_into_the_facts(task_yaml, overrides, scope, merged):
    from ladder.prices import load_price_book
    from ladder.report.build import RunView, facts_for
    from ladder.task import TaskSpec

    spec = TaskSpec.model_validate(
        {"name": "t", "kind": "classify", "data": {"path": "d.jsonl"}, **task_yaml}
    )
    run = {"config": {"options": {"options": overrides}}}
    f = facts_for(RunView(run, spec, [sc("lora", 0.9, 1e-6)]), load_price_book(), None)
    assert (f.scope, f.merged) == (scope, merged)


def _routed_holdout(tmp_path, n_per_label: int, small_right: float, large_right: float):
    """A hold-out where the small model is sure and right on a share of items, unsure (and
    wrong) on the rest, and the large model is right on a share of everything."""
    from conftest import write_classify_task
    from ladder.dataset import Prediction, load_dataset
    from ladder.task import load_task

    labels = ("work", "personal", "spam")
    rows = [(f"message {i} about {i % 11}", labels[i % 3]) for i in range(n_per_label * 3 * 4)]
    task = load_task(write_classify_task(tmp_path / f"t{n_per_label}", rows=rows, labels=labels))
    hold = load_dataset(task).splits["holdout"]
    rng = np.random.default_rng(0)
    small, large = [], []
    for e in hold:
        wrong = next(lab for lab in labels if lab != e.output)
        sure = rng.random() < small_right
        small.append(
            Prediction(
                e.id,
                e.output if sure else wrong,
                True,
                scores=[0.0, -5.0, -6.0] if sure else [0.0, -0.01, -3.0],
            )
        )
        large.append(Prediction(e.id, e.output if rng.random() < large_right else wrong, True))
    return task, hold, small, large


def test_the_hybrid_meets_the_bar_only_at_the_stated_confidence(tmp_path):
    """Routing reaches the bar by its point estimate on a small hold-out: not shown at 95%, so
    not recommended as meeting the bar; on a hold-out large enough it is."""
    from ladder.hybrid import recommend

    task, hold, small, large = _routed_holdout(tmp_path, 12, 0.5, 0.7)
    h = recommend(task, hold, ("lora", small, 1e-6), ("few-shot", large, 1e-4), "accuracy", 0.8)
    v = h["verdict"]
    assert v["value"] == pytest.approx(h["quality"], abs=1e-4) and v["point_reached"]
    assert v["ci"][0] < 0.8 and not v["met"] and h["meets_bar"] is False
    assert "not shown at 95%" in v["text"] and "chosen on this hold-out" in v["text"]
    big_task, big_hold, big_small, big_large = _routed_holdout(tmp_path, 150, 0.6, 0.95)
    big = recommend(
        big_task,
        big_hold,
        ("lora", big_small, 1e-6),
        ("few-shot", big_large, 1e-4),
        "accuracy",
        0.8,
    )
    assert big["verdict"]["met"] and big["meets_bar"] and big["verdict"]["p_meets"] >= 0.95
