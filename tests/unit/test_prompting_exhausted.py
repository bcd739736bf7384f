"""Gate 1 answers "prompting exhausted: yes" only when the recurring errors survive the variants
that target them: a label bias that calibration removes is not a ceiling. It lists what the
prompting search tried, and few-shot has calibrated variants like zero-shot."""

from __future__ import annotations

from conftest import write_classify_task
from ladder.climb import ClimbOptions, climb
from ladder.dataset import load_dataset
from ladder.decide import Facts
from ladder.decide.gates import gate_prompting, prompting_tried
from ladder.engines.fake import FakeEngine
from ladder.evaluation.scorecard import MetricValue, Scorecard
from ladder.task import load_task

FACTS = Facts(metric="accuracy", bar=0.8, n_labels=3, split={"train": 300, "holdout": 100})

PLAIN = ["instructions", "explicit format", "label list", "4 demonstrations (random)"]
CALIBRATED = [*PLAIN, "calibration"]


def card(rows: list[dict], selection: dict, *, mode="score", value=0.5, rung="few-shot"):
    c = Scorecard(
        rung=rung,
        variant=next(iter(selection)),
        model="m",
        n=100,
        primary_metric="accuracy",
        metrics={"accuracy": MetricValue(value=value, ci_low=value - 0.1, ci_high=value + 0.1)},
        validity=1.0,
        failure_analysis={"variants": len(selection), "categories": rows},
        selection={v: {"accuracy": value, "techniques": t} for v, t in selection.items()},
        solution={"mode": mode},
    )
    c.cost = {"per_call": 1e-6}
    return c


def row(category: str, per_variant: dict[str, int]) -> dict:
    return {
        "category": category,
        "variants_with": sum(n >= 2 for n in per_variant.values()),
        "total": sum(per_variant.values()),
        "per_variant": per_variant,
        "recurring": True,
    }


KNN = [*PLAIN[:3], "4 demonstrations (knn)"]
SEL = {"random-4": PLAIN, "knn-4": KNN, "random-4+calibrated": CALIBRATED}


def test_a_label_bias_that_calibration_removes_is_not_a_ceiling():
    rows = [row("meta → credit_cards", {"random-4": 29, "knn-4": 27, "random-4+calibrated": 1})]
    g = gate_prompting([card(rows, SEL)], FACTS)
    assert g["answer"] == "no", g
    assert "calibration removes (28.0 → 1 in random-4+calibrated)" in g["evidence"]
    assert g["numbers"]["removed"] == ["meta → credit_cards"]


def test_errors_that_survive_calibration_are_a_ceiling():
    rows = [row("meta → home", {"random-4": 12, "knn-4": 10, "random-4+calibrated": 9})]
    g = gate_prompting([card(rows, SEL)], FACTS)
    assert g["answer"] == "yes", g
    assert '"meta → home" errors recur in 3/3 variants, 9 in random-4+calibrated' in g["evidence"]


def test_one_surviving_error_is_a_ceiling_and_the_removed_bias_is_named():
    rows = [
        row("meta → credit_cards", {"random-4": 29, "knn-4": 27, "random-4+calibrated": 0}),
        row("meta → home", {"random-4": 8, "knn-4": 9, "random-4+calibrated": 7}),
    ]
    g = gate_prompting([card(rows, SEL)], FACTS)
    assert g["answer"] == "yes"
    assert '"meta → home"' in g["evidence"] and "not a ceiling" in g["evidence"]
    assert g["numbers"]["surviving"] == 1 and g["numbers"]["removed"] == ["meta → credit_cards"]


def test_a_bias_no_calibrated_variant_tested_leaves_the_gate_unclear():
    sel = {"random-4": PLAIN, "knn-4": KNN}
    rows = [row("meta → credit_cards", {"random-4": 29, "knn-4": 27})]
    g = gate_prompting([card(rows, sel)], FACTS)
    assert g["answer"] == "unclear"
    assert "no variant with calibration, which targets them, was tried" in g["evidence"]
    assert "calibration (rungs.few-shot.calibrate: true)" in g["numbers"]["not_tried"]


def test_where_calibration_cannot_apply_the_recurring_errors_count():
    sel = {"random-4": PLAIN, "knn-4": KNN}
    rows = [row("meta → credit_cards", {"random-4": 29, "knn-4": 27})]
    g = gate_prompting([card(rows, sel, mode="generate")], FACTS)
    assert g["answer"] == "yes"  # a generating engine has no label scores to calibrate


def test_invalid_answers_are_targeted_by_the_explicit_format():
    sel = {"instructions": ["instructions"], "instructions+format": PLAIN[:3]}
    rows = [row("work → (invalid answer)", {"instructions": 20, "instructions+format": 1})]
    g = gate_prompting([card(rows, sel, mode="generate", rung="zero-shot")], FACTS)
    assert g["answer"] == "no"


def test_the_gate_lists_what_was_tried_and_what_was_not():
    zero = card([], {"instructions": ["instructions"], "instructions+format": PLAIN[:3]})
    zero.rung = "zero-shot"
    few = card([], {**SEL, "balanced": [*PLAIN[:3], "3 demonstrations (balanced)"]})
    tried, untried = prompting_tried([zero, few])
    assert "instructions (zero-shot, few-shot)" in tried
    assert "explicit format (zero-shot, few-shot)" in tried
    assert "demonstrations (k=3: balanced; k=4: knn, random)" in tried
    assert "calibration (few-shot)" in tried
    assert any(t.startswith("chain-of-thought") for t in untried)
    assert any(t.startswith("label definitions") for t in untried)
    g = gate_prompting([zero, few], FACTS)
    assert "tried: instructions (zero-shot, few-shot)" in g["evidence"]


# ---------------------------------------------------------------- on a climb


def biased_engine(task) -> FakeEngine:
    """Every prompt leans to `spam` by more than it knows the gold label: a label bias."""
    gold = {e.input: e.output for e in load_dataset(load_task(task)).examples}

    def scorer(req):
        text = req.prompt.rsplit("Input:\n", 1)[-1].rsplit("\nAnswer:", 1)[0]
        label = gold.get(text)
        return [
            (1.0 if c.strip() == label else 0.0) + (1.5 if c == " spam" else 0.0)
            for c in req.choices
        ]

    return FakeEngine("fake", scorer=scorer)


def test_few_shot_has_calibrated_variants_that_remove_the_bias(tmp_path):
    task = write_classify_task(tmp_path / "t", extra_yaml="model: fake\n")

    def hook(ctx):
        ctx.set_engine("fake", biased_engine(task))

    res = climb(
        task,
        ClimbOptions(rungs=["few-shot"], schedule="exhaustive", all_rungs=True),
        ctx_hook=hook,
    )
    card = res.scorecards[0]
    assert "random-4+calibrated" in card.selection and "balanced+calibrated" in card.selection
    assert card.selection["random-4+calibrated"]["techniques"][-1] == "calibration"
    assert card.variant.endswith("+calibrated")  # the bias is gone: it answers the gold label
    assert card.selection[card.variant]["accuracy"] == 1.0
    assert card.selection["random-4"]["accuracy"] < 0.5
