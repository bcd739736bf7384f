"""The distill rung: teachers of every kind label a pool that never holds hold-out inputs; only
valid answers train the student; the scorecard carries the teacher's cost and agreement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

import lora_tasks
from conftest import write_classify_task, write_extract_task
from ladder.climb import ClimbOptions, climb
from ladder.dataset import load_dataset
from ladder.engines.fake import FakeEngine
from ladder.store.db import Store
from ladder.task import load_task
from lora_tasks import model_yaml, rows, task_dir

one_thread, tiny = lora_tasks.one_thread, lora_tasks.tiny  # shared fixtures

DISTILL = "  distill: {{teacher: {teacher}, epochs: 2, lr: 0.01, min_examples: 4, batch_size: 4}}\n"


def oracle(task: Path, name: str = "fake") -> FakeEngine:
    """A teacher that knows every gold label (it reads the input after the prompt's cue)."""
    gold = {e.input: e.output for e in load_dataset(load_task(task)).examples}

    def scorer(req):
        text = req.prompt.rsplit("Input:\n", 1)[-1].rsplit("\nAnswer:", 1)[0]
        label = gold.get(text)
        return [0.0 if c.strip() == label else -5.0 for c in req.choices]

    return FakeEngine(name, scorer=scorer)


def run(task: Path, engine: FakeEngine | None = None, **opts):
    def hook(ctx):
        if engine is not None:
            ctx.set_engine(engine.model, engine)

    return climb(task, ClimbOptions(**{"rungs": ["distill"], **opts}), ctx_hook=hook)


def test_a_perfect_teacher_labels_the_train_inputs(tmp_path, tiny):
    task = task_dir(tmp_path / "t", tiny, extra=DISTILL.format(teacher="fake"))
    res = run(task, oracle(task))
    card = res.scorecards[0]
    t = card.extras["teacher"]
    n = len(res.dataset.train)
    assert t["model"] == "fake" and t["calls"] == n and t["kept"] == n and t["dropped"] == 0
    assert t["tokens_in"] > 0 and t["pool"] == "train inputs, labels hidden"
    assert card.extras["teacher_holdout"]["accuracy"] == 1.0
    agreement = card.extras["agreement_with_teacher"]
    assert agreement == pytest.approx(card.metrics["accuracy"].value)  # the teacher is always right
    assert card.rung == "distill" and card.model == "tiny+distill"
    assert {"seconds", "tokens_per_s", "examples"} <= set(card.extras["training"])
    pool = Store().predictions(res.run_id, "distill", "teacher:fake", "pool")
    assert set(pool) == {e.id for e in res.dataset.train}
    meta = json.loads((Path(card.extras["adapter"]["path"]) / "ladder-adapter.json").read_text())
    assert meta["rung"] == "distill" and meta["data"]["source"].startswith("teacher: fake")


def test_the_pool_never_holds_holdout_or_dev_inputs(tmp_path, tiny):
    task = task_dir(
        tmp_path / "t",
        tiny,
        extra=DISTILL.format(teacher="fake")
        + "unlabeled: {path: pool.jsonl, id: id, input: text}\n",
    )
    ds = load_dataset(load_task(task))
    leaked = [e.input for e in ds.holdout[:3] + ds.dev[:2]]
    fresh = [text for text, _ in rows(40, seed=7)]
    with (task / "pool.jsonl").open("w") as f:
        for i, text in enumerate(fresh + leaked):
            f.write(json.dumps({"id": f"u{i}", "text": text}) + "\n")
    res = run(task, oracle(task))
    t = res.scorecards[0].extras["teacher"]
    assert t["removed_overlap"] == 5 and t["calls"] == 40 and t["pool"] == "unlabeled: pool.jsonl"
    labelled = Store().predictions(res.run_id, "distill", "teacher:fake", "pool")
    assert not {f"u{40 + i}" for i in range(5)} & set(labelled)


def test_only_valid_teacher_answers_train_the_student(tmp_path, tiny):
    distill = "{teacher: fake, epochs: 1, min_examples: 2, data_curve: null, forgetting: false}"
    task = write_extract_task(
        tmp_path / "x", extra_yaml=f"{model_yaml(tiny)}rungs:\n  distill: {distill}\n"
    )
    good = json.dumps({"category": "billing", "order_id": None, "customer": {"name": None}})

    def responder(req):  # half the answers are not JSON, some break the schema
        h = sum(map(ord, req.prompt))
        return [good, "no idea", '{"category": "weather"}'][h % 3]

    res = run(task, FakeEngine("fake", responder=responder))
    t = res.scorecards[0].extras["teacher"]
    assert t["dropped"] > 0 and t["kept"] > 0 and t["kept"] + t["dropped"] == t["calls"]
    assert t["tokens_out"] > 0


def test_a_rung_of_the_run_and_an_adapter_folder_can_teach(tmp_path, tiny):
    task = task_dir(tmp_path / "t", tiny, extra=DISTILL.format(teacher="zero-shot"))
    res = run(task, rungs=["zero-shot", "distill"], all_rungs=True)
    zero, student = res.scorecards
    assert student.extras["teacher"]["solution"] == f"zero-shot ({zero.variant})"
    pool = Store().predictions(res.run_id, "zero-shot", zero.variant, "pool")
    assert len(pool) == student.extras["teacher"]["calls"]
    adapter = student.extras["adapter"]["path"]
    task2 = task_dir(tmp_path / "t2", tiny, extra=DISTILL.format(teacher=adapter))
    res2 = run(task2)
    t = res2.scorecards[0].extras["teacher"]
    assert t["solution"] == f"adapter {adapter}" and t["model"] == "tiny+teacher"


@pytest.mark.parametrize(
    ("teacher", "parts"),
    [
        ("no-such-model", ["model 'no-such-model' is not registered"]),
        ("distill", ["cannot be distill itself"]),
    ],
)
def test_a_bad_teacher_is_one_clear_paragraph(tmp_path, tiny, run_cli, teacher, parts):
    task = task_dir(tmp_path / "t", tiny)
    code, out, err = run_cli("train", task, "--rung", "distill", "--teacher", teacher)
    assert code == 2 and "Traceback" not in out + err
    text = " ".join((out + err).split())
    assert all(p in text for p in parts), text


# ---------------------------------------------------------------- the default teacher

KNOBS = "epochs: 1, lr: 0.01, min_examples: 4, batch_size: 4, forgetting: false"
AUTO = f"  distill: {{{KNOBS}}}\n"  # no teacher: the default
QUICK_LORA = (
    "{epochs: 1, lr: 0.01, min_examples: 8, batch_size: 4, data_curve: null, forgetting: false}"
)


def two_models(root: Path, tiny: Path, others=("big",), lora: str = QUICK_LORA) -> Path:
    """The student's base `tiny` plus other models on the fake engine, the default teacher."""
    entries = ", ".join(
        [f"tiny: {{engine: hf, path: '{tiny}', options: {{threads: 1}}}}"]
        + [f"{m}: {{engine: fake}}" for m in others]
    )
    yaml = (
        f"model: tiny\nmodels: {{{entries}}}\nrungs:\n  lora: {lora}\n"
        f"  few-shot: {{selection: [random]}}\n{AUTO}"
    )
    return write_classify_task(root, rows=rows(), extra_yaml=yaml)


def wrong(task: Path, name: str) -> FakeEngine:
    """A teacher that never gives the gold label."""
    gold = oracle(task).scorer

    def scorer(req):
        return [-x for x in gold(req)]

    return FakeEngine(name, scorer=scorer)


@pytest.mark.parametrize(
    ("others", "parts"),
    [
        ((), ["no teacher better than the student", "student's own base model (tiny)",
              "add one under `models:` or set rungs.distill.teacher"]),
        (("big", "huge"), ["2 models other than the student's base (tiny)", "(big, huge)",
                           "rungs.distill.teacher: NAME"]),
    ],
)  # fmt: skip
def test_without_one_other_model_the_default_teacher_skips_saying_why(
    tmp_path, tiny, run_cli, others, parts
):
    task = two_models(tmp_path / "t", tiny, others)
    code, out, err = run_cli("climb", task, "--rungs", "zero-shot,distill", "--all")
    assert code == 0, out + err
    text = " ".join(out.split())
    assert "distill skipped: " in text and all(p in text for p in parts), text
    run = Store().list_runs("tiny")[0]
    row = {r["rung"]: r for r in Store().rungs(run["id"])}["distill"]
    assert row["status"] == "skipped" and all(p in row["reason"] for p in parts)
    assert run["status"] == "finished" and [c["rung"] for c in Store().scorecards(run["id"])] == [
        "zero-shot"
    ]
    plan = json.loads((Path(run["run_dir"]) / "plan.json").read_text())
    assert "distill" not in plan["rungs"]  # not budgeted: it is known to skip
    code, out, err = run_cli("train", task, "--rung", "distill")
    text = " ".join((out + err).split())
    assert code == 2 and "Traceback" not in text and "skipped, nothing trained" in text, text
    assert all(p in text for p in parts), text


def test_the_one_other_configured_model_teaches_with_its_best_prompt_on_dev(tmp_path, tiny):
    task = two_models(tmp_path / "t", tiny)
    res = run(task, oracle(task, "big"), rungs=["lora", "distill"], all_rungs=True)
    lora, student = res.scorecards
    t = student.extras["teacher"]
    variant = t["solution"].removeprefix("big (").removesuffix(")")
    assert t["model"] == "big" and t["solution"] == f"big ({variant})"
    assert student.extras["teacher_holdout"]["accuracy"] == 1.0
    chosen = next(s for s in lora.selection.values() if s["chosen"])
    assert t["check"] == {
        "compared": True,
        "metric": "accuracy",
        "teacher_dev": 1.0,
        "lora_dev": chosen["accuracy"],
    }
    store = Store()
    # the teacher's dev selection is stored as distill's, apart from the prompting rungs'
    assert len(store.predictions(res.run_id, "distill", variant, "dev")) == len(res.dataset.dev)
    assert not store.predictions(res.run_id, "zero-shot", variant, "dev")
    assert len(store.predictions(res.run_id, "distill", variant, "pool")) == t["calls"]


def test_a_teacher_no_better_than_lora_on_dev_is_skipped_with_both_figures(tmp_path, tiny):
    task = two_models(tmp_path / "t", tiny)
    events = []
    teacher = wrong(task, "big")

    def hook(ctx):
        ctx.set_engine("big", teacher)

    opts = {"rungs": ["lora", "distill"], "all_rungs": True}
    res = climb(
        task, ClimbOptions(**opts), ctx_hook=hook, events=lambda e, **d: events.append((e, d))
    )
    assert res.status == "finished" and [c.rung for c in res.scorecards] == ["lora"]
    lora_dev = next(s for s in res.scorecards[0].selection.values() if s["chosen"])["accuracy"]
    reason = res.skipped["distill"]
    assert (
        reason.startswith("teacher big (")
        and (
            f"scores 0.00 accuracy on dev, not above lora's {lora_dev:.2f} on the same "
            f"{len(res.dataset.dev)} dev items (the student trained on gold labels)"
        )
        in reason
    ), reason
    assert ("rung_skip", {"rung": "distill", "reason": reason}) in events
    store = Store()
    row = {r["rung"]: r for r in store.rungs(res.run_id)}["distill"]
    assert row["status"] == "skipped" and row["reason"] == reason
    assert store.get_run(res.run_id)["status"] == "finished"
    assert not (res.run_dir / "distill").exists()  # nothing labelled, nothing trained
    assert not any(
        store.predictions(res.run_id, "distill", v, "pool") for v in res.scorecards[0].selection
    )
    # a resumed run decides again, from the stored dev answers: the teacher answers nothing
    teacher.calls = {"generate": 0, "score": 0}
    again = climb(task, ClimbOptions(**opts, run_id=res.run_id), ctx_hook=hook)
    assert again.skipped == {"distill": reason} and again.status == "finished"
    assert teacher.calls == {"generate": 0, "score": 0}


def test_prompting_rungs_on_another_model_teach_as_they_were_prepared(tmp_path, tiny):
    """`model: fake` for prompting, the student on tiny: the best prompting rung teaches."""
    yaml = (
        f"model: fake\nmodels: {{tiny: {{engine: hf, path: '{tiny}', options: {{threads: 1}}}}}}\n"
        f"rungs:\n  few-shot: {{selection: [random, balanced]}}\n"
        f"  distill: {{model: tiny, {KNOBS}}}\n"
    )
    task = write_classify_task(tmp_path / "t", rows=rows(), extra_yaml=yaml)
    teacher = oracle(task)
    before = {}

    def hook(ctx):
        ctx.set_engine("fake", teacher)

    def events(event, **data):
        if event == "rung_start" and data["rung"] == "distill":
            before.update(teacher.calls)

    res = climb(
        task,
        ClimbOptions(rungs=["zero-shot", "few-shot", "distill"], all_rungs=True),
        ctx_hook=hook,
        events=events,
    )
    zero, few, student = res.scorecards
    t = student.extras["teacher"]
    assert t["solution"] == f"zero-shot ({zero.variant})"  # a tie on dev goes to the cheaper rung
    assert t["check"]["compared"] is False and "no lora scorecard" in t["check"]["why"]
    assert student.model == "tiny+distill"
    n = len(Store().predictions(res.run_id, "zero-shot", zero.variant, "pool"))
    assert n == t["calls"] == len(res.dataset.train)
    # the prompting rungs' dev and hold-out answers were reused: the teacher only labelled the pool
    assert teacher.calls["score"] - before["score"] == t["calls"]
