"""The gateway's edge: every malformed, mistyped or unsupported request is an OpenAI-shaped 4xx
whose `param` names the field, never a 500 or a traceback; fuzzed with hypothesis."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from ladder.serve.catalog import ServeOptions
from serve_util import climb_fake, gateway

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

MSG = [{"role": "user", "content": "Standup moved to Friday"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    served = climb_fake(tmp_path_factory.mktemp("bad-input"))
    with gateway(ServeOptions(run=served.run_id)) as g:
        yield g


def chat(**kw):
    return {"model": "tiny", "messages": MSG, **kw}


def nest(n: int) -> bytes:
    return b'{"model": "tiny", "messages": ' + b"[" * n + b"]" * n + b"}"


# (case, body (dict or raw bytes), extra headers, status, param)
CASES = [
    ("max_tokens as string", chat(max_tokens="10"), {}, 400, "max_tokens"),
    ("max_tokens as bool", chat(max_tokens=True), {}, 400, "max_tokens"),
    ("max_tokens as float", chat(max_tokens=1.5), {}, 400, "max_tokens"),
    ("max_tokens zero", chat(max_tokens=0), {}, 400, "max_tokens"),
    ("max_tokens over limit", chat(max_tokens=10**9), {}, 400, "max_tokens"),
    (
        "max_completion_tokens as string",
        chat(max_completion_tokens="5"),
        {},
        400,
        "max_completion_tokens",
    ),
    ("stream as string", chat(stream="yes"), {}, 400, "stream"),
    ("stream as int", chat(stream=1), {}, 400, "stream"),
    ("stream_options not an object", chat(stream_options="x"), {}, 400, "stream_options"),
    ("stream_options unknown key", chat(stream_options={"x": 1}), {}, 400, "stream_options.x"),
    (
        "include_usage as string",
        chat(stream_options={"include_usage": "1"}),
        {},
        400,
        "stream_options.include_usage",
    ),
    ("temperature as string", chat(temperature="0.5"), {}, 400, "temperature"),
    ("temperature too high", chat(temperature=3), {}, 400, "temperature"),
    ("temperature negative", chat(temperature=-1), {}, 400, "temperature"),
    ("seed as string", chat(seed="1"), {}, 400, "seed"),
    ("seed as float", chat(seed=1.5), {}, 400, "seed"),
    ("n above the limit", chat(n=17), {}, 400, "n"),
    ("n zero", chat(n=0), {}, 400, "n"),
    ("n as string", chat(n="1"), {}, 400, "n"),
    ("stop as int", chat(stop=3), {}, 400, "stop"),
    ("too many stops", chat(stop=list("abcde")), {}, 400, "stop"),
    ("user as int", chat(user=5), {}, 400, "user"),
    ("model as int", {"model": 3, "messages": MSG}, {}, 400, "model"),
    ("model empty", {"model": "", "messages": MSG}, {}, 400, "model"),
    ("model missing", {"messages": MSG}, {}, 400, "model"),
    ("model unknown", chat(model="nope"), {}, 404, "model"),
    ("messages missing", {"model": "tiny"}, {}, 400, "messages"),
    ("messages empty", chat(messages=[]), {}, 400, "messages"),
    ("messages not a list", chat(messages="hi"), {}, 400, "messages"),
    ("message not an object", chat(messages=["hi"]), {}, 400, "messages.0"),
    (
        "role unknown",
        chat(messages=[{"role": "robot", "content": "x"}]),
        {},
        400,
        "messages.0.role",
    ),
    ("role missing", chat(messages=[{"content": "x"}]), {}, 400, "messages.0.role"),
    (
        "content as int",
        chat(messages=[{"role": "user", "content": 5}]),
        {},
        400,
        "messages.0.content",
    ),
    (
        "message unknown field",
        chat(messages=[{"role": "user", "content": "x", "y": 1}]),
        {},
        400,
        "messages.0.y",
    ),
    (
        "image part",
        chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
        {},
        400,
        "messages",
    ),
    ("unknown top-level field", chat(frobnicate=1), {}, 400, "frobnicate"),
    (
        "response_format json_object",
        chat(response_format={"type": "json_object"}),
        {},
        400,
        "response_format",
    ),
    (
        "response_format json_schema",
        chat(response_format={"type": "json_schema"}),
        {},
        400,
        "response_format",
    ),
    ("tools", chat(tools=[{"type": "function", "function": {"name": "f"}}]), {}, 400, "tools"),
    ("tool_choice", chat(tool_choice="auto"), {}, 400, "tool_choice"),
    ("functions", chat(functions=[{"name": "f"}]), {}, 400, "functions"),
    ("logprobs on a raw model", chat(model="fake", logprobs=True), {}, 400, "logprobs"),
    ("logprobs as int", chat(logprobs=1), {}, 400, "logprobs"),
    ("top_logprobs without logprobs", chat(top_logprobs=3), {}, 400, "top_logprobs"),
    ("top_logprobs over 20", chat(logprobs=True, top_logprobs=21), {}, 400, "top_logprobs"),
    (
        "response_format unknown type",
        chat(response_format={"type": "xml"}),
        {},
        400,
        "response_format.type",
    ),
    (
        "response_format on a raw model",
        chat(model="fake", response_format={"type": "json_object"}),
        {},
        400,
        "response_format",
    ),
    ("logit_bias", chat(logit_bias={"50256": -100}), {}, 400, "logit_bias"),
    ("frequency_penalty", chat(frequency_penalty=0.5), {}, 400, "frequency_penalty"),
    ("presence_penalty", chat(presence_penalty=1), {}, 400, "presence_penalty"),
    ("top_p below one", chat(top_p=0.5), {}, 400, "top_p"),
    ("echo", chat(echo=True), {}, 400, "echo"),
    ("body is a list", [1, 2], {}, 400, None),
    ("body is a string", "hi", {}, 400, None),
    ("malformed json", b'{"model": "tiny", "messages": [', {}, 400, None),
    ("not utf-8", b'{"model": "\xff\xfe"}', {}, 400, None),
    ("deeply nested json", nest(100_000), {}, 400, None),
    ("nested past the limit", nest(40), {}, 400, None),
    (
        "text/plain content type",
        json.dumps(chat()).encode(),
        {"Content-Type": "text/plain"},
        400,
        "Content-Type",
    ),
    (
        "form content type",
        b"model=tiny",
        {"Content-Type": "application/x-www-form-urlencoded"},
        400,
        "Content-Type",
    ),
]


def post(gw, body, headers=None, path="/chat/completions"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Authorization": f"Bearer {gw.key}", "Content-Type": "application/json", **(headers or {})}
    return httpx.post(gw.url + path, content=raw, headers=h, timeout=30)


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "param"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_a_4xx_in_openai_shape_naming_the_field(
    gw, case, body, headers, status, param
):
    r = post(gw, body, headers)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param, err


def test_the_off_values_of_unsupported_parameters_still_answer(gw):
    off = chat(top_p=1, logprobs=False, frequency_penalty=0, presence_penalty=0.0, tools=[])
    r = post(gw, off)
    assert r.status_code == 200, r.text
    assert r.headers["x-ladder-route"]


def test_official_client_sees_each_unsupported_parameter_named(gw):
    client = gw.client()
    params = {
        "response_format": {"type": "json_object"},  # a classify route answers a label
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "logit_bias": {"1": 5},
        "frequency_penalty": 1.0,
        "presence_penalty": 1.0,
        "top_p": 0.2,
        "n": 17,
    }
    for name, value in params.items():
        with pytest.raises(openai.BadRequestError) as exc:
            client.chat.completions.create(model="tiny", messages=MSG, **{name: value})
        assert exc.value.param == name, (name, exc.value.body)
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="fake", messages=MSG, logprobs=True)
    assert exc.value.param == "logprobs"
    with pytest.raises(openai.BadRequestError) as exc:
        client.completions.create(model="fake", prompt="x", echo=True)
    assert exc.value.param == "echo"
    with pytest.raises(openai.BadRequestError) as exc:
        client.completions.create(model="fake", prompt="x", suffix="!")
    assert exc.value.param == "suffix"


def test_metrics_need_a_key_unless_public(gw, tmp_path):
    assert httpx.get(gw.root + "/metrics", timeout=10).status_code == 401
    ok = httpx.get(gw.root + "/metrics", headers={"Authorization": f"Bearer {gw.key}"}, timeout=10)
    assert ok.status_code == 200 and "ladder_requests_total" in ok.text
    with gateway(ServeOptions(model="fake"), public_metrics=True) as pub:
        assert httpx.get(pub.root + "/metrics", timeout=10).status_code == 200


def test_fuzzed_bodies_never_a_500_nor_a_traceback(gw, capfd):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )
    fields = st.sampled_from(
        [
            "model",
            "messages",
            "max_tokens",
            "stream",
            "temperature",
            "stop",
            "seed",
            "n",
            "stream_options",
            "prompt",
            "user",
            "top_p",
            "tools",
            "logprobs",
            "x",
        ]
    )
    bodies = st.dictionaries(fields, values, max_size=6) | values

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, path=st.sampled_from(["/chat/completions", "/completions"]))
    def probe(body, path):
        r = post(gw, body, path=path)
        assert r.status_code < 500, r.text
        if r.status_code != 200:
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}

    probe()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "RecursionError" not in err
