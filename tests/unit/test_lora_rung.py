"""The lora rung in a climb, on a tiny random Gemma 3: same hold-out, short prompt, adapter
artifacts with metadata, forgetting and data curve, resume, merge, and `ladder train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

import lora_tasks
from conftest import write_extract_task
from ladder.climb import ClimbOptions, climb
from ladder.store.db import Store
from ladder.training.adapters import META_FILE, load_adapter
from lora_tasks import LORA, model_yaml, task_dir

one_thread, tiny = lora_tasks.one_thread, lora_tasks.tiny  # shared fixtures


class Log:
    """A progress display that records log lines and can interrupt a named task."""

    def __init__(self, kill: str | None = None):
        self.lines, self.kill = [], kill

    def task(self, description, total=None):
        import contextlib

        if self.kill and self.kill in description:
            raise KeyboardInterrupt
        from ladder.progress import _NullHandle

        return contextlib.nullcontext(_NullHandle())

    def log(self, message):
        self.lines.append(message)


def test_lora_is_scored_on_the_same_holdout_with_a_short_prompt(tmp_path, tiny):
    task = task_dir(tmp_path / "t", tiny, extra="  few-shot: {selection: [random]}\n")
    log = Log()
    res = climb(task, ClimbOptions(rungs=["few-shot", "lora"], all_rungs=True), progress=log)
    few, lora = res.scorecards
    assert lora.rung == "lora" and lora.model == "tiny+lora" and lora.n == few.n
    assert lora.tokens_in < few.tokens_in / 2  # no demonstrations, no label list
    assert lora.validity == 1.0 and lora.engine["adapter"].endswith("lora/adapter")
    store = Store()
    ids = {e.id for e in res.dataset.holdout}
    assert set(store.predictions(res.run_id, "lora", lora.variant, "holdout")) == ids
    t = lora.extras["training"]
    assert {"seconds", "device", "examples", "tokens", "epochs", "tokens_per_s"} <= set(t)
    assert t["device"] == "cpu" and t["examples"] == len(res.dataset.train) and t["epochs"] >= 1
    assert t["history"][-1]["train_loss"] < t["history"][0]["train_loss"]
    f = lora.extras["forgetting"]
    assert set(f) >= {"adjacent", "base_loss", "adapter_loss", "relative_increase"}
    assert f["relative_increase"] == pytest.approx(
        (f["adapter_loss"] - f["base_loss"]) / f["base_loss"], abs=1e-3
    )
    curve = lora.extras["data_curve"]
    assert [p["examples"] for p in curve] == [12, len(res.dataset.train)]
    assert all(
        p["metric"] == "accuracy" and p["ci_low"] <= p["value"] <= p["ci_high"] for p in curve
    )
    assert curve[-1]["value"] == lora.metrics["accuracy"].value
    assert any("trained on" in line for line in log.lines)
    assert any("data curve" in line for line in log.lines)


def test_the_adapter_is_a_peft_folder_with_metadata_and_a_store_record(tmp_path, tiny):
    res = climb(task_dir(tmp_path / "t", tiny), ClimbOptions(rungs=["lora"]))
    card = res.scorecards[0]
    folder = Path(card.extras["adapter"]["path"])
    assert {"adapter_config.json", "adapter_model.safetensors", META_FILE} <= {
        p.name for p in folder.iterdir()
    }
    meta = json.loads((folder / META_FILE).read_text())
    assert (
        meta["format"] == "ladder-adapter/1"
        and meta["rung"] == "lora"
        and meta["task"]["name"] == "tiny"
    )
    assert (
        len(meta["base_model"]["sha256"]) == 64
        and meta["data"]["data_hash"] == res.dataset.data_hash
    )
    assert meta["answer"]["mode"] == "score" and meta["answer"]["choices"] == [
        " work",
        " personal",
        " spam",
    ]
    assert meta["prompt"]["parts"] == {
        "instructions": True,
        "label_block": False,
        "answer_format": False,
    }
    assert meta["hyperparameters"]["r"] == 8 and meta["training"]["epochs"] >= 1
    assert meta["scores"]["holdout"]["accuracy"] == card.metrics["accuracy"].value
    assert meta["scores"]["dev"]["n"] == len(res.dataset.dev)
    arts = {a["kind"]: a for a in Store().artifacts(res.run_id)}
    assert arts["adapter"]["path"] == str(folder) and arts["adapter"]["bytes"] > 1000
    assert "curve-adapter" in arts


def test_a_reloaded_adapter_scores_identically(tmp_path, tiny):
    from ladder.engines.base import ScoreRequest
    from ladder.engines.hf import HFEngine
    from ladder.rungs.lora import short_builder

    res = climb(task_dir(tmp_path / "t", tiny), ClimbOptions(rungs=["lora"]))
    card = res.scorecards[0]
    stored = Store().predictions(res.run_id, "lora", card.variant, "holdout")
    model, tok, meta = load_adapter(card.extras["adapter"]["path"])
    engine = HFEngine.from_model("reloaded", model.get_base_model(), tok)

    builder = short_builder(res.task, meta["prompt"]["max_input_chars"])
    holdout = res.dataset.holdout
    got = engine.score(
        [ScoreRequest(builder.render(e.input), meta["answer"]["choices"]) for e in holdout]
    )
    for e, s in zip(holdout, got):
        lp = stored[e.id].scores
        best = max(range(len(s.logprobs)), key=lambda i: s.logprobs[i])
        assert res.task.labels[best] == stored[e.id].output
        shifted = [x - max(s.logprobs) for x in s.logprobs]
        assert [round(x - max(lp), 3) for x in lp] == pytest.approx(shifted, abs=2e-3)


def test_a_resumed_climb_reloads_the_finished_adapter(tmp_path, tiny):
    task = task_dir(tmp_path / "t", tiny, lora="{epochs: 2, min_examples: 8, data_curve: null}")
    with pytest.raises(KeyboardInterrupt):  # killed after training, while scoring the hold-out
        climb(task, ClimbOptions(rungs=["lora"]), progress=Log(kill="lora · holdout"))
    log = Log()
    res = climb(task, ClimbOptions(resume=True), progress=log)
    assert res.status == "finished" and res.scorecards[0].rung == "lora"
    assert any("(reloaded)" in line for line in log.lines)


def test_a_killed_training_resumes_from_its_epoch_checkpoint(tmp_path, tiny):
    task = task_dir(tmp_path / "t", tiny, lora="{epochs: 3, min_examples: 8, data_curve: null}")
    with pytest.raises(KeyboardInterrupt):  # killed while the dev loss of epoch 1 is computed
        climb(task, ClimbOptions(rungs=["lora"]), progress=KillSecond("lora · train"))
    res = climb(task, ClimbOptions(resume=True))
    t = res.scorecards[0].extras["training"]
    assert t["resumed_from_epoch"] is not None and t["epochs"] >= 2


class KillSecond(Log):
    """Lets the first epoch of a training finish, then interrupts it."""

    def task(self, description, total=None):
        import contextlib

        if self.kill not in description:
            return super().task(description, total)

        class Bar:
            steps = 0

            def advance(self, k=1):
                Bar.steps += k
                if Bar.steps > total / 3 + 1:  # a step into epoch 2 of 3
                    raise KeyboardInterrupt

            def update(self, **kw):
                pass

        return contextlib.nullcontext(Bar())


def test_merge_is_evaluated_again_not_assumed_equal(tmp_path, tiny):
    lora = "{epochs: 2, min_examples: 8, data_curve: null, merge: true, forgetting: false}"
    res = climb(task_dir(tmp_path / "t", tiny, lora=lora), ClimbOptions(rungs=["lora"]))
    merged = res.scorecards[0].extras["merged"]
    assert (Path(merged["path"]) / "config.json").exists()
    assert merged["agreement_with_adapter"] >= 0.9 and "accuracy" in merged["holdout"]
    assert "forgetting" not in res.scorecards[0].extras
    kinds = {a["kind"] for a in Store().artifacts(res.run_id)}
    assert {"adapter", "merged-model"} <= kinds


def test_extract_adapters_generate_json_through_the_same_path(tmp_path, tiny):
    task = write_extract_task(
        tmp_path / "x",
        extra_yaml=f"{model_yaml(tiny)}rungs:\n  lora: {{epochs: 1, min_examples: 8, data_curve: null}}\n",
    )
    res = climb(task, ClimbOptions(rungs=["lora"]))
    card = res.scorecards[0]
    assert card.solution["mode"] == "generate" and card.tokens_out > 0
    assert 0.0 <= card.metrics["field_f1"].value <= 1.0


@pytest.mark.parametrize(
    ("args", "lora", "parts"),
    [
        (["--quantize", "8bit"], LORA, ["--quantize '8bit'", "4bit"]),
        (["--teacher", "few-shot"], LORA, ["--teacher needs --rung distill"]),
        (["--quantize", "4bit"], LORA, ["needs a CUDA GPU"]),
        ([], "{r: 0}", ["line 12", "rungs.lora.r", "greater than or equal to 1"]),
        ([], "{target_modules: [qkv]}", ["no linear layer named qkv", "q_proj"]),
        ([], "{min_examples: 500}", ["skipped, nothing trained", "min_examples is 500"]),
        (["--lr", "1e9"], LORA, ["rungs.lora.lr", "less than or equal to 1"]),
    ],
)
def test_ladder_train_bad_input_is_one_clear_paragraph(tmp_path, tiny, run_cli, args, lora, parts):
    import torch

    if "needs a CUDA GPU" in parts and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, out, err = run_cli("train", task_dir(tmp_path / "t", tiny, lora=lora), *args)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    text = " ".join((out + err).split())
    for p in parts:
        assert p in text, text


def test_ladder_train_trains_and_reports(tmp_path, tiny, run_cli):
    task = task_dir(tmp_path / "t", tiny)
    code, out, err = run_cli("train", task, "--epochs", "2", "--no-curve", "--r", "4")
    assert code == 0, err
    assert "lora" in out and "trained on" in out and "forgetting" in out
    card = Store().scorecards(Store().list_runs("tiny")[0]["id"])[0]
    assert card["variant"] == "r4" and "data_curve" not in card["extras"]
    assert card["extras"]["hyperparameters"]["epochs"] == 2


def test_forgetting_is_measured_on_the_tasks_text_cut_to_a_bounded_length(tmp_path, tiny):
    import random

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ladder.rungs.finetune_checks import MAX_FORGETTING_TOKENS
    from ladder.training.loop import text_loss
    from tiny_model import WORDS

    lora = "{epochs: 1, min_examples: 8, data_curve: null}"
    task = task_dir(tmp_path / "t", tiny, lora=lora, extra="forgetting: {text: notes.txt}\n")
    rng = random.Random(1)
    text = " ".join(rng.choice(WORDS[:60]) for _ in range(3 * MAX_FORGETTING_TOKENS))
    (task / "notes.txt").write_text(text)
    log = Log()
    f = climb(task, ClimbOptions(rungs=["lora"]), progress=log).scorecards[0].extras["forgetting"]
    assert f["adjacent"] == "your text notes.txt" and f["field"] == "forgetting.text"
    assert f["tokens"] == MAX_FORGETTING_TOKENS and f["text_tokens"] > MAX_FORGETTING_TOKENS
    # the base loss is the untouched base model's on the first 2,048 tokens of notes.txt
    tok = AutoTokenizer.from_pretrained(tiny)
    base = AutoModelForCausalLM.from_pretrained(tiny)
    ids = tok(text).input_ids[: MAX_FORGETTING_TOKENS + 1]
    assert f["base_loss"] == pytest.approx(text_loss(base, ids), abs=2e-4)
    assert any("your text notes.txt (2048 tokens)" in line for line in log.lines)
