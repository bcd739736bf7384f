"""QLoRA: a 4-bit NF4 base with LoRA, through the same lora rung (`quantize: 4bit`).

It needs a CUDA GPU and bitsandbytes; where either is missing the test is skipped and pytest's
summary (`-ra`) prints why.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from ladder.climb import ClimbOptions, climb  # noqa: E402
from lora_tasks import task_dir  # noqa: E402
from tiny_model import build_tiny_model  # noqa: E402

MISSING = [
    what
    for what, ok in (
        ("a CUDA GPU", torch.cuda.is_available()),
        ("bitsandbytes", importlib.util.find_spec("bitsandbytes") is not None),
    )
    if not ok
]


@pytest.mark.skipif(bool(MISSING), reason=f"QLoRA needs {' and '.join(MISSING)}, absent here")
def test_qlora_trains_a_4bit_base_through_the_lora_rung(tmp_path):
    tiny = build_tiny_model(tmp_path / "tiny")
    lora = "{quantize: 4bit, epochs: 3, lr: 0.01, min_examples: 8, batch_size: 4, data_curve: null}"
    res = climb(task_dir(tmp_path / "t", tiny, lora=lora), ClimbOptions(rungs=["lora"]))
    card = res.scorecards[0]
    t = card.extras["training"]
    assert t["device"] == "cuda" and t["history"][-1]["train_loss"] < t["history"][0]["train_loss"]
    meta = json.loads((Path(card.extras["adapter"]["path"]) / "ladder-adapter.json").read_text())
    assert (
        meta["base_model"]["quantize"] == "4bit" and meta["hyperparameters"]["quantize"] == "4bit"
    )
    assert card.engine["device"] == "cuda" and card.validity == 1.0
    from ladder.training.adapters import load_adapter

    model, _, _ = load_adapter(card.extras["adapter"]["path"])
    assert any("4bit" in type(m).__name__ for m in model.modules())
