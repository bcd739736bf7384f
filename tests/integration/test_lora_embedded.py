"""LoRA on the real embedded Gemma 3 270M: a small slice trains, the loss falls, the adapter is
saved, reloaded and re-scores the hold-out exactly as it did in the run (about 2 minutes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ladder.store.db import Store

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("embedded_model")]
ROOT = Path(__file__).resolve().parents[2]


def test_train_save_reload_rescore(run_cli):
    from ladder.dataset import load_dataset
    from ladder.engines.base import ScoreRequest
    from ladder.engines.gguf import embedded_dir
    from ladder.engines.hf import HFEngine
    from ladder.task import load_task
    from ladder.training.adapters import base_checksum, load_adapter

    task_dir = ROOT / "examples/email-triage"
    args = ["--max-examples", "48", "--epochs", "2", "--no-curve", "--limit", "16"]
    code, out, err = run_cli("train", task_dir, *args)
    assert code == 0, err
    assert "trained on 48 examples" in " ".join(out.split())
    store = Store()
    run = store.list_runs("email-triage")[0]
    card = store.scorecards(run["id"])[0]
    t = card["extras"]["training"]
    assert t["device"] == "cpu" and t["examples"] == 48 and t["tokens_per_s"] > 0
    assert t["history"][1]["train_loss"] < t["history"][0]["train_loss"]  # the loss falls
    assert card["n"] == 16 and card["validity"] == 1.0
    assert card["tokens_in"] < 200  # the short prompt: no label list, no demonstrations
    f = card["extras"]["forgetting"]
    assert f["base_loss"] > 0 and f["adapter_loss"] > 0

    folder = card["extras"]["adapter"]["path"]
    model, tok, meta = load_adapter(folder)
    assert meta["base_model"]["sha256"] == base_checksum(embedded_dir())
    engine = HFEngine.from_model("reloaded", model.get_base_model(), tok)
    task = load_task(task_dir)
    holdout = load_dataset(task).holdout[:16]

    from ladder.rungs.lora import short_builder

    builder = short_builder(task, meta["prompt"]["max_input_chars"])
    choices = meta["answer"]["choices"]
    got = engine.score([ScoreRequest(builder.render(e.input), choices) for e in holdout])
    stored = store.predictions(run["id"], "lora", card["variant"], "holdout")
    for e, s in zip(holdout, got):
        lp = np.asarray(s.logprobs)
        lp = (lp - np.logaddexp.reduce(lp)).round(5).tolist()
        assert lp == pytest.approx(stored[e.id].scores, abs=2e-5)
        assert task.labels[int(np.argmax(lp))] == stored[e.id].output
