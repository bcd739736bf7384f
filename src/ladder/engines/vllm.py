"""A vLLM OpenAI server as an engine: `vllm:http://127.0.0.1:8000/v1` (or `engine: vllm`).

vLLM speaks the OpenAI API and adds what a climb needs from a local engine:
- label scoring: one completions call with every `prompt + choice` as a prompt, `echo` and
  `logprobs`; the log-probabilities of the tokens after the prompt are summed per choice
  (the same log P(choice | prompt) the hf engine computes);
- constrained answers: a request's `choices` go as vLLM's structured `choice` output, its
  `json_schema` as structured `json` output (extraction answers valid JSON by construction);
- LoRA: an adapter vLLM serves (`--lora-modules NAME=DIR`, or loaded at run time through
  `/v1/load_lora_adapter`) is a model name; `remote_model` picks it.
Raw prompts go to the completions API (Ladder renders its own templates); usage and latency
come from each response, like every engine. Requests of a batch go concurrently (vLLM batches
them itself); given the model's tokenizer, token counts are exact rather than estimated.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ladder.engines.base import Completion, GenRequest, ScoreRequest, Scores, truncate_at_stop
from ladder.engines.openai_compat import OpenAIEngine, _short
from ladder.errors import EngineError

_TOKENIZING = threading.Lock()  # a fast tokenizer is not safe to call from two threads at once


class VLLMEngine(OpenAIEngine):
    supports_scoring = True
    supports_adapters = True  # `--lora-modules`, or loaded at run time through its LoRA endpoints
    structured_outputs = True  # `structured_outputs: {json: SCHEMA}` constrains its decoding
    # a vLLM server is your own machine, wherever it runs: its answers cost machine hours
    price_basis = "hour"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        remote_model: str | None = None,
        tokenizer=None,
        **kw,
    ):
        super().__init__(model, remote_model=remote_model or "?", base_url=base_url, **kw)
        self.api = "completions"
        self.tokenizer = tokenizer  # the served model's own (a transformers tokenizer), if known
        if remote_model is None:
            self.remote_model = self.served_base()

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return super().count_tokens(text)
        with _TOKENIZING:
            return len(self.tokenizer(text).input_ids)

    def served(self) -> list[dict[str, Any]]:
        """The server's models: the base and every LoRA adapter it holds (`parent` set)."""
        try:
            return [m.model_dump() for m in self.client.models.list().data]
        except self._openai.APIError as exc:
            raise EngineError(
                f"cannot list the models of the vLLM server {self.base_url}: {_short(exc)}.",
                fix="check the URL points at vLLM's OpenAI server (it ends in /v1).",
            ) from None

    def served_base(self) -> str:
        bases = [m["id"] for m in self.served() if not m.get("parent")]
        if not bases:
            raise EngineError(f"the vLLM server {self.base_url} serves no base model.")
        return bases[0]

    def _call(self, **params):
        try:
            return self.client.completions.create(model=self.remote_model, **params)
        except self._openai.APIConnectionError as exc:
            raise EngineError(
                f"lost connection to {self._where()}: {exc.__cause__ or exc}.",
                fix="check the vLLM server is up; the request was retried with backoff.",
            ) from None
        except self._openai.APIStatusError as exc:
            raise EngineError(
                f"{self._where()} answered HTTP {exc.status_code}: {_short(exc)}."
            ) from None

    def _one(self, req: GenRequest) -> Completion:
        t0 = time.perf_counter()
        params: dict[str, Any] = {
            "prompt": req.prompt,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
        }
        if req.stop:
            params["stop"] = req.stop
        if req.seed is not None:
            params["seed"] = req.seed
        constraint = structured(req)
        if constraint:
            params["extra_body"] = {"structured_outputs": constraint}
        resp = self._call(**params)
        dt = time.perf_counter() - t0
        choice = resp.choices[0]
        text, _ = truncate_at_stop(choice.text or "", req.stop)
        u = resp.usage
        tin = u.prompt_tokens if u else self.count_tokens(req.prompt)
        tout = u.completion_tokens if u else self.count_tokens(text)
        return Completion(text, tin, tout, dt, dt, choice.finish_reason or "stop")

    def score(self, requests: list[ScoreRequest]) -> list[Scores]:
        if len(requests) == 1:
            return [self._score(requests[0])]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._score, requests))

    def _score(self, req: ScoreRequest) -> Scores:
        """log P(choice | prompt) for every choice, from one echoed completions call."""
        t0 = time.perf_counter()
        resp = self._call(
            prompt=[req.prompt + c for c in req.choices],
            max_tokens=1,  # vLLM needs one generated token; only the echoed prompt counts
            temperature=0.0,
            echo=True,
            logprobs=0,
        )
        dt = time.perf_counter() - t0
        by_index = sorted(resp.choices, key=lambda c: c.index)
        logprobs = []
        for c, choice in zip(by_index, req.choices):
            shift = echo_shift(c.logprobs, c.text or "")
            start, end = len(req.prompt) + shift, len(req.prompt + choice) + shift
            logprobs.append(continuation_logprob(c.logprobs, start, end))
        u = resp.usage
        # every choice re-sends the prompt; the tokens the engine read are what it is paid for
        tin = u.prompt_tokens if u else self.count_tokens(req.prompt) * len(req.choices)
        return Scores(logprobs, tin, dt, dt)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "engine": "vllm", "scoring": "echo logprobs"}


def structured(req: GenRequest) -> dict[str, Any] | None:
    """vLLM's `structured_outputs` for a request's constraint (a choice list or a JSON schema)."""
    if req.choices:
        return {"choice": list(req.choices)}
    if req.json_schema:
        return {"json": req.json_schema}
    return None


def echo_shift(lp, text: str) -> int:
    """Characters the echoed tokens' offsets count before the prompt: vLLM's `text_offset`
    runs over the detokenised tokens, BOS (`<bos>`, 5 characters for Gemma) included, while
    the echoed `text` starts at the prompt."""
    if lp is None or not lp.tokens:
        return 0
    return max(0, len("".join(lp.tokens)) - len(text))


def continuation_logprob(lp, start: int, end: int) -> float:
    """Sum of the echoed tokens' log-probabilities whose text starts in [start, end).

    The prompt and the choice are sent as one string, so a token may straddle the boundary;
    it is counted with the choice when it starts before `end` and at or after `start`, or
    when it begins in the prompt and reaches into the choice (vLLM merged the two).
    """
    if lp is None or not lp.token_logprobs:
        raise EngineError("the vLLM server returned no prompt log-probabilities for scoring.")
    total = 0.0
    offsets, tokens = lp.text_offset, lp.tokens
    for off, tok, value in zip(offsets, tokens, lp.token_logprobs):
        if value is None or off >= end:
            continue
        if off >= start or off + len(tok) > start:
            total += value
    return total
