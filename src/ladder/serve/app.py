"""The gateway: an OpenAI-compatible HTTP API over a catalog of served models.

`/v1/models`, `/v1/chat/completions`, `/v1/completions` (streamed as server-sent events or
not), `/v1/feedback`, `/health`, `/metrics`. Every error is OpenAI's error JSON with a 4xx for
bad input (malformed JSON, unknown model, missing or wrong key, oversize body, invalid
parameters), 502/503/504 when a model cannot answer. Every answer carries `x-ladder-route`
(what served it) and lands in the request log.
"""

from __future__ import annotations

import copy
import hashlib
import json
import queue
import sys
import time
import traceback
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ladder.errors import LadderError
from ladder.serve.catalog import Catalog
from ladder.serve.logs import LogDB, LogWriter, key_hash
from ladder.serve.metrics import Metrics, ResponseCache
from ladder.serve.schemas import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    FeedbackRequest,
    chat_response,
    completion_response,
    loads,
    parse,
    sse,
    stream_chunks,
    usage,
)
from ladder.serve.targets import Answer, Call
from ladder.serve.worker import Overloaded

NO_CACHE_FIELDS = ("stream", "stream_options", "user")  # do not change the answer


class Gateway:
    """The state behind the routes: catalog, log, keys, cache, metrics."""

    def __init__(self, catalog: Catalog, db: LogDB | None, *, auth: bool = True):
        self.catalog, self.db, self.auth = catalog, db, auth
        self.limits = catalog.limits
        self.writer = LogWriter(db, max_queue=self.limits.log_queue) if db is not None else None
        self.metrics = Metrics(catalog.worker.depth)
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
            kid = await run_in_threadpool(self.db.key_id, token.strip())
            hit = (kid, time.monotonic() + self.limits.key_cache_s)
            self._keys[h] = hit
        if hit[0] is None:
            raise ApiError(
                401, "Incorrect API key provided (unknown or revoked).", code="invalid_api_key"
            )
        return hit[0]

    async def body(self, request) -> Any:
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
            prompt = target.render_chat(msgs) if target.kind in ("model", "adapter") else text
        else:
            prompt = text = req.prompt
        if target.kind in ("task", "route") and not text.strip():
            raise ApiError(
                400,
                f"'{target.name}' answers a task: send its input as the (last) user message.",
                param="messages",
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
        return Call(endpoint, prompt, text, max_tokens, temp, req.stops(), req.seed, body, rid)

    # ------------------------------------------------------------ answering

    def cache_key(self, target, call: Call) -> str | None:
        if not self.cache.enabled or call.temperature != 0:
            return None
        req = {k: v for k, v in call.body.items() if k not in NO_CACHE_FIELDS}
        blob = json.dumps(
            {"target": target.cache_id(), "endpoint": call.endpoint, "request": req}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    async def answer(self, target, call: Call) -> tuple[Answer, str]:
        key = self.cache_key(target, call)
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.metrics.cache_hits.inc()
                return copy.deepcopy(hit), "hit"
            self.metrics.cache_misses.inc()
        try:
            ans = await target.answer(call)
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
        if key is not None and ans.fallback is None:
            self.cache.put(key, copy.deepcopy(ans))
        return ans, "miss" if key is not None else "off"

    def headers(self, ans: Answer, cache: str, rid: str) -> dict[str, str]:
        h = {"x-ladder-route": ans.route, "x-ladder-cache": cache, "x-request-id": rid}
        if ans.confidence is not None:
            h["x-ladder-confidence"] = f"{ans.confidence:.4g}"
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

    async def log(self, rec: dict[str, Any], t0: float, ans: Answer | None = None) -> None:

        rec["latency_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        if ans is not None:
            rec.update(
                route=ans.route,
                tokens_in=ans.tokens_in,
                tokens_out=ans.tokens_out,
                cost_usd=ans.cost_usd,
                response=ans.text,
                valid=None if ans.valid is None else int(ans.valid),
                confidence=ans.confidence,
                fallback=ans.fallback,
                output=None if ans.output is None else json.dumps(ans.output, ensure_ascii=False),
            )
        model, route = rec["model"] or "-", rec.get("route") or "-"
        m = self.metrics
        m.requests.labels(model, route, str(rec["status"])).inc()
        if rec["status"] == 200 and model in self.catalog.targets:
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


def _too_big(limit: int) -> ApiError:
    return ApiError(
        413, f"The request body is larger than {limit} bytes.", code="request_too_large"
    )


def _record(rid: str, endpoint: str, kid: str | None, catalog: Catalog) -> dict[str, Any]:
    return {
        "id": rid,
        "created_at": time.time(),
        "endpoint": endpoint,
        "model": "",
        "task": catalog.task,
        "run_id": catalog.run_id,
        "key_id": kid,
        "status": 200,
        "stream": 0,
        "cached": 0,
        "tokens_in": 0,
        "tokens_out": 0,
        "cost_usd": 0.0,
    }


def _pieces(text: str) -> list[str]:
    """The answer in word-sized deltas, as a streaming client expects them."""
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch.isspace() and cur.strip():
            out.append(cur)
            cur = ""
    return [*out, cur] if cur else out


async def _serve(gw: Gateway, request, endpoint: str):

    t0 = time.perf_counter()
    rid = ("chatcmpl-" if endpoint == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
    rec = _record(rid, endpoint, await gw.key_id(request), gw.catalog)
    try:
        body = await gw.body(request)
        req = parse(ChatRequest if endpoint == "chat" else CompletionRequest, body)
        rec.update(
            model=req.model, stream=int(req.stream), request=json.dumps(body, ensure_ascii=False)
        )
        target = gw.catalog.get(req.model)
        call = gw.call(target, req, endpoint, rid, body)
        rec["input"] = call.text
        if req.stream and target.kind == "upstream":
            return await _relay(gw, target, call, rec, t0, req.model)
        ans, cache = await gw.answer(target, call)
    except ApiError as exc:
        rec.update(status=exc.status, error=exc.message)
        await gw.log(rec, t0)
        raise
    rec["cached"] = int(cache == "hit")
    headers = gw.headers(ans, cache, rid)
    extra = gw.extra(ans, cache)
    if not req.stream:
        await gw.log(rec, t0, ans)
        build = chat_response if endpoint == "chat" else completion_response
        return JSONResponse(
            build(rid, req.model, ans.text, ans.finish, ans.tokens_in, ans.tokens_out, extra),
            headers=headers,
        )
    use = usage(ans.tokens_in, ans.tokens_out) if req.include_usage() else None
    chunks = stream_chunks(endpoint, rid, req.model, _pieces(ans.text), ans.finish, use)

    async def events():
        try:
            for c in chunks:
                yield sse(c)
            yield sse("[DONE]")
        finally:
            await gw.log(rec, t0, ans)

    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _relay(gw: Gateway, target, call: Call, rec: dict, t0: float, model: str):

    stream = await target.stream(call)  # errors surface here, before the 200 is sent

    async def events():
        try:
            async for ev in stream.events(model):
                yield ev
        finally:
            await gw.log(rec, t0, stream.answer)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"x-ladder-route": target.name, "x-ladder-cache": "off", "x-request-id": call.id},
    )


def _error_response(exc: ApiError):

    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def create_app(catalog: Catalog, db: LogDB | None, *, auth: bool = True):
    """The FastAPI app; closing the log (flushing it) happens at the app's shutdown."""

    gw = Gateway(catalog, db, auth=auth)

    @asynccontextmanager
    async def lifespan(app):
        yield
        await catalog.aclose()
        if gw.writer is not None:
            await run_in_threadpool(gw.writer.close)

    app = FastAPI(
        title="Ladder gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.gateway = gw

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return _error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc: HTTPException):
        msg = (
            f"Unknown request URL: {request.method} {request.url.path}."
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return _error_response(
            ApiError(
                exc.status_code, msg, code="unknown_url" if exc.status_code in (404, 405) else None
            )
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc):
        return _error_response(ApiError(400, f"Invalid request: {exc.errors()[0].get('msg')}."))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        traceback.print_exception(exc, file=sys.stderr)
        return _error_response(
            ApiError(
                500, "The server had an error while processing your request.", type="server_error"
            )
        )

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await _serve(gw, request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await _serve(gw, request, "completions")

    @app.get("/v1/models")
    async def models(request: Request):
        await gw.key_id(request)
        return {"object": "list", "data": [_model_card(t) for t in catalog.targets.values()]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str, request: Request):
        await gw.key_id(request)
        return _model_card(catalog.get(name))

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        await gw.key_id(request)
        fb = parse(FeedbackRequest, await gw.body(request))
        if db is None:
            raise ApiError(404, "This gateway keeps no request log.", code="no_log")
        await run_in_threadpool(gw.writer.flush)  # the rated request's row may still be queued
        if not await run_in_threadpool(db.feedback, fb.id, fb.rating, fb.note):
            raise ApiError(
                404, f"No logged response has the id '{fb.id}'.", param="id", code="not_found"
            )
        return {"object": "feedback", "id": fb.id, "rating": fb.rating}

    @app.get("/health")
    async def health():
        ups = {
            u.name: ("up" if u.health.up() else f"down: {u.health.last_error}")
            for u in catalog.upstreams
        }
        return {
            "status": "ok",
            "models": len(catalog.targets),
            "queue": catalog.worker.depth(),
            "upstreams": ups,
        }

    @app.get("/metrics")
    async def metrics():
        data, ctype = gw.metrics.render()
        return Response(data, media_type=ctype)

    return app


def _model_card(t) -> dict[str, Any]:
    return {
        "id": t.name,
        "object": "model",
        "created": 0,
        "owned_by": "ladder",
        "ladder": {"kind": t.kind, "description": t.description},
    }
