"""The climb end to end on the fake engine: selection on dev, scorecards, stopping, resume."""

from __future__ import annotations

import json

import pytest

from ladder.climb import ClimbOptions, climb
from ladder.dataset import load_dataset
from ladder.engines.fake import FakeEngine
from ladder.errors import StoreError
from ladder.store.db import Store
from ladder.task import load_task


def gold_by_input(task_dir):
    ds = load_dataset(load_task(task_dir))
    return {e.input: e.output for e in ds.examples}


def oracle(task_dir, wrong: dict[str, str] | None = None):
    """A scorer that knows every answer (optionally confusing some labels, whatever the prompt)."""
    gold = gold_by_input(task_dir)
    wrong = wrong or {}

    def scorer(req):
        query = req.prompt.rsplit("Input:\n", 1)[-1]
        label = next((lab for text, lab in gold.items() if query.startswith(text)), None)
        if label is None:  # a content-free calibration prompt: no preference
            return [-1.0 for _ in req.choices]
        label = wrong.get(label, label)
        return [0.0 if c.strip() == label else -5.0 for c in req.choices]

    return scorer


def run(task_dir, engine=None, **opts):
    def hook(ctx):
        if engine is not None:
            ctx.set_engine("fake", engine)

    return climb(task_dir, ClimbOptions(model="fake", **opts), ctx_hook=hook)


def test_climb_scores_every_rung_on_the_same_holdout(classify_task):
    res = run(classify_task, all_rungs=True)
    assert [c.rung for c in res.scorecards] == ["zero-shot", "few-shot"]
    store = Store()
    holdout_ids = {e.id for e in res.dataset.holdout}
    for card in res.scorecards:
        assert card.n == len(holdout_ids)
        stored = store.predictions(res.run_id, card.rung, card.variant, "holdout")
        assert set(stored) == holdout_ids
        # selection used dev only: the other variants never saw the hold-out
        for variant in card.selection:
            dev = store.predictions(res.run_id, card.rung, variant, "dev")
            assert set(dev) == {e.id for e in res.dataset.dev}
            if variant != card.variant:
                assert store.predictions(res.run_id, card.rung, variant, "holdout") == {}
        m = card.metrics["accuracy"]
        assert 0 <= m.ci_low <= m.value <= m.ci_high <= 1
        assert card.consistency is not None and card.tokens_in > 0
        assert card.confusion["labels"] == ["work", "personal", "spam"]
    run_json = json.loads((res.run_dir / "run.json").read_text())
    assert run_json["status"] == "finished" and len(run_json["scorecards"]) == 2
    assert run_json["provenance"]["packages"]["numpy"]


def test_climb_stops_at_the_bar_unless_all(classify_task):
    res = run(classify_task, engine=FakeEngine(scorer=oracle(classify_task)))
    assert [c.rung for c in res.scorecards] == ["zero-shot"] and res.bar_met_by == "zero-shot"
    assert res.scorecards[0].metrics["accuracy"].value == 1.0
    res_all = run(classify_task, engine=FakeEngine(scorer=oracle(classify_task)), all_rungs=True)
    assert [c.rung for c in res_all.scorecards] == ["zero-shot", "few-shot"]


def test_recurring_confusions_are_reported(classify_task):
    res = run(
        classify_task,
        engine=FakeEngine(scorer=oracle(classify_task, wrong={"spam": "work"})),
        rungs=["zero-shot"],
    )
    fa = res.scorecards[0].failure_analysis
    assert fa["variants"] == 3 and "spam → work" in fa["recurring"]
    assert fa["persistent_share"] > 0


class Interrupting(FakeEngine):
    def __init__(self, after: int, **kw):
        super().__init__(**kw)
        self.after = after

    def score(self, requests):
        if self.calls["score"] >= self.after:
            raise KeyboardInterrupt
        return super().score(requests)


def test_killed_climb_resumes_without_redoing_predictions(classify_task):
    full = run(classify_task, all_rungs=True)
    total = FakeEngine()
    run(classify_task, engine=total, all_rungs=True)
    with pytest.raises(KeyboardInterrupt):
        run(classify_task, engine=Interrupting(after=30), all_rungs=True)
    store = Store()
    interrupted = store.list_runs("tiny")[0]
    assert interrupted["status"] == "interrupted"
    stored_before = store.count_predictions(interrupted["id"])
    calibrated_before = calibrated_predictions(store, interrupted["id"])
    assert stored_before > 0
    again = FakeEngine()
    res = run(classify_task, engine=again, resume=True)
    assert res.run_id == interrupted["id"] and res.status == "finished"
    missing = store.count_predictions(res.run_id) - stored_before
    shared = calibrated_predictions(store, res.run_id) - calibrated_before
    # at most the missing predictions (a calibrated variant may reuse its twin's fresh scores),
    # +3 content-free prompts for each calibrated variant (zero-shot's, few-shot's random and
    # balanced) that had not run yet
    assert any(missing - shared <= again.calls["score"] - cf <= missing for cf in (0, 3, 6, 9))
    assert missing < total.calls["score"] - 3
    assert [c.metrics["accuracy"].value for c in res.scorecards] == [
        c.metrics["accuracy"].value for c in full.scorecards
    ]


