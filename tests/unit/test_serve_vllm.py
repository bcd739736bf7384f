"""`ladder serve --engine vllm` against a stand-in vLLM server (tests/vllm_fake.py): the run's
base model and adapter found or registered on it, task routes scored there with the adapter as
the request's model, clear refusals, and a server Ladder starts and stops itself. The real
vLLM is exercised in tests/integration/test_vllm.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import write_classify_task
from serve_util import gateway
from tiny_model import build_tiny_model
from vllm_fake import FakeVLLM, char_logprob

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
peft = pytest.importorskip("peft", reason="the [train] extra is not installed")
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run on a tiny hf model: zero-shot climbed, plus a lora rung with its adapter artifact."""
    import torch
    from transformers import AutoModelForCausalLM

    from ladder.climb import ClimbOptions, climb
    from ladder.store.db import Store

    root = tmp_path_factory.mktemp("vllmserve")
    base = build_tiny_model(root / "base")
    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(1)
    cfg = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj"], init_lora_weights=False)
    adapter = root / "adapter"
    peft.get_peft_model(model, cfg).save_pretrained(adapter)
    runs = root / "runs"
    task = write_classify_task(root / "task")
    res = climb(
        task,
        ClimbOptions(
            model=f"hf:{base}",
            rungs=["zero-shot"],
            variant="instructions+format",
            limit=8,
            runs_dir=str(runs),
        ),
    )
    store = Store(runs)
    card = store.scorecards(res.run_id)[0]
    store.add_artifact(res.run_id, "lora", "adapter", str(adapter), 1, {"name": "tiny-lora"})
    store.finish_rung(res.run_id, "lora", "done", solution={**card["solution"], "rung": "lora"})
    better = {k: {**v, "value": 0.99} for k, v in card["metrics"].items()}
    store.save_scorecard(res.run_id, "lora", "holdout", {**card, "rung": "lora", "metrics": better})
    store.close()
    return {"id": res.run_id, "runs": str(runs), "base": base, "adapter": adapter}


@pytest.fixture
def fake(run):
    from ladder.serve.server import ServerThread

    servers = []

    def start(**kw) -> tuple[FakeVLLM, str]:
        kw = {"base": f"hf:{run['base']}", "root": str(run["base"]), **kw}
        f = FakeVLLM(**kw)
        srv = ServerThread(f.app()).start()
        servers.append(srv)
        return f, srv.url

    yield start
    for s in servers:
        s.stop()


def opts(run, **vllm):
    from ladder.serve.catalog import ServeOptions
    from ladder.serve.vllm import VLLMOptions

    return ServeOptions(
        run=run["id"], runs_dir=run["runs"], engine="vllm", vllm=VLLMOptions(**vllm)
    )


def expected_label(body: dict, labels: list[str]) -> str:
    """The label the stand-in's log-probabilities favour for one scoring request."""
    full = body["prompt"]
    # the prompt all choices share (a shared first character of the choices shifts every score
    # alike, so where exactly it ends does not change the pick)
    cut = next((i for i, cs in enumerate(zip(*full)) if len(set(cs)) > 1), min(map(len, full)))
    prompt = full[0][:cut]
    scores = [
        sum(char_logprob(body["model"], f, j) for j in range(len(prompt), len(f))) for f in full
    ]
    return labels[int(np.argmax(scores))]


def test_task_routes_and_adapters_answer_on_vllm(run, fake):
    f, url = fake(runtime_loading=True)
    with gateway(opts(run, url=url), auth=False, log=False) as g:
        # the adapter was missing and the server allows run-time loading: registered at startup
        assert f.loras == {"tiny-lora": str(run["adapter"].resolve())}
        ids = [m.id for m in g.client().models.list()]
        assert {f"hf:{run['base']}", "tiny-lora", "tiny", "tiny/zero-shot", "tiny/lora"} <= set(ids)
        assert any("loaded into vLLM at run time" in line for line in g.catalog.lines)
        c = g.client()
        labels = ["work", "personal", "spam"]
        for model, served in (("tiny", "tiny-lora"), ("tiny/zero-shot", f"hf:{run['base']}")):
            raw = c.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": "lottery password urgent"}]
            )
            body = f.requests[-1]
            assert body["model"] == served and body["echo"] is True  # scored on vLLM
            assert raw.parse().choices[0].message.content == expected_label(body, labels)
            assert raw.headers["x-ladder-route"] == ("lora" if model == "tiny" else "zero-shot")
        # a raw adapter name is a completions model on vLLM, no template
        out = c.completions.create(model="tiny-lora", prompt="the email is", max_tokens=3)
        assert out.choices[0].text == " ok" and f.requests[-1]["model"] == "tiny-lora"
        assert f.requests[-1]["prompt"] == "the email is"
        # the gateway's prompt limit is the server's context length
        assert g.catalog.limits.max_prompt_tokens == 2047


def test_a_server_without_the_adapter_and_no_runtime_loading_is_refused(run, fake):
    from ladder.errors import LadderError
    from ladder.serve.build import build_catalog

    _, url = fake(runtime_loading=False)
    with pytest.raises(LadderError) as err:
        build_catalog(opts(run, url=url))
    msg = f"{err.value} {err.value.fix}"
    assert "does not allow loading adapters at run time" in msg
    assert f"--lora-modules tiny-lora={run['adapter'].resolve()}" in msg
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in msg


def test_an_adapter_served_under_another_name_is_found_by_its_folder(run, fake):
    f, url = fake(loras={"triage": str(run["adapter"])})
    with gateway(opts(run, url=url), auth=False, log=False) as g:
        g.client().chat.completions.create(
            model="tiny/lora", messages=[{"role": "user", "content": "hello"}]
        )
        assert f.requests[-1]["model"] == "triage"  # vLLM's name for the run's adapter


