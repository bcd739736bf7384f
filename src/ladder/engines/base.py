"""The engine contract: a backend that runs a model, batched, and reports usage for every call.

Engines are small: `generate` for text and `score` for the log-likelihood of candidate
continuations (label scoring). Both take a list so an engine can batch; both return one result
per request, in order, carrying tokens in/out and latency. `latency_s` is what the caller waited
(for a batched engine, its batch's wall time); `compute_s` is the request's share of engine time
(batch wall time / batch size) - the figure self-hosted cost per call is computed from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable


@dataclass
class GenRequest:
    prompt: str
    max_tokens: int = 64
    temperature: float = 0.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    # optional constraints an engine may honour (a fake engine uses them to answer plausibly)
    choices: list[str] | None = None
    json_schema: dict[str, Any] | None = None


@dataclass
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    latency_s: float
    compute_s: float
    finish_reason: str = "stop"
    cached_tokens: int = 0  # prompt tokens served from a prefix/KV cache


@dataclass
class ScoreRequest:
    prompt: str
    choices: list[str]


@dataclass
class Scores:
    logprobs: list[float]  # log P(choice | prompt), one per choice, in order
    tokens_in: int
    latency_s: float
    compute_s: float


@runtime_checkable
class Engine(Protocol):
    """What every engine offers. Engines also declare what they are (`CAPABILITIES`: read them
    with `capability`, which gives a plugin's engine that omits one the default)."""

    model: str
    supports_scoring: bool

    def generate(self, requests: list[GenRequest]) -> list[Completion]: ...

    def score(self, requests: list[ScoreRequest]) -> list[Scores]: ...

    def count_tokens(self, text: str) -> int: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


# What an engine declares about itself, with the default for one that does not say:
# - price_basis: "hour" when its answers cost machine time you pay for (in this process, on your
#   own vLLM, or a server on loopback), "tokens" when they are billed per token by a provider;
#   economics prices a scorecard and the gateway logs an answer's cost by it, and the hybrid's
#   small side is an "hour" engine (the run's own model);
# - supports_adapters: LoRA adapters can be loaded on it and switched per request;
# - in_process: it runs on the gateway's engine worker (one thread, batched), not behind HTTP;
# - structured_outputs: a request's JSON schema constrains its decoding (the answer is valid JSON
#   by construction, so the gateway need not check a raw model's `response_format` itself).
CAPABILITIES: dict[str, Any] = {
    "price_basis": "hour",
    "supports_adapters": False,
    "in_process": True,
    "structured_outputs": False,
}
LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def capability(engine: Any, name: str) -> Any:
    """An engine's declared capability (`CAPABILITIES`), or its default."""
    return getattr(engine, name, CAPABILITIES[name])


def price_basis(info: dict[str, Any]) -> str:
    """The price basis a stored `info()` records; runs from before engines declared it get the
    same answer from their engine name and URL."""
    if info.get("price_basis"):
        return str(info["price_basis"])
    if info.get("engine") != "openai":
        return "hour"  # hf, vllm, fake, and plugins that run in-process
    return "hour" if _host(info.get("base_url")) in LOOPBACK else "tokens"


def _host(url: str | None) -> str:
    from urllib.parse import urlparse

    return urlparse(url or "").hostname or ""


def truncate_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut generated text at the first stop string; report whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def answer_end(text: str, req: GenRequest) -> int | None:
    """Where the answer in `text` is complete, or None while it is not: engines stop there.

    A request with a JSON schema is complete when its first top-level object closes (a base
    model otherwise runs on to the token limit after the object); one with choices when the
    text is a whole choice that no longer choice begins with.
    """
    if req.json_schema is not None:
        return _json_close(text)
    if req.choices:
        t = text.strip()
        if t in req.choices and not any(c != t and c.startswith(t) for c in req.choices):
            return len(text.rstrip())
    return None


def _json_close(text: str) -> int | None:
    """The index just after the close of the object opened by the first `{`, skipping strings."""
    start = text.find("{")
    if start < 0:
        return None
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            esc, in_str = (False, True) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "{}":
            depth += 1 if ch == "{" else -1
            if depth == 0:
                return i + 1
    return None


def generate_lines(engine, requests: list[GenRequest]) -> list[Completion]:
    """`engine.generate` for one-line answers: a line begun on the next line is asked again.

    After "Answer:" a base model often writes a line break first, and a stop at the line break
    then cuts its answer to nothing. Those rows (nothing but the stop, so no EOS) go once more
    with the line break added to the prompt; tokens and time of both calls count.
    """
    comps = engine.generate(requests)
    again = [
        i
        for i, c in enumerate(comps)
        if not c.text.strip() and c.finish_reason == "stop" and c.tokens_out > 0
    ]
    if not again:
        return comps
    retry = [replace(requests[i], prompt=requests[i].prompt + "\n") for i in again]
    for i, c in zip(again, engine.generate(retry)):
        first = comps[i]
        c.tokens_in += first.tokens_in
        c.tokens_out += first.tokens_out
        c.latency_s += first.latency_s
        c.compute_s += first.compute_s
        comps[i] = c
    return comps
