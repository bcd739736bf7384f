"""The vllm engine's pieces that need no server: naming, constraints, echoed-logprob sums
(the server itself is exercised in tests/integration/test_vllm.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ladder.engines.base import GenRequest
from ladder.engines.resolve import resolve_model
from ladder.engines.vllm import continuation_logprob, echo_shift, structured
from ladder.errors import EngineError, ModelError


def test_vllm_names_resolve_to_the_server_and_served_model():
    e = resolve_model("vllm:http://127.0.0.1:8000/v1#triage")
    assert (e.spec.engine, e.spec.base_url, e.spec.model) == (
        "vllm",
        "http://127.0.0.1:8000/v1",
        "triage",
    )
    assert resolve_model("vllm:http://h:1/v1").spec.model is None  # the server's base model
    with pytest.raises(ModelError, match="vllm:http://HOST:PORT/v1"):
        resolve_model("vllm:localhost:8000")


def test_constraints_become_structured_outputs():
    assert structured(GenRequest("p", choices=[" a", " b"])) == {"choice": [" a", " b"]}
    schema = {"type": "object"}
    assert structured(GenRequest("p", json_schema=schema)) == {"json": schema}
    assert structured(GenRequest("p")) is None


def lp(tokens, values):
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return SimpleNamespace(tokens=tokens, token_logprobs=values, text_offset=offsets)


def test_only_the_choices_tokens_count():
    prompt, choice = "<bos>Label:", " spam"
    # echoed prompt + choice, then the one generated token, which must not count
    echoed = lp(["<bos>", "Label", ":", " sp", "am", "\n"], [None, -1.0, -2.0, -0.5, -0.25, -9.0])
    got = continuation_logprob(echoed, len(prompt), len(prompt + choice))
    assert got == pytest.approx(-0.75)
    # a token straddling the boundary (the tokenizer merged prompt end and choice) counts
    merged = lp(["<bos>", "Label", ": spam", "\n"], [None, -1.0, -3.0, -9.0])
    assert continuation_logprob(merged, len(prompt), len(prompt + choice)) == -3.0
    # vLLM's offsets count the BOS token's text, which the echoed text does not carry
    real = lp(["<bos>", "Email", ":", " hi", " spam", "\n"], [None, -1.0, -1.0, -1.0, -2.5, -9.0])
    shift = echo_shift(real, "Email: hi spam\n")
    assert shift == 5
    start = len("Email: hi") + shift
    assert continuation_logprob(real, start, start + len(" spam")) == -2.5
    with pytest.raises(EngineError, match="no prompt log-probabilities"):
        continuation_logprob(None, 0, 1)
