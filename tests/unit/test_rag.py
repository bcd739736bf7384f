"""The rag and long-context rungs on the fake engine: climbs, prompts, citations, scorecards,
freshness after an edit, skip reasons and bad input."""

from __future__ import annotations

import re

import pytest

from ladder.climb import ClimbOptions, climb
from ladder.engines.fake import FakeEngine
from ladder.errors import DataError, LadderError
from ladder.kinds import normalize_answer
from ladder.store.db import Store
from retrieval_helpers import QUESTIONS, HashEmbedder, write_qa_task

GOLD = {q: a for _, q, a, _ in QUESTIONS}
ALL_HOLDOUT = "split: {train: 0.0, dev: 0.0, holdout: 1.0}\n"


def last_block(prompt: str) -> tuple[dict[int, str], str]:
    """The passages and the question of the prompt's last Passages: block."""
    block = prompt.rsplit("Passages:\n", 1)[-1]
    question = block.rsplit("Question: ", 1)[-1].split("\n", 1)[0]
    found = re.findall(
        r"^\[(\d+)\] [^\n]*\n(.*?)(?=\n\n\[\d+\] |\n\nQuestion: )", block, re.M | re.S
    )
    return {int(n): text for n, text in found}, question


def oracle_rag(req) -> str:
    """Answers the gold answer when a passage holds it, citing that passage."""
    passages, question = last_block(req.prompt)
    gold = GOLD.get(question)
    for n, text in passages.items():
        if gold and normalize_answer(gold) in normalize_answer(text):
            return f" {gold} [{n}]"
    return " unanswerable"


def reader_rag(req) -> str:
    """Reads 'N days' from the best passage (shown last): what the documents say, right or wrong."""
    passages, _ = last_block(req.prompt)
    best = passages[max(passages)]
    m = re.search(r"\d+ days", best)
    return f" {m.group(0)} [{max(passages)}]" if m else " unanswerable"


def run(task_dir, responder=None, rungs=("rag",), real_embedder=False, **opts):
    def hook(ctx):
        ctx.set_engine("fake", FakeEngine(responder=responder))
        if not real_embedder:  # MiniLM when the CLI shares the index, else a hashing stand-in
            ctx._embedder = HashEmbedder()

    return climb(
        task_dir,
        ClimbOptions(model="fake", rungs=list(rungs), all_rungs=True, **opts),
        ctx_hook=hook,
    )


def test_rag_climb_measures_answers_retrieval_and_citations(tmp_path):
    task = write_qa_task(tmp_path / "t", extra_yaml="rungs: {rag: {k: [1, 2]}}\n")
    res = run(task, oracle_rag)
    card = res.scorecards[0]
    assert card.rung == "rag" and card.variant.endswith(("-k1", "-k2"))
    r = card.extras["retrieval"]
    for name in ("hit_rate", "mrr", "evidence_recall", "citation_correctness", "groundedness"):
        assert 0.0 <= r[name]["ci_low"] <= r[name]["value"] <= r[name]["ci_high"] <= 1.0
    # the oracle cites a passage holding the answer whenever one was retrieved
    assert r["citation_correctness"]["value"] == 1.0 and r["groundedness"]["value"] == 1.0
    assert card.metrics["exact_match"].value >= r["hit_rate"]["value"] - 0.34
    tuning = card.extras["retrieval_tuning"]
    assert (
        set(tuning["modes"]) == {"dense", "bm25", "hybrid"} and tuning["chosen"] in tuning["modes"]
    )
    assert card.extras["index"]["documents"] == 3 and card.extras["index"]["chunks"] > 3
    preds = Store().predictions(res.run_id, "rag", card.variant, "holdout")
    answered = [p for p in preds.values() if p.output != "unanswerable"]
    assert answered and all(p.extra["citations"] for p in answered)
    for p in preds.values():
        assert p.extra["retrieved"] and "scores" in p.extra


def test_rag_prompt_numbers_passages_best_last_after_a_worked_example(tmp_path):
    task = write_qa_task(tmp_path / "t", extra_yaml="rungs: {rag: {k: [2], modes: [bm25]}}\n")
    prompts = []

    def capture(req):
        prompts.append(req.prompt)
        return oracle_rag(req)

    run(task, capture)
    p = prompts[0]
    assert p.startswith("Answer from the shop's help pages.")
    assert "in square brackets" in p and "unanswerable" in p
    if p.count("Passages:") == 2:  # the worked example comes from train, with its cited answer
        demo = p.split("Passages:")[1]
        assert re.search(r"\nAnswer: .+ \[2\]\n", demo)
    passages, question = last_block(p)
    assert sorted(passages) == [1, 2] and p.endswith(f"Question: {question}\nAnswer:")


