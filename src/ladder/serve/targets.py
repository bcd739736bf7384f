"""What a model name serves: a local model or adapter, a task solution, or an upstream endpoint.

Every target turns one validated request (`Call`) into one `Answer` (text, tokens, which route
served it). Local models and task solutions on local models run on the engine worker (one
thread, batched); solutions on remote models run in a bounded thread pool; upstream models
(`upstream.py`) are proxied with an async HTTP client.
"""

from __future__ import annotations

import asyncio
import copy
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from ladder.dataset import Example
from ladder.engines.base import GenRequest, capability, truncate_at_stop
from ladder.serve import contract
from ladder.serve.schemas import ApiError
from ladder.serve.worker import Gate, Worker


@dataclass
class Call:
    """One request, normalised: what any target needs to answer it."""

    endpoint: str  # chat | completions
    prompt: str  # the raw prompt (completions) or the chat rendered for a raw model
    text: str  # the task input: the last user message, or the prompt
    max_tokens: int
    temperature: float
    stop: list[str]
    seed: int | None
    body: dict[str, Any]  # the validated request, for upstream pass-through
    id: str = ""
    n: int = 1  # choices to answer
    limit: int | None = None  # max_tokens as the request gave it (None: not given)
    top: int | None = None  # log-probabilities asked for, with this many alternatives
    format: dict[str, Any] | None = None  # response_format, when not plain text

    def choices(self) -> list[Call]:
        """One call per choice; sampled choices get consecutive seeds (each its own sample)."""
        if self.n == 1:
            return [self]
        return [
            replace(self, n=1, seed=None if self.seed is None else self.seed + i)
            for i in range(self.n)
        ]


@dataclass
class Answer:
    text: str
    route: str  # what served it: a model, an adapter, a rung, an upstream
    tokens_in: int = 0
    tokens_out: int = 0
    finish: str = "stop"
    output: Any = None  # the task output (task and route models)
    valid: bool | None = None
    confidence: float | None = None
    threshold: float | None = None
    fallback: str | None = None  # why a route did not use the model it chose
    compute_s: float = 0.0
    cost_usd: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    scores: list[float] | None = None  # the label log-probabilities, when the solution scored
    logprobs: Any = None  # [(token, logprob, [(token, logprob)...])], or an upstream's as sent
    citations: list[dict[str, Any]] | None = None  # passages a retrieval answer cites
    refusal: str | None = None  # why the answer does not fit the response_format asked for


class Target:
    """What a model name serves. The gateway asks a target what it is (`renders_chat`,
    `is_task`, `relays`), never its `role`, which only names it in `/v1/models`."""

    name: str
    role: str  # model | adapter | task | route | upstream | embedding
    renders_chat = False  # a raw model: chat messages become one prompt by its chat template
    is_task = False  # answers its task from one user message, with the prompt its run measured
    relays = False  # proxies another server: a stream is relayed as it comes
    description: str = ""
    default_temperature: float = 1.0  # OpenAI's default for raw models

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def cache_id(self) -> str:
        return self.name

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return plain_chat(messages)

    def check(self, call: Call) -> None:
        """Refuse (400 naming it) a parameter this model cannot honour."""
        if call.top is not None:
            raise contract.refuse(
                "logprobs", f"is not available on {self.name!r}: it returns no log-probabilities."
            )
        if call.format is not None:
            raise contract.refuse(
                "response_format",
                f"is not available on {self.name!r}: it cannot constrain its output; omit it.",
            )

    async def answer(self, call: Call) -> Answer:
        raise NotImplementedError

    async def answers(self, call: Call) -> list[Answer]:
        """`call.n` answers: one call per choice, run together."""
        return list(await asyncio.gather(*(self.answer(c) for c in call.choices())))


