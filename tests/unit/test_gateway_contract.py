"""The OpenAI contract, parameter by parameter, with the official client on a real gateway: each
parameter is honoured with the effect OpenAI documents (checked), or refused with a 400 naming it.
Task routes of every kind (scored and generated classify, extract, rag), and /v1/embeddings."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import openai
import pytest

from ladder.dataset import Example
from ladder.engines.fake import FakeEngine
from ladder.serve.catalog import ServeOptions
from serve_util import climb_fake, gateway

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

TEXT = "Standup moved to Friday"
MSG = [{"role": "user", "content": TEXT}]
LABELS = ["work", "personal", "spam"]


class Generating(FakeEngine):
    """The fake engine without label scoring: prompt solutions generate their labels."""

    supports_scoring = False


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    served = climb_fake(tmp_path_factory.mktemp("scored"))
    with gateway(ServeOptions(run=served.run_id)) as g:
        yield g


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    eng = Generating()
    served = climb_fake(tmp_path_factory.mktemp("generated"), engine=lambda root: eng)
    with gateway(ServeOptions(run=served.run_id, engines={"fake": eng})) as g:
        yield g


@pytest.fixture(scope="module")
def extract(tmp_path_factory):
    from conftest import write_extract_task
    from ladder.climb import ClimbOptions, climb

    root = write_extract_task(tmp_path_factory.mktemp("extract") / "x")
    res = climb(root, ClimbOptions(model="fake", rungs=["zero-shot"]))
    with gateway(ServeOptions(run=res.run_id)) as g:
        yield g


def label_scores(g, model: str, text: str) -> list[float]:
    """The route's label log-probabilities for a text, from its solution directly."""
    sol = g.catalog.targets[model].solution
    return sol.predict([Example("x", text, None)])[0].scores


def tokens(g, model: str, text: str) -> int:
    """The answer's tokens as the route's engine tokenizes them."""
    from ladder.serve.targets import answer_tokens

    return answer_tokens(g.catalog.targets[model].solution.engine, text)


# ---------------------------------------------------------------- a route that scores labels


def test_logprobs_are_the_label_scores_in_openai_shape(scored):
    c = scored.client()
    r = c.chat.completions.create(model="tiny", messages=MSG, logprobs=True, top_logprobs=2)
    lp = label_scores(scored, "tiny", TEXT)
    best = int(np.argmax(lp))
    entry = r.choices[0].logprobs.content[0]
    assert r.choices[0].message.content == entry.token == LABELS[best]
    assert entry.logprob == pytest.approx(lp[best]) and entry.bytes == list(LABELS[best].encode())
    ranked = sorted(range(3), key=lambda i: -lp[i])[:2]
    assert [t.token for t in entry.top_logprobs] == [LABELS[i] for i in ranked]
    assert [t.logprob for t in entry.top_logprobs] == pytest.approx([lp[i] for i in ranked])
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-3)  # renormalised over the labels
    legacy = c.completions.create(model="tiny", prompt=TEXT, logprobs=1)
    assert legacy.choices[0].logprobs.tokens == [LABELS[best]]
    assert legacy.choices[0].logprobs.token_logprobs == pytest.approx([lp[best]])
    assert legacy.choices[0].logprobs.text_offset == [0]
    plain = c.chat.completions.create(model="tiny", messages=MSG)
    assert plain.choices[0].logprobs is None


def test_n_samples_labels_at_the_temperature_seeded(scored):
    c = scored.client()
    cold = c.chat.completions.create(model="tiny", messages=MSG, n=3)
    assert [ch.index for ch in cold.choices] == [0, 1, 2]
    assert len({ch.message.content for ch in cold.choices}) == 1  # T=0: the argmax, 3 times
    hot = c.chat.completions.create(model="tiny", messages=MSG, n=16, temperature=2, seed=7)
    labels = [ch.message.content for ch in hot.choices]
    assert len(labels) == 16 and set(labels) <= set(LABELS) and len(set(labels)) > 1
    again = c.chat.completions.create(model="tiny", messages=MSG, n=16, temperature=2, seed=7)
    assert [ch.message.content for ch in again.choices] == labels  # the seed fixes the draws
    assert hot.usage.completion_tokens == sum(tokens(scored, "tiny", x) for x in labels)
    assert hot.usage.prompt_tokens == cold.usage.prompt_tokens  # the prompt, counted once


