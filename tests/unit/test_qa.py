"""The qa kind: SQuAD-style normalisation, exact match and token F1, unanswerable questions;
and the per-question retrieval scores made against gold evidence."""

from __future__ import annotations

import numpy as np
import pytest

from ladder.dataset import Example
from ladder.kinds import QA, UNANSWERABLE, Parsed, normalize_answer, token_f1
from ladder.retrieval import evidence as ev
from ladder.rungs.answering import split_citations

kind = QA()

NORMALIZE = [
    ("The 45-day window.", "45day window"),
    ("  $4.99 per   month ", "499 per month"),
    ("Mon–Sat, 9:00 to 17:30", "monsat 900 to 1730"),
    ("An **Events list** view", "events list view"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZE)
def test_normalize(text, expected):
    assert normalize_answer(text) == expected


F1 = [
    ("45 days", "45 days", 1.0),
    ("45 days from delivery", "45 days", 2 * (1 * 0.5) / 1.5),
    ("$4.99 per month", "the $4.99", 2 * (1 * (1 / 3)) / (1 + 1 / 3)),
    ("45 days", "30 days", 0.5),
    ("2026-04-11", "2026-04-12", 0.0),  # a date is one token: no partial credit for a wrong day
    (UNANSWERABLE, UNANSWERABLE, 1.0),
    (UNANSWERABLE, "45 days", 0.0),
    ("45 days", UNANSWERABLE, 0.0),
]


@pytest.mark.parametrize(("gold", "pred", "f1"), F1)
def test_token_f1(gold, pred, f1):
    assert token_f1(gold, pred) == pytest.approx(f1)


def test_gold_answers():
    assert kind.parse_gold(None, None) == UNANSWERABLE
    assert kind.parse_gold(" Unanswerable ", None) == UNANSWERABLE
    assert kind.parse_gold(["10 people", "ten"], None) == ["10 people", "ten"]
    with pytest.raises(ValueError, match="null for a question the documents do not answer"):
        kind.parse_gold("  ", None)


PARSE = [
    (" 45 days\nQuestion: next", "45 days", True),
    ("Answer: 45 days", "45 days", True),
    (" Unanswerable.", UNANSWERABLE, True),
    (" not stated in the documents", UNANSWERABLE, True),
    (" I don't know", UNANSWERABLE, True),
    ("   \n", None, False),
    (" ...", None, False),
]


@pytest.mark.parametrize(("text", "output", "valid"), PARSE)
def test_parse_prediction(text, output, valid):
    p = kind.parse_prediction(text, None)
    assert (p.output, p.valid) == (output, valid)


def test_table_and_error_categories():
    golds = ["45 days", ["10 people", "ten"], UNANSWERABLE, UNANSWERABLE, "85 dB"]
    preds = [
        Parsed("45 days", True),
        Parsed("Ten", True),
        Parsed(UNANSWERABLE, True),
        Parsed("$5", True),
        Parsed(None, False, "empty answer"),
    ]
    t = kind.table(golds, preds, None)
    assert t["exact"].tolist() == [1, 1, 1, 0, 0] and t["valid"].tolist() == [1, 1, 1, 1, 0]
    assert np.allclose(t["f1"], [1, 1, 1, 0, 0])
    cats = [kind.error_categories(g, p, None) for g, p in zip(golds, preds)]
    assert cats == [[], [], [], ["answered an unanswerable question"], ["empty answer"]]
    assert kind.error_categories("45 days", Parsed("30 days", True), None) == [
        "partly right answer"
    ]
    assert kind.error_categories("45 days", Parsed(UNANSWERABLE, True), None) == [
        "said unanswerable, but the documents answer it"
    ]


def test_split_citations():
    assert split_citations(" 90 dB [2]\nmore") == ("90 dB", [2])
    assert split_citations(" $179 [1], 10% off [3, 1].") == ("$179 , 10% off", [1, 3])
    assert split_citations(" unanswerable") == ("unanswerable", [])


def ex(output, evidence=(), quotes=None) -> Example:
    meta = {"evidence": list(evidence)}
    if quotes:
        meta["evidence_quote"] = quotes
    return Example("q", "question?", output, meta)


def test_retrieval_scores():
    hits = [("a.md", "nothing here"), ("b.md", "Refunds take 2 business days."), ("c.md", "x")]
    s = ev.retrieval_scores(ex("2 business days", ["b.md", "z.md"], "take 2 business days"), hits)
    assert s == {"hit": 1.0, "rr": 0.5, "recall": 0.5, "passage_hit": 1.0}
    assert ev.retrieval_scores(ex("x", ["z.md"]), hits)["hit"] == 0.0
    assert ev.retrieval_scores(ex(UNANSWERABLE), hits) is None  # no gold: not scored


def test_citation_scores():
    e = ex("45 days", ["r.md"], "within 45 days of delivery")
    good = ev.citation_scores(e, "45 days", ["Return it within 45 days of delivery."])
    assert good == {"cited": 1.0, "grounded": 1.0, "citation_correct": 1.0}
    wrong = ev.citation_scores(e, "45 days", ["Shipping is free over $49."])
    assert wrong["citation_correct"] == 0.0 and wrong["grounded"] == 0.0
    uncited = ev.citation_scores(e, "45 days sometimes", [])
    assert uncited == {"cited": 0.0, "grounded": 0.0, "citation_correct": 0.0}
    half = ev.citation_scores(e, "45 weeks", ["within 45 days"])
    assert half["grounded"] == 0.5
    assert ev.citation_scores(e, UNANSWERABLE, []) == {}  # an abstention cites nothing
    assert "citation_correct" not in ev.citation_scores(ex(UNANSWERABLE), "5 days", ["5 days"])


def test_summary_has_intervals_over_the_items_that_apply():
    items = [{"hit": 1.0, "rr": 1.0}, {"hit": 0.0, "rr": 0.0}, {}, {"hit": 1.0, "rr": 0.5}]
    s = ev.summarize(items, resamples=200)
    assert s["hit_rate"]["value"] == pytest.approx(2 / 3, abs=1e-4) and s["hit_rate"]["n"] == 3
    assert s["mrr"]["ci_low"] <= s["mrr"]["value"] <= s["mrr"]["ci_high"]
    assert "groundedness" not in s


def test_scores_by_question_kind(tmp_path):
    from ladder.dataset import Prediction
    from ladder.rungs.answering import by_category
    from ladder.task import load_task
    from retrieval_helpers import write_qa_task

    task = load_task(write_qa_task(tmp_path / "t"))
    exs = [
        Example("a", "q?", "45 days", {"kind": "fact"}),
        Example("b", "q?", "30 days", {"kind": "changed-historical"}),
        Example("c", "q?", "60 days", {"kind": "fact"}),
        Example("d", "q?", "x", {}),
    ]
    preds = [Prediction(e.id, out, True) for e, out in zip(exs, ["45 days", "45 days", "1", "x"])]
    assert by_category(task, exs, preds) == {
        "changed-historical": {"n": 1, "token_f1": 0.5, "exact_match": 0.0},
        "fact": {"n": 2, "token_f1": 0.5, "exact_match": 0.5},
    }
