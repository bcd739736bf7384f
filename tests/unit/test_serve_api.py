"""The gateway over a real loopback server, driven by the official `openai` client."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from ladder.engines.fake import FakeEngine
from ladder.serve.catalog import ServeOptions
from serve_util import climb_fake, gateway

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")


@pytest.fixture
def served(tmp_path):
    return climb_fake(tmp_path)


@pytest.fixture
def gw(served):
    with gateway(ServeOptions(run=served.run_id)) as g:
        yield g


def test_models_lists_base_rungs_and_winner(gw):
    ids = [m.id for m in gw.client().models.list()]
    assert ids == ["fake", "tiny/zero-shot", "tiny/few-shot", "tiny", "all-MiniLM-L6-v2"]
    card = gw.client().models.retrieve("tiny/few-shot")
    assert card.model_extra["ladder"]["kind"] == "task"


def test_task_model_answers_with_a_label_and_says_which_route(gw):
    from ladder.store.db import Store

    raw = gw.client().chat.completions.with_raw_response.create(
        model="tiny", messages=[{"role": "user", "content": "Standup moved to Friday"}]
    )
    resp = raw.parse()
    winner = Store().get_run(gw.catalog.run_id)["summary"]
    assert raw.headers["x-ladder-route"] == (winner["bar_met_by"] or winner["best_rung"])
    assert resp.choices[0].message.content in ("work", "personal", "spam")
    assert resp.usage.prompt_tokens > 5 and resp.id.startswith("chatcmpl-")
    assert resp.model_extra["ladder"]["valid"] is True
    assert resp.model_extra["ladder"]["confidence"] >= 0  # label log-prob margin
    with pytest.raises(openai.BadRequestError) as exc:  # the run's prompt would not read it
        gw.client().chat.completions.create(
            model="tiny",
            messages=[
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "Standup moved to Friday"},
            ],
        )
    assert exc.value.param == "messages" and "one user message" in exc.value.message


def test_task_solution_equals_the_stored_prediction(gw, served):
    """The served solution is the run's, rebuilt: same answer as the climb stored on the hold-out."""
    from ladder.dataset import load_dataset
    from ladder.store.db import Store
    from ladder.task import load_task

    ds = load_dataset(load_task(served.task_dir))
    card = next(c for c in Store().scorecards(served.run_id) if c["rung"] == "few-shot")
    stored = Store().predictions(served.run_id, "few-shot", card["variant"], "holdout")
    for ex in ds.holdout[:5]:
        r = gw.client().completions.create(model="tiny/few-shot", prompt=ex.input)
        assert r.choices[0].text == stored[ex.id].output


def test_raw_model_completion_and_chat(gw):
    c = gw.client()
    r = c.completions.create(model="fake", prompt="Hello there", max_tokens=5)
    assert r.choices[0].text == " ok" and r.usage.completion_tokens == 1
    raw = c.chat.completions.with_raw_response.create(
        model="fake", messages=[{"role": "user", "content": "hi"}]
    )
    assert (
        raw.headers["x-ladder-route"] == "fake" and raw.parse().choices[0].message.content == " ok"
    )