CALIBRATED = (
    ("zero-shot", "instructions+format+calibrated"),
    ("few-shot", "random-4+calibrated"),
    ("few-shot", "balanced+calibrated"),
)


def calibrated_predictions(store, run_id) -> int:
    return sum(
        len(store.predictions(run_id, rung, variant, split))
        for rung, variant in CALIBRATED
        for split in ("dev", "holdout")
    )


def test_a_calibrated_variant_reuses_its_twins_label_scores(classify_task):
    """The calibrated variant shows its twin's very prompts: the engine scores each once, and
    the calibrated answers are the twin's log-probs minus the content-free bias, with the
    twin's timings (serving either costs the same)."""
    engine = FakeEngine(scorer=oracle(classify_task, wrong={"spam": "work"}))
    res = run(classify_task, engine=engine, all_rungs=True, schedule="exhaustive")
    store, n_dev = Store(), len(res.dataset.dev)
    for rung, variant in CALIBRATED:
        twin = variant.removesuffix("+calibrated")
        mine = store.predictions(res.run_id, rung, variant, "dev")
        theirs = store.predictions(res.run_id, rung, twin, "dev")
        assert len(mine) == len(theirs) == n_dev
        for i, p in mine.items():
            assert p.latency_s == theirs[i].latency_s and p.tokens_in == theirs[i].tokens_in
    # zero-shot: 2 prompt sets on dev, 3 content-free prompts, the winner's hold-out; few-shot:
    # random, knn and balanced on dev, 3 content-free prompts for each of 2 calibrated variants
    winners = sum(len(res.dataset.holdout) for _ in res.scorecards)
    assert engine.calls["score"] == (2 + 3) * n_dev + 3 * 3 + winners


def test_resume_refuses_a_changed_task(classify_task):
    with pytest.raises(KeyboardInterrupt):
        run(classify_task, engine=Interrupting(after=5))
    cfg = classify_task / "task.yaml"
    cfg.write_text(cfg.read_text().replace("Classify the email.", "Classify it."))
    with pytest.raises(StoreError, match=r"task\.yaml changed since run"):
        run(classify_task, resume=True)


def test_resume_survives_an_edited_price_or_volume(classify_task):
    with pytest.raises(KeyboardInterrupt):
        run(classify_task, engine=Interrupting(after=5))
    cfg = classify_task / "task.yaml"
    cfg.write_text(cfg.read_text() + "volume: {calls_per_day: 1234}\n")
    assert run(classify_task, resume=True).status == "finished"


def test_nothing_to_resume(classify_task):
    with pytest.raises(StoreError, match="no unfinished run"):
        run(classify_task, resume=True)


def test_extract_climb_with_generated_answers(extract_task):
    res = run(extract_task, all_rungs=True)
    card = res.scorecards[0]
    assert set(card.metrics) == {"field_f1", "exact_match", "validity"}
    assert card.fields and "customer.name" in card.fields
    assert card.consistency_method.startswith("2 sampled generations")
    repeats = Store().predictions(res.run_id, card.rung, card.variant, "holdout", repeat=None)
    assert {p.repeat for p in repeats.values()} == {0, 1, 2}


def test_an_answer_begun_on_the_next_line_is_not_cut_to_nothing(extract_task):
    """A base model often writes a line break after "Answer:"; the stop at the line break must
    not turn that into an empty answer: the row is asked again with the line break kept."""
    gold = gold_by_input(extract_task)

    def responder(req):
        query = req.prompt.rstrip("\n").rsplit("Input:\n", 1)[-1]
        out = next((v for k, v in gold.items() if query.startswith(k)), {})
        answer = " " + json.dumps(out)
        return answer if req.prompt.endswith("\n") else "\n" + answer

    engine = FakeEngine(responder=responder)
    res = run(extract_task, engine, rungs=["zero-shot"])
    card = res.scorecards[0]
    assert card.metrics["validity"].value == 1.0
    preds = Store().predictions(res.run_id, card.rung, card.variant, "holdout")
    # each answer took two calls: both prompts' tokens are counted
    first = next(iter(preds.values()))
    assert first.tokens_out > engine.count_tokens(first.raw)
