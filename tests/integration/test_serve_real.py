"""`ladder serve` on the real embedded model: a climbed run's solution, a LoRA adapter on the same
loaded base, and llama-cpp-python's own server (same GGUF) as the large upstream - routing,
calibration, streaming through, and fallback when it is stopped. The official `openai` client
drives it all on loopback."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from conftest import embedded_ready
from llama_util import ALIAS, start_llama_server, stop
from serve_util import gateway

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# find, don't import: the server runs in its own process
if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("llama-cpp-python[server] is not installed", allow_module_level=True)
pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
peft = pytest.importorskip("peft", reason="the [train] extra is not installed")


def random_adapter(out: Path) -> Path:
    """A LoRA adapter for the embedded model with non-zero (random) weights: it changes answers."""
    import torch
    from transformers import AutoModelForCausalLM

    from ladder.engines.gguf import embedded_dir

    model = AutoModelForCausalLM.from_pretrained(embedded_dir(), dtype=torch.float32)
    torch.manual_seed(0)
    cfg = peft.LoraConfig(
        r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft.get_peft_model(model, cfg).save_pretrained(out)
    return out


@pytest.mark.skipif(not embedded_ready(), reason="run `ladder models prepare` first")
def test_serving_the_embedded_model_with_an_adapter_and_a_llama_cpp_upstream(tmp_path):
    from ladder.climb import ClimbOptions, climb
    from ladder.hybrid import label_margin
    from ladder.serve.catalog import ServeOptions
    from ladder.store.db import Store

    llama, proc = start_llama_server(tmp_path / "llama.log")
    try:
        task = tmp_path / "email-triage"
        task.mkdir()
        (task / "emails.jsonl").symlink_to(ROOT / "examples/email-triage/emails.jsonl")
        (task / "task.yaml").write_text(
            (ROOT / "examples/email-triage/task.yaml").read_text()
            + f"models:\n  llama: {{engine: openai, base_url: '{llama}', model: {ALIAS}, api: completions}}\n"
        )
        res = climb(task, ClimbOptions(rungs=["zero-shot"], variant="instructions+format", limit=8))
        stored = Store().predictions(res.run_id, "zero-shot", "instructions+format", "holdout")
        holdout = [e for e in res.dataset.holdout if e.id in stored]
        # the router's confidence is the report's: the label probability margin
        margin = {e.id: label_margin(stored[e.id].scores) for e in holdout}
        unsure = min(holdout, key=lambda e: margin[e.id])
        sure = max(holdout, key=lambda e: margin[e.id])
        middle = float(np.median(list(margin.values())))  # about half the calls go large
        adapter = random_adapter(tmp_path / "adapter")
        opts = ServeOptions(
            run=res.run_id, adapters={"triage-lora": str(adapter)}, large="llama", threshold=middle
        )
        with gateway(opts) as g:
            cal = g.catalog.calibration
            assert cal.n == 8 and cal.threshold == pytest.approx(middle, abs=1e-6)
            assert 0 < cal.achieved["large_share"] < 1 and cal.achieved["quality"] is not None
            assert (g.catalog.ctx.run_dir / "serve" / "calibration-email-triage.json").exists()
            c = g.client()
            ids = {m.id for m in c.models.list()}
            expected = {"email-triage", "email-triage/zero-shot", "email-triage/zero-shot@llama"}
            assert expected | {"gemma-3-270m", "triage-lora", "llama"} <= ids

            # the served solution is the climb's: same label as stored for a hold-out email
            for ex in holdout[:3]:
                r = c.chat.completions.create(
                    model="email-triage/zero-shot", messages=[{"role": "user", "content": ex.input}]
                )
                assert r.choices[0].message.content == stored[ex.id].output

            # the route: an email the small model is unsure of goes to llama.cpp, a sure one stays
            assert margin[unsure.id] < cal.threshold <= margin[sure.id]
            h = c.chat.completions.with_raw_response.create(
                model="email-triage", messages=[{"role": "user", "content": sure.input}]
            ).headers
            assert h["x-ladder-route"] == "zero-shot"
            h = c.chat.completions.with_raw_response.create(
                model="email-triage", messages=[{"role": "user", "content": unsure.input}]
            ).headers
            assert h["x-ladder-route"] == "zero-shot@llama" and "x-ladder-fallback" not in h

            # base and adapter on one loaded model: the adapter changes the base's greedy text
            prompt = "Subject: invoice overdue\nThe invoice for March is still unpaid because"
            base = (
                c.completions.create(
                    model="gemma-3-270m", prompt=prompt, max_tokens=8, temperature=0
                )
                .choices[0]
                .text
            )
            tuned = (
                c.completions.create(
                    model="triage-lora", prompt=prompt, max_tokens=8, temperature=0
                )
                .choices[0]
                .text
            )
            assert (
                base != tuned
                and base
                == c.completions.create(
                    model="gemma-3-270m", prompt=prompt, max_tokens=8, temperature=0, seed=1
                )
                .choices[0]
                .text
            )

            # llama.cpp's own stream, relayed as it arrives
            chunks = list(
                c.completions.create(
                    model="llama", prompt="The capital of France is", max_tokens=6, stream=True
                )
            )
            assert (
                len(chunks) >= 3
                and "".join(ch.choices[0].text for ch in chunks if ch.choices).strip()
            )

            stop(
                proc
            )  # the large model goes away: the route answers with the small model, and says so
            h = c.chat.completions.with_raw_response.create(
                model="email-triage", messages=[{"role": "user", "content": unsure.input + " "}]
            ).headers
            assert h["x-ladder-route"] == "zero-shot" and "large model" in h["x-ladder-fallback"]
            g.gw.writer.flush()
            routes = [r["route"] for r in g.db.query(model="email-triage")]
            assert routes.count("zero-shot@llama") == 1 and routes.count("zero-shot") == 2
    finally:
        stop(proc)