def test_freshness_an_edited_document_changes_the_answer_without_retraining(tmp_path, run_cli):
    task = write_qa_task(tmp_path / "t", extra_yaml=ALL_HOLDOUT + "rungs: {rag: {k: [1]}}\n")
    q1 = "How many days do I have to return a device?"

    def answer():
        res = run(task, reader_rag, real_embedder=True)
        preds = Store().predictions(res.run_id, "rag", res.scorecards[0].variant, "holdout")
        return next(p for p in preds.values() if p.example_id == "q1").output, res

    before, _ = answer()
    assert before == "45 days", q1
    doc = task / "docs" / "returns.md"
    doc.write_text(doc.read_text().replace("45 days", "60 days"))
    code, out, err = run_cli("ingest", task)
    assert code == 0, err
    assert "1 changed" in out and "2 unchanged" in out
    after, res = answer()
    assert after == "60 days"
    assert res.scorecards[0].extras["index"]["ingest"]["changed"] == 0  # `ladder ingest` did it


def test_long_context_puts_the_corpus_in_one_shared_prefix(tmp_path):
    task = write_qa_task(tmp_path / "t")
    prompts = []

    def capture(req):
        prompts.append(req.prompt)
        q = req.prompt.rsplit("Question: ", 1)[-1].split("\n")[0]
        return f" {GOLD.get(q) or 'unanswerable'}"

    res = run(task, capture, rungs=("long-context",))
    card = res.scorecards[0]
    assert card.rung == "long-context" and card.metrics["exact_match"].value == 1.0
    prefix = prompts[0].rsplit("Question: ", 1)[0]
    assert all(p.startswith(prefix) for p in prompts) and len(set(prompts)) == len(prompts)
    for doc_id in ("hub.html", "returns.md", "shipping.txt"):
        assert f'<document id="{doc_id}"' in prefix
    assert "var x=1" not in prefix and "| Speaker | 85 dB |" in prefix
    lc = card.extras["long_context"]
    assert lc["documents"] == 3 and lc["prefix_tokens"] == card.solution["prefix_tokens"] > 50


def test_long_context_over_budget_is_skipped_with_the_numbers(tmp_path):
    task = write_qa_task(tmp_path / "t", extra_yaml="rungs: {long-context: {max_tokens: 300}}\n")
    (task / "docs" / "manual.md").write_text("# Manual\n\n" + "Press the button firmly. " * 80)
    res = run(task, rungs=("long-context",))
    reason = res.skipped["long-context"]
    assert not res.scorecards
    assert re.search(
        r"4 documents\) is [\d,]+ tokens in the prompt, over the budget of \d+", reason
    )
    assert "max_tokens 300" in reason


def test_retrieval_rungs_skip_tasks_they_cannot_serve(tmp_path, classify_task):
    task = write_qa_task(tmp_path / "t")
    (task / "task.yaml").write_text(
        (task / "task.yaml").read_text().replace("documents: docs\n", "")
    )
    res = run(task, rungs=("rag", "long-context"))
    assert res.skipped == {
        "rag": "the task has no `documents:` folder for rag to draw on",
        "long-context": "the task has no `documents:` folder for long-context to draw on",
    }
    (classify_task / "docs").mkdir()
    (classify_task / "docs" / "a.md").write_text("# A\n\ntext")
    with (classify_task / "task.yaml").open("a") as f:
        f.write("documents: docs\n")
    res = run(classify_task, rungs=("rag",))
    assert "kind qa" in res.skipped["rag"] and "classify" in res.skipped["rag"]


def test_evidence_naming_a_missing_document_is_an_error_naming_the_row(tmp_path, run_cli):
    questions = [*QUESTIONS[:4], ("q9", "Where is it?", "here", ["retruns.md"])]
    task = write_qa_task(tmp_path / "t", questions=questions)
    with pytest.raises(DataError) as exc:
        run(task)
    msg = str(exc.value)
    assert "questions.jsonl" in msg and "line/row 5" in msg and "'retruns.md'" in msg
    assert "Did you mean 'returns.md'" in msg
    code, _, err = run_cli("ingest", task, "--runs", tmp_path / "cli-runs")
    assert code == 2 and "retruns.md" in err and "line/row 5" in err


