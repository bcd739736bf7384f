"""A deterministic engine with no model, so the CLI, store, report and server run in tests.

By default it answers plausibly but without skill: a label picked by a hash of the prompt when
the request names its choices, a schema-valid JSON object when it names a schema, and
hash-derived log-likelihoods when scoring. Tests pass `responder`/`scorer` callables to script
exact behaviour.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from ladder.engines.base import (
    Completion,
    GenRequest,
    ScoreRequest,
    Scores,
    answer_end,
    truncate_at_stop,
)


def _unit(*parts: str) -> float:
    h = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def instance_of(schema: dict[str, Any], salt: str) -> Any:
    """A small value that validates against common JSON Schema shapes."""
    if "enum" in schema:
        opts = schema["enum"]
        return opts[int(_unit(salt, "enum") * len(opts))]
    if "const" in schema:
        return schema["const"]
    typ = schema.get("type", "object")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ == "object":
        props = schema.get("properties", {})
        return {k: instance_of(v, f"{salt}/{k}") for k, v in props.items()}
    if typ == "array":
        return []
    if typ == "boolean":
        return _unit(salt, "b") < 0.5
    if typ == "integer":
        return int(_unit(salt, "i") * 100)
    if typ == "number":
        return round(_unit(salt, "n") * 100, 2)
    if typ == "null":
        return None
    return "x"


class FakeEngine:
    supports_scoring = True
    price_basis = "hour"  # stands in for a model of your own

    def __init__(
        self,
        model: str = "fake",
        *,
        responder: Callable[[GenRequest], str] | None = None,
        scorer: Callable[[ScoreRequest], list[float]] | None = None,
        latency_s: float = 0.0,
    ):
        self.model = model
        self.responder = responder
        self.scorer = scorer
        self.latency_s = latency_s
        self.calls = {"generate": 0, "score": 0}

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    def _answer(self, req: GenRequest) -> str:
        if self.responder is not None:
            return self.responder(req)
        salt = f"{req.prompt}\0{req.seed if req.temperature > 0 else ''}"
        if req.choices:
            return " " + req.choices[int(_unit(salt) * len(req.choices))]
        if req.json_schema:
            return " " + json.dumps(instance_of(req.json_schema, salt))
        return " ok"

    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        self.calls["generate"] += len(requests)
        out = []
        for req in requests:
            t0 = time.perf_counter()
            if self.latency_s:
                time.sleep(self.latency_s)
            raw = self._answer(req)
            # stop strings end the text as on a real engine (the stop itself is generated, not shown)
            text, stopped = truncate_at_stop(raw, req.stop)
            end = answer_end(text, req)  # a complete answer stops generation, as on hf
            if end is not None and end < len(text):
                text, stopped = text[:end], False
            made = raw[: len(text) + 1] if stopped else text if end is not None else raw
            dt = time.perf_counter() - t0
            out.append(
                Completion(text, self.count_tokens(req.prompt), self.count_tokens(made), dt, dt)
            )
        return out

    def score(self, requests: list[ScoreRequest]) -> list[Scores]:
        self.calls["score"] += len(requests)
        out = []
        for req in requests:
            t0 = time.perf_counter()
            if self.scorer is not None:
                lps = list(self.scorer(req))
            else:
                lps = [-1.0 - 4.0 * _unit(req.prompt, c) for c in req.choices]
            dt = time.perf_counter() - t0 + self.latency_s
            out.append(Scores(lps, self.count_tokens(req.prompt), dt, dt))
        return out

    def info(self) -> dict[str, Any]:
        return {"engine": "fake", "model": self.model, "device": "none", "price_basis": "hour"}

    def close(self) -> None:
        pass