def test_temperature_and_seed_change_a_single_answer(scored):
    c = scored.client()
    answers = {
        c.chat.completions.create(model="tiny", messages=MSG, temperature=2, seed=s)
        .choices[0]
        .message.content
        for s in range(12)
    }
    assert len(answers) > 1


def test_stop_cuts_and_completion_tokens_count_the_answer(scored):
    c = scored.client()
    full = c.chat.completions.create(model="tiny", messages=MSG).choices[0].message.content
    r = c.chat.completions.create(model="tiny", messages=MSG, stop=[full[2:]])
    assert r.choices[0].message.content == full[:2] and r.choices[0].finish_reason == "stop"
    r = c.completions.create(model="tiny", prompt=TEXT)
    assert r.usage.completion_tokens == tokens(scored, "tiny", r.choices[0].text) > 0


def test_json_schema_of_one_label_property_is_honoured(scored):
    from typing import Literal

    from pydantic import BaseModel

    class Triage(BaseModel):
        label: Literal["work", "personal", "spam"]

    c = scored.client()
    r = c.chat.completions.parse(model="tiny", messages=MSG, response_format=Triage)
    assert r.choices[0].message.parsed.label in LABELS
    assert json.loads(r.choices[0].message.content) == {"label": r.choices[0].message.parsed.label}


REFUSED_ON_SCORED = [
    ("json_object on classify", {"response_format": {"type": "json_object"}}, "response_format"),
    (
        "json_schema of another shape",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "a",
                    "schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
                },
            }
        },
        "response_format",
    ),
    (
        "json_schema without some label",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "a",
                    "schema": {
                        "type": "object",
                        "properties": {"label": {"enum": ["work", "spam"]}},
                    },
                },
            }
        },
        "response_format",
    ),
    (
        "logprobs with response_format",
        {
            "logprobs": True,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "a",
                    "schema": {"type": "object", "properties": {"label": {"type": "string"}}},
                },
            },
        },
        "logprobs",
    ),
    ("a system message", {"messages": [{"role": "system", "content": "x"}, *MSG]}, "messages"),
    ("n over the gateway's limit", {"n": 17}, "n"),
    ("top_logprobs without logprobs", {"top_logprobs": 2}, "top_logprobs"),
    ("tools", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ("tool_choice", {"tool_choice": "auto"}, "tool_choice"),
    ("logit_bias", {"logit_bias": {"1": 3}}, "logit_bias"),
    ("frequency_penalty", {"frequency_penalty": 0.5}, "frequency_penalty"),
    ("presence_penalty", {"presence_penalty": 0.5}, "presence_penalty"),
    ("top_p", {"top_p": 0.5}, "top_p"),
]


@pytest.mark.parametrize(
    ("case", "kw", "param"), REFUSED_ON_SCORED, ids=[c[0] for c in REFUSED_ON_SCORED]
)
def test_what_a_scored_route_cannot_honour_is_a_400_naming_it(scored, case, kw, param):
    kw = {"messages": MSG, **kw}
    with pytest.raises(openai.BadRequestError) as exc:
        scored.client().chat.completions.create(model="tiny", **kw)
    assert exc.value.param == param, exc.value.body


def test_echo_and_raw_model_logprobs_are_refused_by_name(scored):
    c = scored.client()
    with pytest.raises(openai.BadRequestError) as exc:
        c.completions.create(model="tiny", prompt=TEXT, echo=True)
    assert exc.value.param == "echo"
    for kw in ({"logprobs": True}, {"response_format": {"type": "json_object"}}):
        with pytest.raises(openai.BadRequestError) as exc:
            c.chat.completions.create(model="fake", messages=MSG, **kw)
        assert exc.value.param == next(iter(kw))


