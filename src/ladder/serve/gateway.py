"""The gateway's state and the steps of answering one request, between HTTP and the models.

Authentication (hashed keys, cached for `key_cache_s`), the body size limit, turning a validated
request into a `Call` (token limits), the temperature-0 response cache, the response headers
that say which route served it, and the request log (a background writer; a row is never
dropped) with the Prometheus counters.
"""

from __future__ import annotations

import copy
import hashlib
import json
import queue
import random
import time
from typing import Any

from starlette.concurrency import run_in_threadpool

from ladder.errors import LadderError
from ladder.serve.catalog import Catalog
from ladder.serve.logs import LogDB, LogWriter, key_hash
from ladder.serve.metrics import Metrics, ResponseCache
from ladder.serve.schemas import ApiError, loads
from ladder.serve.targets import Answer, Call
from ladder.serve.worker import Overloaded

NO_CACHE_FIELDS = ("stream", "stream_options", "user")  # do not change the answer


class Gateway:
    """The state behind the routes: catalog, log, keys, cache, metrics."""

    def __init__(self, catalog: Catalog, db: LogDB | None, *, auth: bool = True):
        self.catalog, self.db, self.auth = catalog, db, auth
        self.limits = catalog.limits
        self.writer = LogWriter(db, max_queue=self.limits.log_queue) if db is not None else None
        self.metrics = Metrics(catalog.worker)
        self.cache = ResponseCache(self.limits.cache_entries)
        self._keys: dict[str, tuple[str | None, float]] = {}  # key hash -> (key id, expiry)

    # ------------------------------------------------------------ edges

    async def key_id(self, request) -> str | None:
        if not self.auth:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY' (create one with `ladder keys create`).",
                code="missing_api_key",
            )
        h = key_hash(token.strip())
        hit = self._keys.get(h)
        if hit is None or hit[1] < time.monotonic():
            assert self.db is not None  # API keys live in the request log: auth needs one
            kid = await run_in_threadpool(self.db.key_id, token.strip())
            hit = (kid, time.monotonic() + self.limits.key_cache_s)
            if len(self._keys) >= 10_000:  # random wrong keys must not grow it without bound
                self._keys.clear()
            self._keys[h] = hit
        if hit[0] is None:
            raise ApiError(
                401, "Incorrect API key provided (unknown or revoked).", code="invalid_api_key"
            )
        return hit[0]

    async def body(self, request) -> Any:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(
                400,
                f"Unsupported Content-Type '{ctype or '(none)'}': send the body as JSON with "
                "'Content-Type: application/json'.",
                param="Content-Type",
                code="invalid_content_type",
            )
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_big(limit)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_big(limit)
            chunks.append(chunk)
        return loads(b"".join(chunks))

    def call(self, target, req, endpoint: str, rid: str, body: dict) -> Call:
        if endpoint == "chat":
            try:
                msgs = [{"role": m.role, "content": m.text()} for m in req.messages]
            except ValueError as exc:
                raise ApiError(
                    400,
                    f"Invalid value for 'messages': {exc}.",
                    param="messages",
                    code="invalid_value",
                ) from None
            users = [m["content"] for m in msgs if m["role"] == "user"]
            text = users[-1] if users else ""
            prompt = target.render_chat(msgs) if target.renders_chat else text
            if target.is_task and len(msgs) > 1:
                # the route's prompt is the run's: another turn would be read by nothing
                raise ApiError(
                    400,
                    f"'{target.name}' answers a task with the prompt its run measured: send "
                    "only its input, as one user message (no system, developer or earlier turns).",
                    param="messages",
                    code="invalid_value",
                )
        else:
            prompt = text = req.prompt
        if target.is_task and not text.strip():
            raise ApiError(
                400,
                f"'{target.name}' answers a task: send its input as the (last) user message.",
                param="messages",
                code="invalid_value",
            )
        if req.n > self.limits.max_choices:
            raise ApiError(
                400,
                f"Invalid value for 'n': at most {self.limits.max_choices} here, got {req.n}.",
                param="n",
                code="invalid_value",
            )
        max_tokens = req.limit() or self.limits.default_max_tokens
        if max_tokens > self.limits.max_tokens:
            raise ApiError(
                400,
                f"Invalid value for 'max_tokens': at most {self.limits.max_tokens} here, got {max_tokens}.",
                param="max_tokens",
                code="invalid_value",
            )
        n = target.count_tokens(prompt)
        if n > self.limits.max_prompt_tokens:
            raise ApiError(
                400,
                f"This model's maximum context length here is {self.limits.max_prompt_tokens} tokens; your messages have {n}.",
                param="messages",
                code="context_length_exceeded",
            )
        temp = req.temperature if req.temperature is not None else target.default_temperature
        seed = req.seed
        if seed is None and temp > 0:  # unseeded sampling differs from request to request
            seed = random.randrange(2**31)
        call = Call(endpoint, prompt, text, max_tokens, temp, req.stops(), seed, body, rid)
        call.n, call.limit, call.top, call.format = req.n, req.limit(), req.top(), req.format()
        target.check(call)
        return call

    # ------------------------------------------------------------ answering

    def cache_key(self, target, call: Call) -> str | None:
        if not self.cache.enabled or call.temperature != 0:
            return None
        req = {k: v for k, v in call.body.items() if k not in NO_CACHE_FIELDS}
        blob = json.dumps(
            {"target": target.cache_id(), "endpoint": call.endpoint, "request": req}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    async def answer(self, target, call: Call) -> tuple[list[Answer], str]:
        key = self.cache_key(target, call)
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.metrics.cache_hits.inc()
                return copy.deepcopy(hit), "hit"
            self.metrics.cache_misses.inc()
        try:
            ans = await target.answers(call)
        except Overloaded as exc:
            raise ApiError(
                503,
                f"The server is overloaded: {exc}. Retry shortly.",
                type="server_error",
                code="overloaded",
                headers={"retry-after": "1"},
            ) from None
        except LadderError as exc:
            raise ApiError(
                502, f"The model could not answer: {exc}", type="server_error", code="engine_error"
            ) from None
        if key is not None and all(a.fallback is None for a in ans):
            self.cache.put(key, copy.deepcopy(ans))
        return ans, "miss" if key is not None else "off"

    def headers(self, ans: Answer, cache: str, rid: str) -> dict[str, str]:
        h = {"x-ladder-route": ans.route, "x-ladder-cache": cache, "x-request-id": rid}
        if ans.confidence is not None:
            h["x-ladder-confidence"] = f"{ans.confidence:.4g}"
        if ans.extra.get("reason"):
            h["x-ladder-route-reason"] = _ascii(ans.extra["reason"])
        if ans.fallback:
            h["x-ladder-fallback"] = ans.fallback.encode("ascii", "replace").decode()[:200]
        return h

    def extra(self, ans: Answer, cache: str) -> dict[str, Any]:
        out = {"route": ans.route, "cache": cache}
        for k in ("output", "valid", "confidence", "threshold", "fallback"):
            v = getattr(ans, k)
            if v is not None:
                out[k] = v
        return {**out, **ans.extra}

    # ------------------------------------------------------------ the log

    async def log(
        self, rec: dict[str, Any], t0: float, answers: list[Answer] | Answer | None = None
    ) -> None:
        """One row per request; with several choices, the first's answer and every choice's cost."""
        rec["latency_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        if answers is not None:
            answers = answers if isinstance(answers, list) else [answers]
            ans = answers[0]
            rec.update(
                route=ans.route,
                tokens_in=ans.tokens_in,
                tokens_out=sum(a.tokens_out for a in answers),
                cost_usd=sum(a.cost_usd for a in answers),
                response=ans.text,
                valid=None if ans.valid is None else int(ans.valid),
                confidence=ans.confidence,
                fallback=ans.fallback,
                output=None if ans.output is None else json.dumps(ans.output, ensure_ascii=False),
            )
        # label values only from names served here: callers must not grow the metric set
        emb = self.catalog.embeddings
        served = rec["model"] in self.catalog.targets or (
            emb is not None and rec["model"] == emb.name
        )
        model = rec["model"] if served else "-"
        route = rec.get("route") or "-"
        m = self.metrics
        m.requests.labels(model, route, str(rec["status"])).inc()
        if rec["status"] == 200 and model != "-":
            m.latency.labels(model).observe(rec["latency_ms"] / 1000)
            m.tokens.labels(model, "in").inc(rec["tokens_in"])
            m.tokens.labels(model, "out").inc(rec["tokens_out"])
            m.cost.labels(model).inc(rec["cost_usd"])
            if rec.get("fallback"):
                m.fallbacks.labels(model).inc()
            if "@" in route:
                m.large_calls.labels(model).inc()
        if self.writer is None:
            return
        try:
            self.writer.q.put_nowait(rec)
        except queue.Full:  # never drop a row: wait for room, off the event loop
            await run_in_threadpool(self.writer.put, rec)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:200]


def _too_big(limit: int) -> ApiError:
    return ApiError(
        413, f"The request body is larger than {limit} bytes.", code="request_too_large"
    )
