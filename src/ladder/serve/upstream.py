"""An OpenAI-compatible endpoint served as a "large" model: requests are proxied to it.

An async HTTP client with a bounded connection pool and timeouts; streams pass through as they
arrive (the model name rewritten, the text gathered for the log). A failure marks the upstream
down for a few seconds (`Health`), so the hybrid route falls back at once instead of waiting
on every request.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ladder.serve.schemas import ApiError, loads, sse
from ladder.serve.targets import Answer, Call, Target
from ladder.serve.worker import Gate, Overloaded

if TYPE_CHECKING:
    import httpx


@dataclass
class Health:
    """An upstream's state: after a failure it is skipped for `cooldown_s` (fail fast, fall back)."""

    cooldown_s: float = 5.0
    down_until: float = 0.0
    last_error: str | None = None
    failures: int = 0

    def up(self) -> bool:
        return time.monotonic() >= self.down_until

    def failed(self, why: str) -> None:
        self.failures += 1
        self.last_error = why
        self.down_until = time.monotonic() + self.cooldown_s

    def recovered(self) -> None:
        self.down_until, self.last_error = 0.0, None


class Upstream(Target):
    """An OpenAI-compatible endpoint served as a "large" model: requests are proxied to it."""

    role = "upstream"
    relays = True

    def __init__(
        self,
        name: str,
        base_url: str,
        remote_model: str,
        *,
        api_key: str | None,
        timeout: float,
        concurrency: int,
        prices: tuple[float, float] = (0.0, 0.0),
        health: Health | None = None,
        max_waiting: int = 256,
    ):
        self.name, self.base_url, self.remote = name, base_url.rstrip("/"), remote_model
        self._key, self.timeout, self.concurrency = api_key, timeout, concurrency
        self.prices = prices
        self.health = health or Health()
        self.description = f"upstream {remote_model} at {self.base_url}"
        self.gate = Gate(concurrency + max_waiting, f"upstream {name}")
        self._client: httpx.AsyncClient | None = None

    def client(self):
        import httpx

        if self._client is None:  # created in the server's event loop, on first use
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            self._client = httpx.AsyncClient(
                base_url=self.base_url + "/",
                headers=headers,
                timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
                limits=httpx.Limits(max_connections=self.concurrency),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _request(self, call: Call, stream: bool) -> tuple[str, dict]:
        body = {**call.body, "model": self.remote, "stream": stream}
        if not stream:
            body.pop("stream_options", None)
        return ("chat/completions" if call.endpoint == "chat" else "completions"), body

    def _unavailable(self, why: str) -> ApiError:
        self.health.failed(why)
        return ApiError(
            502,
            f"the upstream model {self.name!r} is unavailable: {why}.",
            type="upstream_error",
            code="upstream_unavailable",
        )

    async def _send(self, call: Call, stream: bool):
        import httpx

        path, body = self._request(call, stream)
        try:
            with self.gate.slot():
                resp = await self.client().send(
                    self.client().build_request("POST", path, json=body), stream=True
                )
        except httpx.PoolTimeout:  # our own connections are all busy: not the upstream's fault
            raise Overloaded(
                f"all {self.concurrency} connections to {self.name} are busy"
            ) from None
        except httpx.TimeoutException:
            raise self._unavailable(f"no answer within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raw = await resp.aread()
            await resp.aclose()
            if resp.status_code >= 500:
                raise self._unavailable(f"HTTP {resp.status_code}")
            raise ApiError(
                resp.status_code,
                f"the upstream model {self.name!r} refused the request: {_upstream_message(raw)}",
                code="upstream_rejected",
            )
        self.health.recovered()
        return resp

    def check(self, call: Call) -> None:
        pass  # every parameter goes to the upstream as sent; it answers or refuses it

    async def answer(self, call: Call) -> Answer:
        return (await self.answers(call))[0]

    async def answers(self, call: Call) -> list[Answer]:
        """All the choices the upstream answered (`n` goes to it as sent)."""
        resp = await self._send(call, stream=False)
        try:
            data = await resp.aread()
        finally:
            await resp.aclose()
        obj = loads(data)
        use = obj.get("usage") or {}
        tin, tout = int(use.get("prompt_tokens") or 0), int(use.get("completion_tokens") or 0)
        out = []
        for i, choice in enumerate(obj.get("choices") or [{}]):
            msg = choice.get("message") or {}
            text = msg.get("content") if call.endpoint == "chat" else choice.get("text")
            out.append(
                Answer(
                    text or "",
                    self.name,
                    tin if i == 0 else 0,  # usage covers every choice: carried by the first
                    tout if i == 0 else 0,
                    choice.get("finish_reason") or "stop",
                    cost_usd=self.cost(tin, tout) if i == 0 else 0.0,
                    logprobs=choice.get("logprobs"),
                    refusal=msg.get("refusal") if call.endpoint == "chat" else None,
                )
            )
        return out

    def cost(self, tin: int, tout: int) -> float:
        return (tin * self.prices[0] + tout * self.prices[1]) / 1e6

    async def stream(self, call: Call):
        """Open the upstream stream (errors raise before any byte is sent) and relay its events."""
        return UpstreamStream(self, await self._send(call, stream=True), call.endpoint)


class UpstreamStream:
    """Relays an upstream's SSE events, renaming the model, and gathers the text for the log."""

    def __init__(self, upstream: Upstream, resp, endpoint: str):
        self.upstream, self.resp, self.endpoint = upstream, resp, endpoint
        self.answer = Answer("", upstream.name)

    async def events(self, model: str):
        parts: list[str] = []
        try:
            async for line in self.resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    obj = json.loads(payload)
                except ValueError:
                    continue
                obj["model"] = model
                self._gather(obj, parts)
                yield sse(obj)
        finally:
            await self.resp.aclose()
            self.answer.text = "".join(parts)
            self.answer.cost_usd = self.upstream.cost(self.answer.tokens_in, self.answer.tokens_out)
        yield sse("[DONE]")

    def _gather(self, obj: dict, parts: list[str]) -> None:
        for ch in obj.get("choices") or []:
            piece = (
                (ch.get("delta") or {}).get("content")
                if self.endpoint == "chat"
                else ch.get("text")
            )
            parts.append(piece or "")
            if ch.get("finish_reason"):
                self.answer.finish = ch["finish_reason"]
        use = obj.get("usage") or {}
        if use:
            self.answer.tokens_in = int(use.get("prompt_tokens") or 0)
            self.answer.tokens_out = int(use.get("completion_tokens") or 0)


def _upstream_message(raw: bytes) -> str:
    try:
        obj = json.loads(raw)
        err = obj.get("error") if isinstance(obj, dict) else None
        msg = err.get("message") if isinstance(err, dict) else (err or obj.get("detail"))
        return str(msg or obj)[:300]
    except ValueError:
        return raw.decode("utf-8", "replace")[:300]
