"""OpenAI wire format: requests validated at the edge, responses, stream chunks and errors.

Requests are validated strictly, as the OpenAI API does: a field of the wrong type (`"10"` or
`true` for an integer, `"yes"` for a boolean) or range, an unknown field, or a parameter Ladder
cannot honour (`tools`, penalties, `top_p`, ...) is a 400 whose `param` names it; nothing is
accepted and silently ignored. Parameters Ladder honours only on some models (`logprobs`,
`response_format`, `n`) are validated here and checked against the model by its target
(`targets.py`). The JSON's nesting depth is checked before parsing, so a deeply nested body is a
400, never a RecursionError.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


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
    "tools": ([],),
    "tool_choice": ("none",),
    "functions": ([],),
    "function_call": ("none",),
    "parallel_tool_calls": (),
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
    n: int = Field(1, ge=1, le=128, description="choices to sample")
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


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self):
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("`json_schema` is required with type json_schema, and only with it")
        return self

    def wire(self) -> dict[str, Any] | None:
        """What the targets see: None for plain text, else the format as OpenAI spells it."""
        return None if self.type == "text" else self.model_dump(by_alias=True, exclude_none=True)


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def top(self) -> int | None:
        """Alternatives per token when log-probabilities are asked for; None when they are not."""
        if self.top_logprobs is not None and not self.logprobs:
            raise ApiError(
                400,
                "Invalid value for 'top_logprobs': it needs 'logprobs' set to true.",
                param="top_logprobs",
                code="invalid_value",
            )
        return (self.top_logprobs or 0) if self.logprobs else None

    def format(self) -> dict[str, Any] | None:
        return self.response_format.wire() if self.response_format else None


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

    logprobs: int | None = Field(None, ge=0, le=5)

    def limit(self) -> int | None:
        return self.max_tokens

    def top(self) -> int | None:
        return self.logprobs

    def format(self) -> dict[str, Any] | None:
        return None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1)
    input: str | list[str] = Field(description="a text, or a list of texts")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = Field(None, max_length=256)

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, v):
        if isinstance(v, list) and v and not all(isinstance(t, str) for t in v):
            raise ValueError("send text: a string or a list of strings (token arrays are not read)")
        return v

    @field_validator("input")
    @classmethod
    def _not_empty(cls, v):
        texts = [v] if isinstance(v, str) else v
        if not texts or len(texts) > 2048:
            raise ValueError("send 1 to 2048 texts")
        if any(not t for t in texts):
            raise ValueError("a text is empty")
        return v

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=128, description="the response id to rate")
    rating: Literal["good", "bad"]
    note: str | None = Field(None, max_length=2000)


def parse(model: type[BaseModel], body: Any) -> Any:
    """Validate a JSON body; the first problem becomes a 400 naming its parameter."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if model in (ChatRequest, CompletionRequest):
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


def usage_of(answers) -> dict[str, int]:
    """OpenAI's usage for all the choices: the prompt once, every choice's completion tokens."""
    return usage(answers[0].tokens_in, sum(a.tokens_out for a in answers))


def wire_logprobs(endpoint: str, entries: Any) -> dict | None:
    """Log-probability entries [(token, logprob, [(token, logprob)...])] in OpenAI's shape."""
    if entries is None or isinstance(entries, dict):  # none, or an upstream's as it sent them
        return entries
    if endpoint == "chat":

        def one(token: str, lp: float) -> dict:
            return {"token": token, "logprob": lp, "bytes": list(token.encode())}

        content = [{**one(t, lp), "top_logprobs": [one(*a) for a in top]} for t, lp, top in entries]
        return {"content": content, "refusal": None}
    offsets, at = [], 0
    for t, _, _ in entries:
        offsets.append(at)
        at += len(t)
    return {
        "tokens": [t for t, _, _ in entries],
        "token_logprobs": [lp for _, lp, _ in entries],
        "top_logprobs": [{**dict(top), t: lp} for t, lp, top in entries],  # the chosen, always
        "text_offset": offsets,
    }


def _choice(endpoint: str, index: int, ans) -> dict:
    lp = wire_logprobs(endpoint, ans.logprobs)
    cites = {"citations": ans.citations} if ans.citations is not None else {}
    if endpoint == "chat":
        content = None if ans.refusal else ans.text
        msg = {"role": "assistant", "content": content, "refusal": ans.refusal, **cites}
        return {"index": index, "message": msg, "logprobs": lp, "finish_reason": ans.finish}
    return {"index": index, "text": ans.text, "logprobs": lp, "finish_reason": ans.finish, **cites}


def response(endpoint: str, rid: str, model: str, answers: list, extra: dict) -> dict:
    """A chat.completion or text_completion body with one choice per answer."""
    return {
        "id": rid,
        "object": "chat.completion" if endpoint == "chat" else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [_choice(endpoint, i, a) for i, a in enumerate(answers)],
        "usage": usage_of(answers),
        "ladder": extra,
    }


def stream_chunks(
    endpoint: str, rid: str, model: str, answers: list, pieces, usage_: dict | None
) -> list[dict]:
    """The chunks of streamed answers, choice after choice: role, content pieces, the finish.

    `pieces(text)` splits an answer into deltas; one with log-probabilities is sent whole, the
    entries on its delta. Usage comes last when asked for.
    """
    created = int(time.time())
    obj = "chat.completion.chunk" if endpoint == "chat" else "text_completion"
    base = {"id": rid, "object": obj, "created": created, "model": model}
    out = []
    for i, ans in enumerate(answers):
        lp = wire_logprobs(endpoint, ans.logprobs)
        parts = [ans.text] if lp is not None else pieces(ans.text)
        cites = {"citations": ans.citations} if ans.citations is not None else {}

        def chunk(body: dict, fin=None, logprobs=None, i=i):
            return {
                **base,
                "choices": [{"index": i, **body, "logprobs": logprobs, "finish_reason": fin}],
            }

        if endpoint == "chat":
            out.append(chunk({"delta": {"role": "assistant", "content": ""}}))
            if ans.refusal:
                out.append(chunk({"delta": {"refusal": ans.refusal}}))
            else:
                out += [chunk({"delta": {"content": p}}, logprobs=lp) for p in parts]
            out.append(chunk({"delta": cites}, ans.finish))
        else:
            out += [chunk({"text": p}, logprobs=lp) for p in parts]
            out.append(chunk({"text": "", **cites}, ans.finish))
    if usage_ is not None:
        out.append({**base, "choices": [], "usage": usage_})
    return out


def sse(obj: dict | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return f"data: {data}\n\n".encode()
