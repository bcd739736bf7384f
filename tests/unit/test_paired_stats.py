"""Paired comparisons: McNemar (exact and chi-squared), paired bootstrap, the sentences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ladder.dataset import Prediction, load_dataset
from ladder.evaluation.compare import compare, compare_all, find
from ladder.evaluation.metrics import accuracy
from ladder.evaluation.stats import format_p, mcnemar, paired_bootstrap
from ladder.task import load_task


def outcomes(both: int, only_a: int, only_b: int, neither: int):
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return np.array(a, bool), np.array(b, bool)


def test_mcnemar_exact_matches_the_binomial_test():
    r = mcnemar(*outcomes(20, 0, 10, 5))
    assert r["method"] == "exact" and r["only_a"] == 0 and r["only_b"] == 10
    assert r["p"] == pytest.approx(2 * 0.5**10)
    r = mcnemar(*outcomes(20, 3, 5, 5))  # P(X<=3 | n=8) * 2 = 2 * 93/256
    assert r["p"] == pytest.approx(2 * 93 / 256)
    assert mcnemar(*outcomes(5, 4, 4, 5))["p"] == 1.0
    assert mcnemar(*outcomes(5, 0, 0, 5))["p"] == 1.0


def test_mcnemar_chi2_with_continuity_correction():
    r = mcnemar(*outcomes(50, 5, 25, 10))
    assert r["method"] == "chi2"
    assert r["statistic"] == pytest.approx((20 - 1) ** 2 / 30)
    assert r["p"] == pytest.approx(math.erfc(math.sqrt(r["statistic"] / 2)))
    assert r["p"] == pytest.approx(0.000523, abs=2e-5)


def test_paired_bootstrap_sees_a_consistent_gain_and_no_gain():
    n = 200
    gold = np.zeros(n, dtype=int)
    a = {"gold": gold, "pred": np.where(np.arange(n) % 2 == 0, 0, 1), "n_labels": np.array([2])}
    b = {"gold": gold, "pred": np.where(np.arange(n) % 10 == 0, 1, 0), "n_labels": np.array([2])}
    r = paired_bootstrap(accuracy, a, b, n, resamples=500)
    assert r["diff"] == pytest.approx(0.4) and r["ci_low"] > 0.3 and r["p"] < 0.01
    same = paired_bootstrap(accuracy, a, a, n, resamples=200)
    assert same["diff"] == 0 and same["p"] == 1.0 and same["ci_low"] == same["ci_high"] == 0


def test_format_p():
    assert format_p(0.0004) == "p < 0.001" and format_p(0.004) == "p < 0.01"
    assert format_p(0.2) == "p = 0.20"


def preds_for(examples, right_every: int, labels):
    out = []
    for i, ex in enumerate(examples):
        lab = ex.output if i % right_every else next(x for x in labels if x != ex.output)
        out.append(Prediction(ex.id, lab, True))
    return out


def test_compare_rungs_on_the_same_items(classify_task):
    task = load_task(classify_task)
    exs = load_dataset(task).examples
    weak = preds_for(exs, 2, task.labels)  # wrong on every second item
    strong = [Prediction(e.id, e.output, True) for e in exs]
    c = compare(task, exs, weak, strong, "accuracy", names=("few-shot", "lora"))
    assert c["test"] == "McNemar" and c["significant"] and c["diff"] == pytest.approx(0.5)
    assert c["sentence"].startswith("lora beats few-shot by 50 points [")
    assert "McNemar p < 0.001" in c["sentence"]
    rows = compare_all(task, exs, {"a": weak, "b": weak, "c": strong}, "accuracy")
    assert [(r["a"], r["b"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert "no significant difference" in rows[0]["sentence"]
    flipped = find(rows, "c", "a")
    assert flipped["diff"] == pytest.approx(-0.5) and flipped["mcnemar"]["only_a"] > 0
    assert flipped["sentence"].startswith("c beats a by 50 points")


def test_compare_extract_uses_the_bootstrap_p(extract_task):
    task = load_task(extract_task)
    exs = load_dataset(task).examples
    good = [Prediction(e.id, e.output, True) for e in exs]
    bad = [Prediction(e.id, None, False, "no JSON object in the answer") for e in exs]
    c = compare(task, exs, bad, good, "field_f1", names=("zero-shot", "few-shot"))
    assert c["test"] == "paired bootstrap" and c["significant"] and c["diff"] == pytest.approx(1.0)
    assert "mcnemar" in c  # exact-match McNemar is still reported
