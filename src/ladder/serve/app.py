"""The gateway: an OpenAI-compatible HTTP API over a catalog of served models.

`/v1/models`, `/v1/chat/completions`, `/v1/completions` (streamed as server-sent events or
not), `/v1/embeddings`, `/v1/feedback`, `/health`, `/metrics`. Every error is OpenAI's error JSON with a 4xx for
bad input (malformed JSON, unknown model, missing or wrong key, oversize body, invalid
parameters), 502/503/504 when a model cannot answer. Every answer carries `x-ladder-route`
(what served it) and lands in the request log.
"""

from __future__ import annotations

import json
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

from ladder.serve.catalog import Catalog
from ladder.serve.gateway import Gateway
from ladder.serve.logs import LogDB
from ladder.serve.schemas import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    FeedbackRequest,
    parse,
    response,
    sse,
    stream_chunks,
    usage_of,
)
from ladder.serve.targets import Call


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
    with gw.catalog.worker.expecting():  # the engine worker batches only while more may come
        return await _serve_one(gw, request, endpoint)


async def _serve_one(gw: Gateway, request, endpoint: str):
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
        if req.stream and target.relays:
            return await _relay(gw, target, call, rec, t0, req.model)
        ans, cache = await gw.answer(target, call)
    except ApiError as exc:
        rec.update(status=exc.status, error=exc.message)
        await gw.log(rec, t0)
        raise
    rec["cached"] = int(cache == "hit")
    headers = gw.headers(ans[0], cache, rid)
    extra = gw.extra(ans[0], cache)
    if not req.stream:
        await gw.log(rec, t0, ans)
        return JSONResponse(response(endpoint, rid, req.model, ans, extra), headers=headers)
    use = usage_of(ans) if req.include_usage() else None
    chunks = stream_chunks(endpoint, rid, req.model, ans, _pieces, use)

    async def events():
        try:
            for c in chunks:
                yield sse(c)
            yield sse("[DONE]")
        finally:
            await gw.log(rec, t0, ans)

    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _embed(gw: Gateway, request):
    with gw.catalog.worker.expecting():
        return await _embed_one(gw, request)


async def _embed_one(gw: Gateway, request):
    t0 = time.perf_counter()
    rid = "emb-" + uuid.uuid4().hex[:24]
    rec = _record(rid, "embeddings", await gw.key_id(request), gw.catalog)
    try:
        body = await gw.body(request)
        req = parse(EmbeddingRequest, body)
        rec.update(model=req.model, request=json.dumps(body, ensure_ascii=False)[:10_000])
        model = gw.catalog.embeddings
        if model is None or req.model != model.name:
            served = model.name if model is not None else "none"
            raise ApiError(
                404,
                f"The embedding model '{req.model}' does not exist. Served here: {served}.",
                param="model",
                code="model_not_found",
            )
        out = await model.embed(req)
    except ApiError as exc:
        rec.update(status=exc.status, error=exc.message)
        await gw.log(rec, t0)
        raise
    rec.update(route=model.name, tokens_in=out["usage"]["prompt_tokens"])
    await gw.log(rec, t0)
    return JSONResponse(out, headers={"x-ladder-route": model.name, "x-request-id": rid})


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


def create_app(
    catalog: Catalog, db: LogDB | None, *, auth: bool = True, public_metrics: bool = False
):
    """The FastAPI app; closing the log (flushing it) happens at the app's shutdown.

    `/metrics` needs an API key like the API unless `public_metrics` (a scraper without keys).
    """

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

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        return await _embed(gw, request)

    @app.get("/v1/models")
    async def models(request: Request):
        await gw.key_id(request)
        listed = [*catalog.targets.values(), *([catalog.embeddings] if catalog.embeddings else [])]
        return {"object": "list", "data": [_model_card(t) for t in listed]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str, request: Request):
        await gw.key_id(request)
        emb = catalog.embeddings
        return _model_card(emb if emb is not None and name == emb.name else catalog.get(name))

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        await gw.key_id(request)
        fb = parse(FeedbackRequest, await gw.body(request))
        if db is None:
            raise ApiError(404, "This gateway keeps no request log.", code="no_log")
        assert gw.writer is not None  # a gateway with a request log has its writer
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
    async def metrics(request: Request):
        if not public_metrics:
            await gw.key_id(request)
        data, ctype = gw.metrics.render()
        return Response(data, media_type=ctype)

    return app


def _model_card(t) -> dict[str, Any]:
    return {
        "id": t.name,
        "object": "model",
        "created": 0,
        "owned_by": "ladder",
        "ladder": {"kind": t.role, "description": t.description},  # `kind`: the field's API name
    }