def plain_chat(messages: list[dict[str, str]]) -> str:
    """A chat as text for a model without a chat template; one user message is sent as is."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join([*lines, "Assistant:"])


def loop_tokenizer(engine):
    """The engine's tokenizer, copied once for the event loop's own use (token limits, chat).

    A fast tokenizer is not safe to call from two threads at once (each call sets its padding
    and truncation state), and the engine worker thread calls the engine's own.
    """
    base = getattr(engine, "base", engine)  # adapter views share their base's tokenizer
    tok = getattr(base, "tokenizer", None)
    if tok is None:
        return None
    if "_loop_tokenizer" not in base.__dict__:
        base.__dict__["_loop_tokenizer"] = copy.deepcopy(tok)
    return base.__dict__["_loop_tokenizer"]


def count_tokens(engine, text: str) -> int:
    tok = loop_tokenizer(engine)
    return len(tok(text).input_ids) if tok is not None else engine.count_tokens(text)


def answer_tokens(engine, text: str) -> int:
    """Tokens of generated text: the engine's tokenizer without the special tokens (BOS) a
    prompt starts with."""
    tok = loop_tokenizer(engine)
    if tok is None:
        return engine.count_tokens(text)
    return len(tok(text, add_special_tokens=False).input_ids)


async def on_worker(worker: Worker, key, item, run, timeout: float):
    """Run a job on the engine worker and wait for it without blocking the event loop."""
    fut = worker.submit(key, item, run)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
    except asyncio.TimeoutError:
        fut.cancel()
        raise ApiError(
            504,
            f"the model did not answer within {timeout:g} s.",
            type="server_error",
            code="timeout",
        ) from None


class LocalModel(Target):
    """A local model or one of its adapters (an engine view), answering raw prompts."""

    renders_chat = True

    def __init__(
        self,
        name: str,
        engine,
        worker: Worker,
        *,
        role: str = "model",
        price_hour: float = 0.0,
        timeout: float = 120.0,
        pool: ThreadPoolExecutor | None = None,
        gate: Gate | None = None,
    ):
        self.name, self.engine, self.worker, self.role = name, engine, worker, role
        self.price_hour, self.timeout = price_hour, timeout
        # an engine in another process (vLLM) is called from a thread pool, many at once
        self.pool, self.gate = pool, gate or Gate(256, "the model server")
        info = engine.info()
        self.description = f"{role} on {info.get('base_model', info.get('model'))}" + (
            f" + adapter {info['adapter']}" if info.get("adapter") else ""
        )
        self.constrains = bool(capability(engine, "structured_outputs"))  # JSON by construction

    def check(self, call: Call) -> None:
        super().check(replace(call, format=None) if self.constrains else call)

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.engine, text)

    def cache_id(self) -> str:
        ident = getattr(self.engine, "identity", None)
        return ident() if ident else self.name

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        tok = loop_tokenizer(self.engine)
        if tok is not None and getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            bos = tok.bos_token or ""
            return text[len(bos) :] if bos and text.startswith(bos) else text  # the engine adds BOS
        return plain_chat(messages)

    async def answer(self, call: Call) -> Answer:
        schema = None
        if call.format is not None:
            schema = (call.format.get("json_schema") or {}).get("schema") or {"type": "object"}
        req = GenRequest(
            call.prompt,
            max_tokens=call.max_tokens,
            temperature=call.temperature,
            stop=call.stop,
            seed=call.seed,
            json_schema=schema,
        )
        if self.pool is not None:
            loop = asyncio.get_running_loop()
            with self.gate.slot():
                fut = loop.run_in_executor(self.pool, self.engine.generate, [req])
                comp = (await asyncio.wait_for(fut, self.timeout))[0]
        else:
            comp = await on_worker(self.worker, self.name, req, self.engine.generate, self.timeout)
        return Answer(
            comp.text,
            self.name,
            comp.tokens_in,
            comp.tokens_out,
            comp.finish_reason,
            compute_s=comp.compute_s,
            cost_usd=comp.compute_s * self.price_hour / 3600,
        )


class TaskModel(Target):
    """A task solution: the request's text is the input; the answer is the task's output.

    Local solutions run on the engine worker, batched per (solution, temperature, seed);
    remote ones (a prompt on an upstream model) in a bounded thread pool.
    """

    role = "task"
    is_task = True
    default_temperature = 0.0  # a task model answers deterministically unless asked otherwise

    def __init__(
        self,
        name: str,
        solution,
        route: str,
        *,
        worker: Worker | None,
        pool: ThreadPoolExecutor | None = None,
        gate: Gate | None = None,
        confidence=None,
        price_hour: float = 0.0,
        prices: tuple[float, float] = (0.0, 0.0),
        timeout: float = 120.0,
    ):
        self.name, self.solution, self.route = name, solution, route
        self.worker, self.pool, self.timeout = worker, pool, timeout
        self.gate = gate or Gate(256, "the remote model")  # bounds the pool's waiting line
        self.confidence = confidence  # (solution, examples, preds) -> list[float | None]
        self.price_hour, self.prices = price_hour, prices
        self.task_kind = solution.task.kind_impl
        self.description = (
            f"{solution.task.name}: {solution.rung} · {solution.variant} on {solution.model}"
        )

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.solution.engine, text)

    def cache_id(self) -> str:
        ident = getattr(self.solution.engine, "identity", None)
        return f"{self.name}|{ident() if ident else self.solution.model}"

    def scores_labels(self) -> bool:
        return getattr(self.solution, "mode", None) == "score"

    def check(self, call: Call) -> None:
        if call.top is not None and (not self.scores_labels() or call.format is not None):
            why = (
                "is not available with response_format: the log-probabilities are the label's"
                if self.scores_labels()
                else f"is not available on {self.name!r}: its solution generates its answer, "
                "and only label scoring gives log-probabilities"
            )
            raise contract.refuse("logprobs", why + ".")
        if call.format is not None:
            contract.json_answers(call.format, self.solution.task)

    def predict(
        self, examples: list[Example], temperature: float, seed: int | None
    ) -> list[Answer]:
        preds = self.solution.predict(examples, temperature=temperature, seed=seed or 0)
        confs = (
            self.confidence(self.solution, examples, preds)
            if self.confidence
            else [None] * len(preds)
        )
        cite = getattr(self.solution, "citations", None)
        out = []
        for p, conf in zip(preds, confs):
            text = self._render(p.output) if p.valid else (p.raw or "").strip()
            cost = (
                p.compute_s * self.price_hour / 3600
                + (p.tokens_in * self.prices[0] + p.tokens_out * self.prices[1]) / 1e6
            )
            out.append(
                Answer(
                    text,
                    self.route,
                    p.tokens_in,
                    p.tokens_out,
                    "stop",
                    p.output,
                    p.valid,
                    conf,
                    compute_s=p.compute_s,
                    cost_usd=cost,
                    scores=p.scores,
                    citations=cite(p) if cite else None,
                )
            )
        return out

    def _render(self, output) -> str:
        return self.task_kind.render_output(output, self.solution.task)

    async def answer(self, call: Call) -> Answer:
        return (await self.answers(replace(call, n=1)))[0]

    async def answers(self, call: Call) -> list[Answer]:
        """A scoring solution scores once and samples `n` labels; a generating one runs `n` times."""
        if call.n > 1 and not self.scores_labels():
            return await super().answers(call)
        scored = self.scores_labels()  # scores do not depend on T or the seed: one batch key
        ans = await self._predict_one(call, 0.0 if scored else call.temperature, scored)
        if ans.scores is None or not ans.valid:
            return [self._shape(ans, call)]
        labels = self.solution.task.labels
        picks = [int(np.argmax(ans.scores))] * call.n
        if call.temperature > 0:
            from ladder.evaluation.stats import sample_labels

            rng = np.random.default_rng(call.seed)
            draws = sample_labels(np.asarray(ans.scores), call.temperature, call.n, rng)
            picks = [int(i) for i in draws]
        out = []
        for i in picks:
            one = copy.copy(ans) if len(picks) > 1 else ans
            one.output, one.extra = labels[i], dict(ans.extra)
            one.text = self._render(labels[i])
            if call.top is not None:
                one.logprobs = contract.label_entries(labels, ans.scores, i, call.top)
            out.append(self._shape(one, call))
        for extra in out[1:]:  # the prompt was read once
            extra.tokens_in, extra.cost_usd = 0, 0.0
        return out

    async def _predict_one(self, call: Call, temp: float, scored: bool) -> Answer:
        ex = Example(call.id or "request", call.text, None)
        seed = None if scored else call.seed

        def run(exs):
            return self.predict(exs, temp, seed)

        if self.worker is not None:
            return await on_worker(self.worker, (self.name, temp, seed), ex, run, self.timeout)
        loop = asyncio.get_running_loop()
        with self.gate.slot():
            fut = loop.run_in_executor(self.pool, run, [ex])
            return (await asyncio.wait_for(fut, self.timeout))[0]

    def _shape(self, ans: Answer, call: Call) -> Answer:
        """The answer as the request asked for it: format, stop, max_tokens; its real token count."""
        text = ans.text
        if call.format is not None:
            answers = contract.json_answers(call.format, self.solution.task)
            obj, why = answers(ans.output, bool(ans.valid))
            text = "" if obj is None else json.dumps(obj, ensure_ascii=False)
            if obj is None:
                ans.refusal = f"{why}: {ans.text[:200]!r}"
        text, _ = truncate_at_stop(text, call.stop)
        count = partial(answer_tokens, self.solution.engine)
        if call.limit is not None and text:
            cut = contract.cut_tokens(text, call.limit, count)
            if cut != text:
                text, ans.finish = cut, "length"
        ans.text = text
        ans.tokens_out = count(text) if text else 0
        return ans
