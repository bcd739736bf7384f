"""OpenAI wire format: requests validated at the edge, responses, stream chunks and errors.

Requests are validated strictly, as the OpenAI API does: a field of the wrong type (`"10"` or
`true` for an integer, `"yes"` for a boolean) or range, an unknown field, or a parameter Ladder
cannot honour (`tools`, `response_format`, `logprobs`, penalties, ...) is a 400 whose `param`
names it; nothing is accepted and silently ignored. The JSON's nesting depth is checked before
parsing, so a deeply nested body is a 400, never a RecursionError.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ApiError(Exception):
    """An error the gateway answers in OpenAI's format: {"error": {message, type, param, code}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


MAX_DEPTH = 32  # JSON nesting allowed in a request body (OpenAI's bodies need about 6)

# Parameters of OpenAI's API that Ladder does not implement: refused with a 400 naming them
# unless sent with the value that means "off" (what clients send by default).
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "response_format": ({"type": "text"},),
    "tools": ([],),
    "tool_choice": ("none",),
    "functions": ([],),
    "function_call": ("none",),
    "parallel_tool_calls": (),
    "logprobs": (False, 0),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "top_p": (1, 1.0),
    "echo": (False,),
    "best_of": (1,),
    "suffix": ("",),
    "audio": (),
    "modalities": (["text"],),
    "prediction": (),
    "reasoning_effort": (),
    "web_search_options": (),
}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    include_usage: bool = Field(False)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    stop: str | list[str] | None = Field(None)
    seed: int | None = Field(None)
    stream: bool = Field(False)
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = Field(None)
    store: bool | None = Field(None)

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = Field(None)
    name: str | None = Field(None)

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError("only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Request):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v):
        if isinstance(v, list):
            if len(v) != 1:
                raise ValueError("send one prompt per request")
            v = v[0]
        if not v:
            raise ValueError("the prompt is empty")
        return v

    def limit(self) -> int | None:
        return self.max_tokens


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=128, description="the response id to rate")
    rating: Literal["good", "bad"]
    note: str | None = Field(None, max_length=2000)


def parse(model: type[BaseModel], body: Any) -> Any:
    """Validate a JSON body; the first problem becomes a 400 naming its parameter."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if model is not FeedbackRequest:
        body = _refuse_unsupported(body)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"] if not _union_tag(p)) or None
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            raise ApiError(
                400,
                f"Unrecognized request argument supplied: '{param}'.",
                param=param,
                code="unknown_parameter",
            ) from None
        if err["type"] == "missing":
            raise ApiError(
                400,
                f"Missing required parameter: '{param}'.",
                param=param,
                code="missing_required_parameter",
            ) from None
        raise ApiError(
            400, f"Invalid value for '{param}': {msg}.", param=param, code="invalid_value"
        ) from None


def _union_tag(part: Any) -> bool:
    """A location step pydantic adds for a union's branch (`str`, `list[str]`), not a field."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part)


def _refuse_unsupported(body: dict) -> dict:
    """The body less unsupported parameters sent as "off"; any other use of one is a 400."""
    for name, off in UNSUPPORTED.items():
        if name in body and body[name] is not None and not _is_off(body[name], off):
            raise ApiError(
                400,
                f"Unsupported parameter: '{name}' is not supported by Ladder's gateway; "
                "remove it from the request.",
                param=name,
                code="unsupported_parameter",
            )
    return {k: v for k, v in body.items() if k not in UNSUPPORTED}


def _is_off(value: Any, off: tuple[Any, ...]) -> bool:
    # `True == 1` in Python: compare types too, so `logprobs: true` is not taken for "off"
    return any(type(value) is type(o) and value == o for o in off)


def check_depth(raw: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` before parsing it (no recursion, no RecursionError)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    depth, in_str, esc = 0, False, False
    for b in raw:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:  # backslash
                esc = True
            elif b == 0x22:  # quote
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                raise ApiError(
                    400,
                    f"The JSON body nests deeper than {limit} levels; flatten it.",
                    code="invalid_json",
                )
        elif b in (0x5D, 0x7D):
            depth -= 1


def loads(raw: bytes) -> Any:
    check_depth(raw)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400,
            f"We could not parse the JSON body of your request ({exc}). The body must be valid JSON.",
            code="invalid_json",
        ) from None


# ---------------------------------------------------------------- responses


def usage(tokens_in: int, tokens_out: int) -> dict[str, int]:
    return {
        "prompt_tokens": tokens_in,
        "completion_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }


def chat_response(
    rid: str, model: str, text: str, finish: str, tin: int, tout: int, extra: dict
) -> dict:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage(tin, tout),
        "ladder": extra,
    }


def completion_response(
    rid: str, model: str, text: str, finish: str, tin: int, tout: int, extra: dict
) -> dict:
    return {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        "usage": usage(tin, tout),
        "ladder": extra,
    }


def stream_chunks(
    endpoint: str, rid: str, model: str, pieces: list[str], finish: str, usage_: dict | None
) -> list[dict]:
    """The chunks of a streamed answer: role, content pieces, the finish, optionally usage."""
    created = int(time.time())
    if endpoint == "chat":
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}

        def chunk(delta, fin=None):
            return {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": fin}],
            }

        out = [chunk({"role": "assistant", "content": ""})]
        out += [chunk({"content": p}) for p in pieces]
        out.append(chunk({}, finish))
    else:
        base = {"id": rid, "object": "text_completion", "created": created, "model": model}

        def chunk(text, fin=None):
            return {
                **base,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": fin}],
            }

        out = [chunk(p) for p in pieces] + [chunk("", finish)]
    if usage_ is not None:
        out.append({**base, "choices": [], "usage": usage_})
    return out


def sse(obj: dict | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return f"data: {data}\n\n".encode()
