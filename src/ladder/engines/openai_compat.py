"""Any OpenAI-compatible endpoint (hosted APIs, vLLM, llama.cpp server, Ollama, Ladder's gateway).

Bounded concurrency (a thread pool of `concurrency` workers), timeouts, and retries with
exponential backoff on connection errors, 408/409/429 and 5xx - the official `openai` client's
own retry loop, configured through `max_retries`. Token usage comes from the server's `usage`.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ladder.engines.base import (
    Completion,
    GenRequest,
    ScoreRequest,
    Scores,
    price_basis,
    truncate_at_stop,
)
from ladder.errors import EngineError


class OpenAIEngine:
    supports_scoring = False
    supports_adapters = False
    in_process = False  # behind HTTP: the gateway calls it from a thread pool, many at once

    @property
    def price_basis(self) -> str:
        """Billed per token by a provider, unless the server is on this machine (llama.cpp's)."""
        return price_basis({"engine": "openai", "base_url": self.base_url})

    def __init__(
        self,
        model: str,
        *,
        remote_model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        api: str = "chat",
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        check: bool = True,
    ):
        import openai

        self.model = model
        self.remote_model = remote_model or model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.api = api
        self.concurrency = concurrency
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key=key, timeout=timeout, max_retries=max_retries
        )
        self._openai = openai
        if check:
            self._preflight()

    def _where(self) -> str:
        return f"the OpenAI-compatible endpoint {self.base_url} (model {self.remote_model!r})"

    def _preflight(self) -> None:
        """Fail fast with a clear message when the endpoint cannot be reached."""
        try:
            self.client.with_options(max_retries=1, timeout=10).models.list()
        except self._openai.APIConnectionError as exc:
            raise EngineError(
                f"cannot reach {self._where()}: {exc.__cause__ or exc}.",
                fix="start the server, or correct `base_url` (task.yaml `models:`) / the OPENAI_BASE_URL environment variable.",
            ) from None
        except self._openai.AuthenticationError:
            raise EngineError(
                f"{self._where()} rejected the API key.",
                fix="set the key's environment variable (`api_key_env` in task.yaml, default OPENAI_API_KEY).",
            ) from None
        except self._openai.APIStatusError:
            pass  # some servers do not implement /models; the first real call will tell

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # estimate; real counts come from each response's usage

    def _one(self, req: GenRequest) -> Completion:
        t0 = time.perf_counter()
        params: dict[str, Any] = {
            "model": self.remote_model,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
        }
        if req.stop:
            params["stop"] = req.stop[:4]  # the API accepts at most 4
        if req.seed is not None:
            params["seed"] = req.seed
        try:
            if self.api == "completions":
                resp = self.client.completions.create(prompt=req.prompt, **params)
                choice = resp.choices[0]
                text, reason = choice.text or "", choice.finish_reason
            else:
                resp = self.client.chat.completions.create(
                    messages=[{"role": "user", "content": req.prompt}], **params
                )
                choice = resp.choices[0]
                text, reason = choice.message.content or "", choice.finish_reason
        except self._openai.APIConnectionError as exc:
            raise EngineError(
                f"lost connection to {self._where()}: {exc.__cause__ or exc}.",
                fix="check the server is up; the request was retried with backoff.",
            ) from None
        except self._openai.APIStatusError as exc:
            raise EngineError(
                f"{self._where()} answered HTTP {exc.status_code}: {_short(exc)}."
            ) from None
        dt = time.perf_counter() - t0
        text, _ = truncate_at_stop(text, req.stop)
        usage = resp.usage
        tin = usage.prompt_tokens if usage else self.count_tokens(req.prompt)
        tout = usage.completion_tokens if usage else self.count_tokens(text)
        cached = 0
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        if details is not None and getattr(details, "cached_tokens", None):
            cached = details.cached_tokens
        return Completion(text, tin, tout, dt, dt, reason or "stop", cached)

    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        if len(requests) == 1:
            return [self._one(requests[0])]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def score(self, requests: list[ScoreRequest]) -> list[Scores]:
        raise EngineError(
            f"{self._where()} does not support label scoring here; Ladder answers by generation instead."
        )

    def info(self) -> dict[str, Any]:
        return {
            "engine": "openai",
            "model": self.model,
            "remote_model": self.remote_model,
            "base_url": self.base_url,
            "api": self.api,
            "concurrency": self.concurrency,
            "price_basis": self.price_basis,
        }

    def close(self) -> None:
        self.client.close()


def _short(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        msg = body.get("message") or (body.get("error") or {}).get("message")
        if msg:
            return str(msg)[:200]
    return str(exc)[:200]
