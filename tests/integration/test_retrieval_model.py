"""The retrieval rungs with the real embedded model and the real MiniLM embedder (slow; CI runs
these): freshness end to end, the corpus prefix cache, and a slice of examples/product-qa."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ladder.climb import ClimbOptions, climb
from ladder.store.db import Store
from retrieval_helpers import write_qa_task

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("embedded_model")]
ROOT = Path(__file__).resolve().parents[2]
ALL_HOLDOUT = "split: {train: 0.0, dev: 0.0, holdout: 1.0}\n"
DOCS = {
    "returns.md": "# Returns policy\n\nYou can return any device within 45 days of delivery "
    "for a full refund.",
    "shipping.md": "# Shipping\n\nStandard shipping costs $5.99 and takes 3 to 5 business days.",
    "warranty.md": "# Warranty\n\nEvery device comes with a 2-year limited warranty.",
}
QUESTIONS = [
    ("q1", "How many days do I have to return a device?", "45 days", ["returns.md"]),
    ("q2", "How much does standard shipping cost?", "$5.99", ["shipping.md"]),
]


def rag_answers(run_cli, task) -> dict[str, str]:
    code, out, err = run_cli("eval", task, "--rung", "rag", "--variant", "dense-k1")
    assert code == 0, err
    run = Store().list_runs("tiny-qa")[0]
    return {
        k: p.raw for k, p in Store().predictions(run["id"], "rag", "dense-k1", "holdout").items()
    }


def test_freshness_edit_reingest_ask_with_no_retraining(tmp_path, run_cli):
    task = write_qa_task(
        tmp_path / "t", DOCS, QUESTIONS, ALL_HOLDOUT, eval_yaml=", max_new_tokens: 8"
    )
    code, out, err = run_cli("ingest", task)
    assert code == 0 and "3 added" in out, err
    before = rag_answers(run_cli, task)
    assert "45" in before["q1"] and "60" not in before["q1"]
    doc = task / "docs" / "returns.md"
    doc.write_text(doc.read_text().replace("45 days", "60 days"))
    code, out, err = run_cli("ingest", task)
    assert code == 0 and "1 changed" in out and "2 unchanged" in out and "1 embedded now" in out
    after = rag_answers(run_cli, task)
    assert "60" in after["q1"] and "45" not in after["q1"]


def test_long_context_serves_questions_from_the_corpus_cache(tmp_path):
    task = write_qa_task(
        tmp_path / "t", DOCS, QUESTIONS, ALL_HOLDOUT, eval_yaml=", max_new_tokens: 8"
    )
    res = climb(task, ClimbOptions(rungs=["long-context"]))
    card = res.scorecards[0]
    lc = card.extras["long_context"]
    assert lc["questions_served_from_cache"] == 2
    assert lc["cached_tokens_mean"] > lc["prefix_tokens"] * 0.9
    assert card.engine["engine"] == "hf" and card.engine["context_length"] == 32768
    assert card.validity > 0


def product_qa_copy(tmp_path, old: str, new: str) -> Path:
    copy = tmp_path / "product-qa"
    shutil.copytree(ROOT / "examples/product-qa", copy)
    yaml = (copy / "task.yaml").read_text()
    assert old in yaml
    (copy / "task.yaml").write_text(yaml.replace(old, new))
    return copy


def test_product_qa_rag_slice(tmp_path, run_cli):
    # the bundled task as shipped, less the sampled repeats (9 of the 12 generations here)
    task = product_qa_copy(
        tmp_path, "eval: {repeats: 3, consistency_sample: 8}", "eval: {repeats: 0}"
    )
    code, out, err = run_cli(
        "eval", task, "--rung", "rag", "--variant", "hybrid-k3", "--limit", "3"
    )
    assert code == 0, err
    run = Store().list_runs("product-qa")[0]
    card = Store().scorecards(run["id"])[0]
    assert card["n"] == 3 and card["variant"] == "hybrid-k3"
    assert "retrieval (hybrid): hit@3" in " ".join(out.split())
    assert card["extras"]["index"]["documents"] == 40 and card["extras"]["index"]["chunks"] > 300
    r = card["extras"]["retrieval"]
    assert r["hit_rate"]["n"] >= 1 and 0.0 <= r["mrr"]["value"] <= 1.0
    assert 0.0 <= card["metrics"]["token_f1"]["value"] <= 1.0
    preds = Store().predictions(run["id"], "rag", "hybrid-k3", "holdout")
    assert all(len(p.extra["retrieved"]) == 3 for p in preds.values())


def test_product_qa_corpus_over_a_small_budget_is_skipped_with_numbers(tmp_path, run_cli):
    copy = product_qa_copy(tmp_path, "max_tokens: 32768", "max_tokens: 4096")
    code, out, err = run_cli("eval", copy, "--rung", "long-context")
    assert code == 0, err
    text = " ".join(out.split())
    assert "long-context skipped: the corpus (40 documents) is" in text
    assert "over the budget of" in text and "max_tokens 4,096" in text