def test_streamed_choices_carry_their_index_and_logprobs(scored):
    chunks = list(
        scored.client().chat.completions.create(
            model="tiny", messages=MSG, n=2, logprobs=True, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    by_choice: dict[int, str] = {}
    for ch in chunks:
        for choice in ch.choices:
            by_choice[choice.index] = by_choice.get(choice.index, "") + (choice.delta.content or "")
            if choice.delta.content:
                assert choice.logprobs.content[0].token == choice.delta.content
    assert sorted(by_choice) == [0, 1] and set(by_choice.values()) <= set(LABELS)
    assert chunks[-1].usage.completion_tokens == sum(
        tokens(scored, "tiny", t) for t in by_choice.values()
    )


def test_raw_model_samples_n_choices(scored):
    r = scored.client().completions.create(model="fake", prompt="hi", n=3, temperature=1)
    assert [ch.text for ch in r.choices] == [" ok"] * 3 and r.usage.completion_tokens == 3


# ---------------------------------------------------------------- a route that generates labels


def test_a_generating_route_samples_n_and_has_no_logprobs(generated):
    c = generated.client()
    r = c.chat.completions.create(model="tiny", messages=MSG, n=6, temperature=1, seed=3)
    labels = [ch.message.content for ch in r.choices]
    assert len(labels) == 6 and set(labels) <= set(LABELS) and len(set(labels)) > 1
    assert r.usage.completion_tokens == sum(tokens(generated, "tiny", x) for x in labels)
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="tiny", messages=MSG, logprobs=True)
    assert exc.value.param == "logprobs" and "generates" in exc.value.message


# ---------------------------------------------------------------- extraction


def test_extraction_answers_a_json_object_and_honours_its_schema(extract):
    c = extract.client()
    task = extract.catalog.ctx.task
    ticket = "I was charged twice for order NH-100003. Regards, Bo"
    msgs = [{"role": "user", "content": ticket}]
    plain = json.loads(
        c.chat.completions.create(model="tiny-extract", messages=msgs).choices[0].message.content
    )
    assert isinstance(plain, dict) and task.schema_validator.is_valid(plain)
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "ticket", "schema": task.schema, "strict": True},
    }
    r = c.chat.completions.create(model="tiny-extract", messages=msgs, response_format=fmt)
    assert (
        json.loads(r.choices[0].message.content) == plain and r.choices[0].message.refusal is None
    )
    r = c.chat.completions.create(
        model="tiny-extract", messages=msgs, response_format={"type": "json_object"}
    )
    assert json.loads(r.choices[0].message.content) == plain
    other = {**fmt, "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="tiny-extract", messages=msgs, response_format=other)
    assert exc.value.param == "response_format" and "output_schema" in exc.value.message


def test_max_tokens_and_stop_cut_an_extraction_as_openai_does(extract):
    c = extract.client()
    msgs = [{"role": "user", "content": "My hub will not connect for order unknown."}]
    full = c.chat.completions.create(model="tiny-extract", messages=msgs).choices[0]
    n = tokens(extract, "tiny-extract", full.message.content)
    assert full.finish_reason == "stop" and n > 3
    cut = c.chat.completions.create(model="tiny-extract", messages=msgs, max_tokens=3)
    text = cut.choices[0].message.content
    assert cut.choices[0].finish_reason == "length" and full.message.content.startswith(text)
    assert cut.usage.completion_tokens == tokens(extract, "tiny-extract", text) == 3
    stopped = c.chat.completions.create(model="tiny-extract", messages=msgs, stop=['"order_id"'])
    content = stopped.choices[0].message.content
    assert content == full.message.content.split('"order_id"')[0]
    assert stopped.choices[0].finish_reason == "stop"


# ---------------------------------------------------------------- rag, and embeddings


def _oracle(gold):
    """Answers the gold answer when a shown passage holds it, citing that passage."""
    from ladder.kinds import normalize_answer

    def respond(req) -> str:
        block = req.prompt.rsplit("Passages:\n", 1)[-1]
        q = block.rsplit("Question: ", 1)[-1].split("\n", 1)[0]
        found = re.findall(
            r"^\[(\d+)\] [^\n]*\n(.*?)(?=\n\n\[\d+\] |\n\nQuestion: )", block, re.M | re.S
        )
        for n, text in found:
            if gold.get(q) and normalize_answer(gold[q]) in normalize_answer(text):
                return f" {gold[q]} [{n}]"
        return " unanswerable"

    return respond


@pytest.fixture(scope="module")
def rag(tmp_path_factory, embedded_model):
    from ladder.climb import ClimbOptions, climb
    from retrieval_helpers import QUESTIONS, write_qa_task

    eng = FakeEngine(responder=_oracle({q: a for _, q, a, _ in QUESTIONS}))
    task = write_qa_task(
        tmp_path_factory.mktemp("rag") / "t", extra_yaml="rungs: {rag: {k: [2]}}\n"
    )
    res = climb(
        task,
        ClimbOptions(model="fake", rungs=["rag", "long-context"], all_rungs=True),
        ctx_hook=lambda ctx: ctx.set_engine("fake", eng),
    )
    with gateway(ServeOptions(run=res.run_id, engines={"fake": eng})) as g:
        yield g


def test_a_rag_winner_is_served_with_citations(rag):
    c = rag.client()
    ids = [m.id for m in c.models.list()]
    assert {"tiny-qa/rag", "tiny-qa/long-context", "all-MiniLM-L6-v2"} <= set(ids)
    q = [{"role": "user", "content": "How many days do I have to return a device?"}]
    r = c.chat.completions.create(model="tiny-qa/rag", messages=q)
    msg = r.choices[0].message
    assert msg.content == "45 days"
    cites = msg.model_extra["citations"]
    assert cites and cites[0]["document"] == "returns.md"
    assert cites[0]["chunk"].startswith("returns.md#") and 0 < cites[0]["score"] <= 1
    assert r.usage.completion_tokens == tokens(rag, "tiny-qa/rag", "45 days")
    legacy = c.completions.create(model="tiny-qa/rag", prompt=q[0]["content"])
    assert legacy.choices[0].model_extra["citations"] == cites
    lc = c.chat.completions.create(model="tiny-qa/long-context", messages=q)
    assert lc.choices[0].message.content  # the corpus in the prompt; it cites nothing
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(
            model="tiny-qa/rag", messages=q, response_format={"type": "json_object"}
        )
    assert exc.value.param == "response_format"


def test_embeddings_in_openai_shape_float_and_base64(rag):
    c = rag.client()
    texts = ["How fast are refunds?", "Refunds reach your card within 2 business days."]
    want = rag.catalog.embeddings.embedder.embed(texts)
    floats = c.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1] and len(floats.data[0].embedding) == 384
    assert np.allclose([d.embedding for d in floats.data], want, atol=1e-6)
    decoded = c.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # the client asks base64
    assert np.allclose([d.embedding for d in decoded.data], want, atol=1e-6)
    raw = c.embeddings.with_raw_response.create(
        model="all-MiniLM-L6-v2", input=texts[0], encoding_format="base64"
    )
    blob = json.loads(raw.text)["data"][0]["embedding"]
    assert np.allclose(np.frombuffer(base64.b64decode(blob), "<f4"), want[0], atol=1e-6)
    tok = rag.catalog.embeddings.embedder.tokenizer
    assert floats.usage.prompt_tokens == sum(len(tok(t)["input_ids"]) for t in texts)
    assert c.embeddings.create(model="all-MiniLM-L6-v2", input="x", dimensions=384).data


EMBED_BAD = [
    ("dimensions", {"dimensions": 128}, "dimensions"),
    ("token arrays", {"input": [[1, 2, 3]]}, "input"),
    ("empty text", {"input": ""}, "input"),
    ("too long", {"input": "refund " * 400}, "input"),
    ("unknown model", {"model": "text-embedding-3-small"}, "model"),
]


@pytest.mark.parametrize(("case", "kw", "param"), EMBED_BAD, ids=[c[0] for c in EMBED_BAD])
def test_bad_embedding_requests_are_a_4xx_naming_the_field(rag, case, kw, param):
    args = {"model": "all-MiniLM-L6-v2", "input": "hello", **kw}
    with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as exc:
        rag.client().embeddings.create(**args)
    assert exc.value.param == param, exc.value.body


def test_the_embedding_model_does_not_chat(rag):
    with pytest.raises(openai.BadRequestError) as exc:
        rag.client().chat.completions.create(model="all-MiniLM-L6-v2", messages=MSG)
    assert exc.value.param == "model" and "/v1/embeddings" in exc.value.message
