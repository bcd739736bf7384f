"""The `openai` engine against a real OpenAI-compatible server: llama-cpp-python's own, on the
embedded GGUF, on loopback. No mock of the client, no stub server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ladder.engines.base import GenRequest
from ladder.errors import EngineError
from llama_util import free_port, start_llama_server, stop

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# find, don't import: the server runs in its own process, and importing llama_cpp here would
# load the native library into the test process for nothing
if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip(
        "llama-cpp-python[server] is not installed (make install does it)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    base, proc = start_llama_server(tmp_path_factory.mktemp("llama") / "server.log")
    yield base
    stop(proc)


def test_engine_generates_with_usage_and_bounded_concurrency(llama_server):
    from ladder.engines.openai_compat import OpenAIEngine

    eng = OpenAIEngine(
        "gemma",
        remote_model="gemma-3-270m-gguf",
        base_url=llama_server,
        api="completions",
        concurrency=3,
    )
    reqs = [
        GenRequest(f"Q: What is {i} plus {i}?\nA:", max_tokens=8, stop=["\n"]) for i in range(6)
    ]
    comps = eng.generate(reqs)
    assert len(comps) == 6
    for c in comps:
        assert c.tokens_in > 5 and 0 < c.tokens_out <= 8  # usage reported by the server
        assert c.latency_s > 0 and "\n" not in c.text


def test_climb_through_the_endpoint(tmp_path, run_cli, llama_server):
    src = (ROOT / "examples/email-triage/task.yaml").read_text()
    task = tmp_path / "email-triage"
    task.mkdir()
    (task / "emails.jsonl").symlink_to(ROOT / "examples/email-triage/emails.jsonl")
    (task / "task.yaml").write_text(
        src.replace("model: gemma-3-270m", "model: local-gguf")
        + f"models:\n  local-gguf: {{engine: openai, base_url: '{llama_server}', model: gemma-3-270m-gguf, api: completions, concurrency: 2}}\n"
    )
    code, out, err = run_cli("climb", task, "--rungs", "zero-shot", "--limit", "6")
    assert code == 0, err
    from ladder.store.db import Store

    card = Store().scorecards(Store().list_runs("email-triage")[0]["id"])[0]
    assert card["engine"]["engine"] == "openai" and card["solution"]["mode"] == "generate"
    assert card["n"] == 6 and card["tokens_in"] > 100 and card["tokens_out"] >= 1


def test_stopped_server_is_a_clear_error(llama_server):
    from ladder.engines.openai_compat import OpenAIEngine

    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EngineError, match="cannot reach the OpenAI-compatible endpoint"):
        OpenAIEngine("gemma", base_url=dead, api="completions", max_retries=1)