def test_a_server_with_another_base_model_is_refused(run, fake):
    from ladder.errors import LadderError
    from ladder.serve.build import build_catalog

    _, url = fake(base="gemma", root="/models/other", runtime_loading=True)
    with pytest.raises(LadderError, match="not the run's base model") as err:
        build_catalog(opts(run, url=url))
    assert f"--model {run['base'].resolve()}" in err.value.fix
    # another adapter under the adapter's name is not taken for it
    _, url = fake(loras={"tiny-lora": "/elsewhere"})
    with pytest.raises(LadderError, match="serves another adapter as 'tiny-lora'"):
        build_catalog(opts(run, url=url))


def test_ladder_starts_vllm_with_every_adapter_and_stops_it(run, monkeypatch):
    import httpx

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS / "vllm_stub"), str(TESTS)]))
    with gateway(opts(run, python=sys.executable), auth=False, log=False) as g:
        server = g.catalog.closers[0].__self__
        cmd = server.cmd
        assert cmd[cmd.index("--lora-modules") + 1] == f"tiny-lora={run['adapter'].resolve()}"
        assert cmd[cmd.index("--max-lora-rank") + 1] == "8"  # rank 4, rounded up to vLLM's set
        cards = httpx.get(server.url + "/models").json()["data"]
        assert [c["id"] for c in cards] == [f"hf:{run['base']}", "tiny-lora"]
        out = g.client().chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hello"}]
        )
        assert out.choices[0].message.content in ("work", "personal", "spam")
        assert server.log.parent.name == "serve"  # the log sits in the run's folder
    assert server.proc.poll() is not None  # stopped with the gateway


def test_the_vllm_python_comes_from_the_option_the_variable_or_make_vllm_venv(
    tmp_path, monkeypatch
):
    from ladder.errors import LadderError
    from ladder.serve.vllm import ENV_PYTHON, VENV, find_python

    monkeypatch.setenv(ENV_PYTHON, str(tmp_path / "nope"))
    with pytest.raises(LadderError, match=r"\$LADDER_VLLM_PYTHON=.*nope: no such file"):
        find_python(None)
    py, given = tmp_path / "python", tmp_path / "given"
    py.touch()
    given.touch()
    monkeypatch.setenv(ENV_PYTHON, str(py))
    assert find_python(None) == py
    assert find_python(str(given)) == given  # the option wins
    monkeypatch.delenv(ENV_PYTHON)
    # `make vllm-venv` builds it in ~/.cache/ladder, shared by every checkout on the machine
    home = tmp_path / "home"
    shared = home / ".cache/ladder/venv-vllm-0.32.0/bin/python"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / VENV).exists():
        pytest.skip(f"{checkout / VENV} exists and comes first")
    with pytest.raises(LadderError, match="make vllm-venv"):
        find_python(None)
    shared.parent.mkdir(parents=True)
    shared.touch()
    assert find_python(None) == shared


def test_bad_vllm_options_are_clear(run, run_cli, tmp_path, monkeypatch):
    from ladder.errors import LadderError
    from ladder.serve.vllm import ENV_PYTHON, find_python, lora_rank

    with pytest.raises(LadderError, match="no such file"):
        find_python(str(tmp_path / "nope" / "python"))
    monkeypatch.setenv(ENV_PYTHON, str(tmp_path / "nope" / "python"))
    code, out, err = run_cli(
        "serve", run["id"], "--runs", run["runs"], "--no-auth", "--engine", "vllm"
    )
    assert code == 2 and "$LADDER_VLLM_PYTHON=" in err and "no such file" in err, err
    assert "Traceback" not in out + err
    monkeypatch.delenv(ENV_PYTHON)
    code, _, err = run_cli(
        "serve", run["id"], "--runs", run["runs"], "--no-auth", "--vllm-url", "http://x:1/v1"
    )
    assert code != 0 and "--vllm-url needs --engine vllm" in err
    code, _, err = run_cli(
        "serve", run["id"], "--runs", run["runs"], "--no-auth", "--engine", "vllm",
        "--vllm-url", "http://127.0.0.1:9/v1",
    )  # fmt: skip
    assert code != 0 and "cannot list the models of the vLLM server" in err
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "adapter_config.json").write_text(json.dumps({"r": 600}))
    with pytest.raises(LadderError, match="ranks up to 512"):
        lora_rank({"big": tmp_path / "big"})
    assert lora_rank({"a": run["adapter"]}) == 8


def test_the_engine_worker_waits_for_a_batch_only_while_more_requests_are_in_flight():
    import time

    from ladder.serve.worker import Worker

    w = Worker(max_wait_s=1.5)
    try:
        t0 = time.perf_counter()
        assert w.submit("k", 1, lambda xs: xs).result(timeout=5) == 1
        assert time.perf_counter() - t0 >= 1.4  # not told what is coming: it waits, as before
        with w.expecting():  # the gateway is handling this one request only
            t0 = time.perf_counter()
            assert w.submit("k", 2, lambda xs: xs).result(timeout=5) == 2
            assert time.perf_counter() - t0 < 1.0
        sizes = []
        with w.expecting(), w.expecting():  # two in flight: the first waits for the second
            f1 = w.submit("k", 3, lambda xs: sizes.append(len(xs)) or xs)
            f2 = w.submit("k", 4, lambda xs: sizes.append(len(xs)) or xs)
            assert (f1.result(timeout=5), f2.result(timeout=5)) == (3, 4)
        assert sizes == [2]
    finally:
        w.close()
