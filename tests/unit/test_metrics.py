"""Kinds, metrics and statistics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from conftest import SCHEMA
from ladder.evaluation.metrics import accuracy, exact_match, field_f1, macro_f1, per_label_prf
from ladder.evaluation.stats import bootstrap_ci, consistency, sample_labels
from ladder.kinds import Classify, Extract, Parsed, find_json_object, flatten


class FakeTask:
    labels = ["spam", "work", "personal"]
    schema = SCHEMA
    schema_validator = Draft202012Validator(SCHEMA)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (" spam", "spam"),
        ("Work.", "work"),
        ("PERSONAL\nbecause", "personal"),
        (" work - a meeting", "work"),
        ("persnal", "personal"),
        ("", None),
        ("banana", None),
    ],
)
def test_classify_parses_generated_labels(text, label):
    p = Classify().parse_prediction(text, FakeTask())
    assert p.output == label and p.valid == (label is not None)


def test_classify_gold_matching_is_case_and_punctuation_tolerant():
    assert Classify().parse_gold(" Spam ", FakeTask()) == "spam"
    with pytest.raises(ValueError):
        Classify().parse_gold("", FakeTask())


def test_metrics_by_hand():
    t = Classify().table(
        ["spam", "spam", "work", "work", "personal", "personal"],
        [
            Parsed("spam", True),
            Parsed("work", True),
            Parsed("work", True),
            Parsed(None, False),
            Parsed("personal", True),
            Parsed("spam", True),
        ],
        FakeTask(),
    )
    idx = np.arange(6)
    assert accuracy(t, idx) == pytest.approx(3 / 6)
    prf = per_label_prf(t)
    # spam: tp1 fp1 fn1 -> p .5 r .5; work: tp1 fp1 fn1 (one invalid) -> .5 .5; personal: tp1 fp0 fn1 -> 1 .5
    assert prf[:, 0] == pytest.approx([0.5, 0.5, 1.0])
    assert prf[:, 1] == pytest.approx([0.5, 0.5, 0.5])
    assert macro_f1(t, idx) == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)


def test_extract_parsing_validation_and_field_f1():
    kind, task = Extract(), FakeTask()
    good = {"category": "billing", "order_id": "NH-1", "customer": {"name": "Ana"}}
    text = (
        'Sure! {"category": "billing", "order_id": "NH-1", "customer": {"name": "Ana"}} trailing {'
    )
    p = kind.parse_prediction(text, task)
    assert p.valid and p.output == good
    bad = kind.parse_prediction(
        '{"category": "sales", "order_id": null, "customer": {"name": "ana "}}', task
    )
    assert not bad.valid and bad.error.startswith("schema violation at category")
    assert kind.parse_prediction("no json here", task).output is None
    t = kind.table([good, good], [p, bad], task)
    idx = np.arange(2)
    # pairs: 3 + 3 gold; item 1 all right (3 tp), item 2: name matches after normalisation (1 tp)
    assert field_f1(t, idx) == pytest.approx(2 * 4 / (6 + 6))
    assert exact_match(t, idx) == 0.5
    assert kind.error_categories(good, bad, task) == [
        "schema violation at category",
        "category: wrong",
        "order_id: wrong",
    ]


def test_json_helpers():
    assert find_json_object('x {"a": "}{"} y') == '{"a": "}{"}'
    assert flatten({"a": {"b": 1, "c": {"d": None}}, "e": []}) == {"a.b": 1, "a.c.d": None, "e": []}


def test_bootstrap_interval_contains_estimate_and_narrows_with_n():
    def acc(t, idx):
        return float(np.mean(t["x"][idx]))

    rng = np.random.default_rng(1)
    small = {"x": rng.random(40) < 0.7}
    large = {"x": rng.random(4000) < 0.7}
    v, lo, hi = bootstrap_ci(acc, small, 40, resamples=500)
    assert lo <= v <= hi
    _, lo2, hi2 = bootstrap_ci(acc, large, 4000, resamples=500)
    assert (hi2 - lo2) < (hi - lo) / 4


def test_consistency_and_label_sampling():
    assert consistency([["a", "a", "a"], ["a", "b", "b"]]) == pytest.approx((1 + 2 / 3) / 2)
    rng = np.random.default_rng(0)
    sharp = sample_labels(np.log(np.array([0.98, 0.01, 0.01])), 1.0, 200, rng)
    flat = sample_labels(np.log(np.array([0.34, 0.33, 0.33])), 1.0, 200, rng)
    assert (sharp == 0).mean() > 0.9 and (flat == 0).mean() < 0.5


def test_a_kind_owns_the_metrics_registered_for_it_and_a_plugin_can_add_one(
    classify_task, tmp_path
):
    """The kind's metric list is what the registry holds under `KIND/NAME`: a plugin's metric for
    classify is computed (with its interval) on every classify scorecard, the primary first."""
    import numpy as np

    import ladder
    from ladder.evaluation.metrics import Metric
    from ladder.registry import registries

    metrics = registries().metrics
    kind = registries().kinds.get("classify")
    assert kind.metric_names() == ["accuracy", "macro_f1", "validity"]
    metrics.register(
        "classify/first_label_share",
        Metric(
            "first_label_share", ("classify",), lambda t, idx: float(np.mean(t["pred"][idx] == 0))
        ),
    )
    try:
        assert kind.metric_names()[0] == "accuracy" and "first_label_share" in kind.metric_names()
        card = ladder.evaluate(classify_task, "zero-shot", model="fake", runs_dir=str(tmp_path))
        mv = card.metrics["first_label_share"]
        assert 0 <= mv.ci_low <= mv.value <= mv.ci_high <= 1
    finally:
        metrics._items.pop("classify/first_label_share")
    assert "first_label_share" not in kind.metric_names()
