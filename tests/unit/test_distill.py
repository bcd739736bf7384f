"""The distill rung: teachers of every kind label a pool that never holds hold-out inputs; only
valid answers train the student; the scorecard carries the teacher's cost and agreement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

import lora_tasks
from conftest import write_extract_task
from ladder.climb import ClimbOptions, climb
from ladder.dataset import load_dataset
from ladder.engines.fake import FakeEngine
from ladder.store.db import Store
from ladder.task import load_task
from lora_tasks import model_yaml, rows, task_dir

one_thread, tiny = lora_tasks.one_thread, lora_tasks.tiny  # shared fixtures

DISTILL = "  distill: {{teacher: {teacher}, epochs: 2, lr: 0.01, min_examples: 4, batch_size: 4}}\n"


def oracle(task: Path) -> FakeEngine:
    """A teacher that knows every gold label (it reads the input after the prompt's cue)."""
    gold = {e.input: e.output for e in load_dataset(load_task(task)).examples}

    def scorer(req):
        text = req.prompt.rsplit("Input:\n", 1)[-1].rsplit("\nAnswer:", 1)[0]
        label = gold.get(text)
        return [0.0 if c.strip() == label else -5.0 for c in req.choices]

    return FakeEngine("fake", scorer=scorer)


def run(task: Path, engine: FakeEngine | None = None, **opts):
    def hook(ctx):
        if engine is not None:
            ctx.set_engine("fake", engine)

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