def test_resuming_after_the_documents_changed_is_refused(tmp_path):
    task = write_qa_task(tmp_path / "t", extra_yaml="rungs: {rag: {k: [1]}}\n")

    def interrupt(req):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(task, interrupt)
    (task / "docs" / "returns.md").write_text("# Returns\n\nNow 90 days.")
    with pytest.raises(LadderError, match="documents changed since run"):
        run(task, oracle_rag, resume=True)


def test_bad_rag_settings_name_the_line(tmp_path, run_cli):
    task = write_qa_task(
        tmp_path / "t", extra_yaml="rungs:\n  rag: {chunk_size: 100, chunk_overlap: 200}\n"
    )
    code, _, err = run_cli("ingest", task)
    assert code == 2 and "chunk_overlap must be smaller than chunk_size" in err


TINY_DOCS = {
    "a.md": "# alpha\n\nthe invoice is for the order and the refund is today .",
    "b.md": "# beta\n\nthe meeting is on friday with the family and a friend .",
}
TINY_QUESTIONS = [
    ("t1", "the invoice is for ?", "the order", ["a.md"]),
    ("t2", "the meeting is on ?", "friday", ["b.md"]),
    ("t3", "the refund is ?", "today", ["a.md"]),
    ("t4", "the meeting is with ?", "the family", ["b.md"]),
]


def test_long_context_on_a_real_engine_reuses_the_corpus_cache(tmp_path):
    """Tiny Gemma 3: the corpus prefix is computed once and answers equal a cache-free engine's."""
    pytest.importorskip("torch")
    from ladder.engines.hf import HFEngine
    from tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", sliding_window=16)
    task = write_qa_task(
        tmp_path / "t", TINY_DOCS, TINY_QUESTIONS, ALL_HOLDOUT, eval_yaml=", max_new_tokens: 4"
    )
    outputs, engines = {}, {}
    for cached in (True, False):
        engines[cached] = HFEngine("tiny", str(model), max_batch=2, prefix_cache=cached)

        def hook(ctx, eng=engines[cached]):
            ctx.set_engine("fake", eng)

        res = climb(
            task,
            ClimbOptions(
                model="fake", rungs=["long-context"], runs_dir=str(tmp_path / f"r{cached}")
            ),
            ctx_hook=hook,
        )
        card = res.scorecards[0]
        preds = Store(tmp_path / f"r{cached}").predictions(
            res.run_id, card.rung, card.variant, "holdout"
        )
        outputs[cached] = {k: p.raw for k, p in preds.items()}
        assert card.solution["prefix_tokens"] > 48 and card.engine["context_length"] == 512
    assert outputs[True] == outputs[False]
    assert (
        engines[True].stats["prefix_tokens_saved"] > 0
        and engines[False].stats["prefix_tokens_saved"] == 0
    )


def test_prompting_rungs_climb_qa_tasks_too(tmp_path):
    task = write_qa_task(
        tmp_path / "t",
        extra_yaml="split: {train: 0.6, dev: 0.0, holdout: 0.4}\n"
        "rungs: {few-shot: {k: [2], selection: [random]}}\n",
    )
    prompts = []

    def capture(req):
        prompts.append(req.prompt)
        return " 45 days"

    res = run(task, capture, rungs=("zero-shot", "few-shot", "rag", "long-context"))
    assert [c.rung for c in res.scorecards] == ["zero-shot", "few-shot", "rag", "long-context"]
    for card in res.scorecards:
        assert set(card.metrics) == {"token_f1", "exact_match", "validity"}
        assert card.primary_metric == "token_f1" and card.validity == 1.0
    assert any("answer: unanswerable" in p for p in prompts)  # the qa answer format


def test_a_rag_answer_begun_on_the_next_line_is_not_cut_to_nothing(tmp_path):
    """The line-break stop must not empty an answer a base model starts on the next line."""

    def next_line(req):
        answer = oracle_rag(req)
        return answer if req.prompt.endswith("\n") else "\n" + answer

    task = write_qa_task(tmp_path / "t", extra_yaml="rungs: {rag: {k: [2]}}\n")
    card = run(task, next_line).scorecards[0]
    plain = run(write_qa_task(tmp_path / "u", extra_yaml="rungs: {rag: {k: [2]}}\n"), oracle_rag)
    assert card.metrics["exact_match"].value == plain.scorecards[0].metrics["exact_match"].value
    assert card.extras["retrieval"]["citation_correctness"]["value"] == 1.0