def test_streaming_chat_and_completions(gw):
    c = gw.client()
    chunks = list(
        c.chat.completions.create(
            model="tiny/zero-shot",
            messages=[{"role": "user", "content": "You won the lottery, send your password"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text in ("work", "personal", "spam")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage.prompt_tokens > 0 and not chunks[-1].choices
    pieces = [
        ch.choices[0].text for ch in c.completions.create(model="fake", prompt="hi", stream=True)
    ]
    assert "".join(pieces) == " ok"


BAD = [
    ("malformed json", {"content": b'{"model": "tiny", "messages": ['}, 400, "invalid_json"),
    ("not an object", {"json": [1, 2]}, 400, None),
    (
        "missing model",
        {"json": {"messages": [{"role": "user", "content": "x"}]}},
        400,
        "missing_required_parameter",
    ),
    (
        "unknown model",
        {"json": {"model": "nope", "messages": [{"role": "user", "content": "x"}]}},
        404,
        "model_not_found",
    ),
    (
        "bad role",
        {"json": {"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}},
        400,
        "invalid_value",
    ),
    ("no messages", {"json": {"model": "tiny", "messages": []}}, 400, "invalid_value"),
    (
        "temperature 5",
        {
            "json": {
                "model": "fake",
                "messages": [{"role": "user", "content": "x"}],
                "temperature": 5,
            }
        },
        400,
        "invalid_value",
    ),
    (
        "n = 200",
        {"json": {"model": "fake", "messages": [{"role": "user", "content": "x"}], "n": 200}},
        400,
        "invalid_value",
    ),
    (
        "max_tokens -1",
        {
            "json": {
                "model": "fake",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": -1,
            }
        },
        400,
        "invalid_value",
    ),
    (
        "max_tokens over the limit",
        {
            "json": {
                "model": "fake",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 100000,
            }
        },
        400,
        "invalid_value",
    ),
    (
        "max_tokens a string",
        {
            "json": {
                "model": "fake",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": "lots",
            }
        },
        400,
        "invalid_value",
    ),
    (
        "five stops",
        {
            "json": {
                "model": "fake",
                "messages": [{"role": "user", "content": "x"}],
                "stop": list("abcde"),
            }
        },
        400,
        "invalid_value",
    ),
    (
        "image part",
        {
            "json": {
                "model": "fake",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            }
        },
        400,
        "invalid_value",
    ),
    (
        "task model without input",
        {"json": {"model": "tiny", "messages": [{"role": "system", "content": "x"}]}},
        400,
        "invalid_value",
    ),
    (
        "prompt too long",
        {"json": {"model": "fake", "messages": [{"role": "user", "content": "word " * 9000}]}},
        400,
        "context_length_exceeded",
    ),
    (
        "oversize body",
        {"json": {"model": "fake", "messages": [{"role": "user", "content": "x" * 1_100_000}]}},
        413,
        "request_too_large",
    ),
]


@pytest.mark.parametrize(("case", "kw", "status", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_an_openai_error_never_a_500(gw, case, kw, status, code):
    r = httpx.post(
        f"{gw.url}/chat/completions",
        headers={"Authorization": f"Bearer {gw.key}", "Content-Type": "application/json"},
        timeout=30,
        **kw,
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if code:
        assert err["code"] == code


def test_official_client_raises_the_matching_errors(gw):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        gw.client().chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        gw.client(key="ldr-wrong").models.list()
    with pytest.raises(openai.BadRequestError, match="temperature"):
        gw.client().completions.create(model="fake", prompt="x", temperature=3)
    r = httpx.post(f"{gw.url}/chat/completions", json={"model": "fake"}, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    for method, path in (("GET", "/v1/nothing"), ("GET", "/v1/chat/completions")):
        r = httpx.request(method, gw.root + path, timeout=10)
        assert r.status_code in (404, 405) and r.json()["error"]["code"] == "unknown_url"


def test_revoked_key_stops_working(gw):
    kid, key = gw.db.create_key("temp")
    assert gw.client(key=key).models.list().data
    assert gw.db.revoke_key(kid) == 1
    with pytest.raises(openai.AuthenticationError):
        gw.client(key=key).models.list()


def test_cache_serves_temperature_zero_repeats_and_counts_in_metrics(gw):
    c = gw.client()
    msgs = [{"role": "user", "content": "Budget approval needed"}]
    first = c.chat.completions.with_raw_response.create(model="tiny", messages=msgs)
    again = c.chat.completions.with_raw_response.create(
        model="tiny", messages=msgs, stream=False, user="other"
    )
    hot = c.chat.completions.with_raw_response.create(model="fake", messages=msgs, temperature=0.7)
    assert (
        first.headers["x-ladder-cache"],
        again.headers["x-ladder-cache"],
        hot.headers["x-ladder-cache"],
    ) == ("miss", "hit", "off")
    assert first.parse().choices[0].message.content == again.parse().choices[0].message.content
    assert httpx.get(gw.root + "/metrics").status_code == 401  # keys guard the metrics too
    metrics = httpx.get(gw.root + "/metrics", headers={"Authorization": f"Bearer {gw.key}"}).text
    assert "ladder_cache_hits_total 1.0" in metrics and "ladder_cache_misses_total 1.0" in metrics
    assert 'ladder_requests_total{model="tiny",route=' in metrics
    assert "ladder_engine_busy_seconds" in metrics and "ladder_engine_batches 2.0" in metrics


def test_every_request_is_logged_and_no_secret_is(gw):
    c = gw.client()
    ok = c.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Dinner at seven on Sunday"}]
    )
    with pytest.raises(openai.BadRequestError):
        c.completions.create(model="fake", prompt="x", max_tokens=100000)
    gw.gw.writer.flush()
    rows = {r["id"]: r for r in gw.db.query()}
    row = rows[ok.id]
    assert (
        row["status"] == 200 and row["model"] == "tiny" and row["route"] and row["latency_ms"] > 0
    )
    assert (
        row["input"] == "Dinner at seven on Sunday"
        and json.loads(row["output"]) == ok.choices[0].message.content
    )
    assert row["tokens_in"] == ok.usage.prompt_tokens and row["key_id"].startswith("key_")
    assert any(r["status"] == 400 and "max_tokens" in r["error"] for r in rows.values())
    dump = "\n".join(gw.db._conn().iterdump())
    assert gw.key not in dump and gw.key[8:] not in dump  # only its hash and first characters


def test_feedback_marks_a_response(gw):
    c = gw.client()
    resp = c.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Please review my pull request"}]
    )
    r = c.post(
        "/feedback",
        body={"id": resp.id, "rating": "bad", "note": "it is work"},
        cast_to=httpx.Response,
    )
    assert r.json() == {"object": "feedback", "id": resp.id, "rating": "bad"}
    assert gw.db.get(resp.id)["feedback"] == "bad"
    with pytest.raises(openai.NotFoundError):
        c.post("/feedback", body={"id": "chatcmpl-nope", "rating": "good"}, cast_to=httpx.Response)
    with pytest.raises(openai.BadRequestError, match="rating"):
        c.post("/feedback", body={"id": resp.id, "rating": "meh"}, cast_to=httpx.Response)


def test_full_queue_answers_503_not_a_hang(tmp_path):
    import concurrent.futures as cf

    slow = FakeEngine("slow", latency_s=0.3)
    with gateway(ServeOptions(model="slow", engines={"slow": slow}), max_queue=2, max_batch=1) as g:
        c = g.client()

        def one(i):
            try:
                c.completions.create(model="slow", prompt=f"p{i}", max_tokens=2, temperature=1)
                return 200
            except openai.APIStatusError as exc:
                assert (
                    exc.body["code"] == "overloaded" and exc.response.headers["retry-after"] == "1"
                )
                return exc.status_code

        with cf.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one, range(8)))
    assert codes.count(200) >= 2 and codes.count(503) >= 1 and set(codes) <= {200, 503}


def test_health_and_no_auth_mode(tmp_path):
    with gateway(auth=False, log=False) as g:
        assert httpx.get(g.root + "/health").json()["status"] == "ok"
        assert (
            g.client(key="anything").completions.create(model="fake", prompt="x").choices[0].text
            == " ok"
        )


def test_gate_bounds_calls_in_flight():
    from ladder.serve.worker import Gate, Overloaded

    gate = Gate(2, "the upstream")
    with (
        gate.slot(),
        gate.slot(),
        pytest.raises(Overloaded, match="2 requests are already waiting"),
    ):
        gate.slot().__enter__()
    with gate.slot():
        assert gate.inflight == 1


def test_cost_log_uses_the_price_book_or_the_flag():
    slow = FakeEngine("slow", latency_s=0.02)
    with gateway(ServeOptions(model="slow", engines={"slow": slow})) as g:
        assert g.catalog.price_hour > 0  # this machine, priced as the book's `cpu`
        assert any("price book" in line for line in g.catalog.lines)
    with gateway(ServeOptions(model="slow", engines={"slow": slow}, price_hour=3600.0)) as g:
        r = g.client().completions.create(model="slow", prompt="x", temperature=1)
        g.gw.writer.flush()
        row = g.db.get(r.id)
        assert row["cost_usd"] == pytest.approx(0.02, abs=0.015)  # 1 $/s x ~0.02 s of compute
