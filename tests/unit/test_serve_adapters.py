"""Several LoRA adapters on one loaded base (tiny random Gemma 3), chosen per request by name."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from ladder.serve.catalog import ServeOptions
from serve_util import gateway
from tiny_model import build_tiny_model

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
peft = pytest.importorskip("peft", reason="the [train] extra is not installed")

PROMPTS = [
    "the email is",
    "please review the invoice",
    "dinner with family today",
    "lottery password urgent",
    "quick meeting friday",
    "hello world",
]


def make_adapter(base, out, seed: int, meta: dict | None = None):
    """A LoRA adapter with random (non-zero) weights, saved as a standard PEFT folder."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(seed)
    cfg = peft.LoraConfig(
        r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    peft.get_peft_model(model, cfg).save_pretrained(out)
    if meta:
        (out / "ladder-adapter.json").write_text(json.dumps(meta))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    base = build_tiny_model(root / "base")
    return base, make_adapter(base, root / "a", 1), make_adapter(base, root / "b", 2, {"name": "b"})


def reference(base, adapter, prompt: str) -> str:
    """Greedy text from a fresh base with only this adapter (or none): what the gateway must give."""
    from ladder.engines.base import GenRequest
    from ladder.engines.hf import HFEngine

    eng = HFEngine("ref", str(base), threads=1)
    if adapter is not None:
        peft.PeftModel.from_pretrained(eng.lm, str(adapter))  # injects into eng.lm in place
    return eng.generate([GenRequest(prompt, max_tokens=6, temperature=0)])[0].text


def test_adapters_share_one_base_and_match_peft_alone(tiny):
    base, a, b = tiny
    refs = {
        name: [reference(base, ad, p) for p in PROMPTS]
        for name, ad in (("tinybase", None), ("ad-a", a), ("ad-b", b))
    }
    assert (
        refs["ad-a"] != refs["tinybase"] or refs["ad-b"] != refs["tinybase"]
    )  # adapters do change answers
    from ladder.engines.hf import HFEngine

    engine = HFEngine("tinybase", str(base), threads=1)
    opts = ServeOptions(
        model="tinybase", engines={"tinybase": engine}, adapters={"ad-a": str(a), "ad-b": str(b)}
    )
    with gateway(opts, max_batch=4) as g:
        c = g.client()
        ids = [m.id for m in c.models.list()]
        assert ids == ["tinybase", "ad-a", "ad-b", "all-MiniLM-L6-v2"]
        jobs = [
            (name, i) for i in range(len(PROMPTS)) for name in refs
        ]  # interleaved: switches every request

        def ask(job):
            name, i = job
            raw = c.completions.with_raw_response.create(
                model=name, prompt=PROMPTS[i], max_tokens=6, temperature=0
            )
            return raw.headers["x-ladder-route"], raw.parse().choices[0].text

        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(ask, jobs))
        for (name, i), (route, text) in zip(jobs, got):
            assert route == name and text == refs[name][i], (name, PROMPTS[i])
        views = [g.catalog.targets[n].engine for n in refs]
        assert all(v.base is engine for v in views)  # one loaded base, never reloaded
        aset = views[1].adapters
        assert set(aset.peft_model.peft_config) == {"ad-a", "ad-b"} and aset.switches >= 3


def test_a_runs_adapter_is_served_as_its_rung(tiny, tmp_path):
    """A fine-tuning rung recorded as the store records it: an adapter artifact + its solution."""
    from conftest import write_classify_task
    from ladder.climb import ClimbOptions, climb
    from ladder.store.db import Store

    base, a, _ = tiny
    root = write_classify_task(tmp_path / "task")
    res = climb(
        root,
        ClimbOptions(
            model=f"hf:{base}", rungs=["zero-shot"], variant="instructions+format", limit=8
        ),
    )
    store = Store()
    card = store.scorecards(res.run_id)[0]
    desc = {**card["solution"], "rung": "lora"}  # its adapter is known from the artifact
    store.add_artifact(res.run_id, "lora", "adapter", str(a), 1, {"name": "tiny-lora"})
    store.finish_rung(res.run_id, "lora", "done", solution=desc)
    store.save_scorecard(
        res.run_id,
        "lora",
        "holdout",
        {
            **card,
            "rung": "lora",
            "metrics": {k: {**v, "value": 0.99} for k, v in card["metrics"].items()},
        },
    )
    with gateway(ServeOptions(run=res.run_id)) as g:
        ids = [m.id for m in g.client().models.list()]
        assert {f"hf:{base}", "tiny-lora", "tiny/zero-shot", "tiny/lora", "tiny"} <= set(ids)
        c = g.client()
        diffs = 0
        for text in (
            "the invoice is urgent",
            "dinner with family",
            "lottery password",
            "quick review friday",
        ):
            plain = c.chat.completions.create(
                model="tiny/zero-shot", messages=[{"role": "user", "content": text}]
            )
            tuned = c.chat.completions.with_raw_response.create(
                model="tiny", messages=[{"role": "user", "content": text}]
            )
            assert tuned.headers["x-ladder-route"] == "lora"
            diffs += (
                plain.model_extra["ladder"]["confidence"]
                != tuned.parse().model_extra["ladder"]["confidence"]
            )
        assert diffs >= 3  # the adapter's weights are in play for the task model


def test_bad_adapter_folder_is_a_clear_error(tiny, tmp_path):
    from ladder.errors import ModelError
    from ladder.serve.build import build_catalog

    base, _, _ = tiny
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a PEFT adapter folder"):
        build_catalog(ServeOptions(model=f"hf:{base}", adapters={"x": str(tmp_path / "empty")}))
