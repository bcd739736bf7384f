"""What a task route does with each OpenAI parameter: honour it, or refuse it with a 400.

A task route answers with a solution the climb measured, so a parameter either changes the
answer the way OpenAI documents it or is refused, naming it:
- `stop`, `max_tokens`: the answer is cut at the first stop sequence, then to `max_tokens`
  tokens of the engine's tokenizer (`finish_reason: "length"`), exactly as a model generating
  that answer would have been cut;
- `temperature`, `seed`, `n`: a solution that scores labels samples them from its label
  distribution at the temperature (seeded); one that generates is sampled by the engine;
- `logprobs`/`top_logprobs`: the label's log-probability, renormalised over the label set
  (what the solution decided with), as one entry per answer; other solutions have none;
- `response_format`: an extract task answers the object of its `output_schema` (a `json_schema`
  must be that schema); a classify task answers `{"label": ...}` when the `json_schema` asks
  for exactly that shape; an answer that does not fit comes back as OpenAI's `refusal`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ladder.serve.schemas import ApiError

ANNOTATIONS = ("title", "description", "$schema", "$id", "$comment", "examples", "default")


def refuse(param: str, why: str) -> ApiError:
    return ApiError(
        400, f"Unsupported parameter: '{param}' {why}", param=param, code="unsupported_parameter"
    )


def cut_tokens(text: str, limit: int, count: Callable[[str], int]) -> str:
    """The longest prefix of `text` that is at most `limit` tokens (binary search on length)."""
    if count(text) <= limit:
        return text
    lo, hi = 0, len(text)  # count(text[:lo]) <= limit < count(text[:hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(text[:mid]) <= limit else (lo, mid)
    return text[:lo]


def _plain(schema: Any) -> Any:
    """A schema without its annotations, which change no answer (titles, descriptions...)."""
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if k not in ANNOTATIONS}
    if isinstance(schema, list):
        return [_plain(v) for v in schema]
    return schema


def label_shape(schema: dict, labels: list[str]) -> bool:
    """Whether the schema asks for exactly `{"label": L}` and admits every label L."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, dict) or set(props) != {"label"}:
        return False
    try:
        check = validator_for(schema)(schema)
        return all(check.is_valid({"label": lab}) for lab in labels)
    except SchemaError:
        return False


def json_answers(fmt: dict, task) -> Callable[[Any, bool], tuple[Any, str | None]]:
    """For a task route, a function (output, valid) -> (object to answer, or None and why).

    Raises a 400 naming `response_format` when the route cannot answer in that format.
    """
    kind, wanted = task.kind, (fmt.get("json_schema") or {}).get("schema")
    if fmt["type"] == "json_schema" and wanted is None:
        raise refuse("response_format", "needs `json_schema.schema` on a task route.")
    if kind == "extract":
        if fmt["type"] == "json_schema" and _plain(wanted) != _plain(task.schema):
            raise refuse(
                "response_format",
                f"asks for another schema than task {task.name!r} answers; send its "
                "output_schema as `json_schema.schema`, or use type json_object.",
            )
        strict = fmt["type"] == "json_schema"

        def obj(output, valid):
            if isinstance(output, dict) and (valid or not strict):
                return output, None
            return None, "the model's answer does not match the task's output_schema"

        return obj
    if (
        kind == "classify"
        and fmt["type"] == "json_schema"
        and wanted is not None
        and label_shape(wanted, task.labels)
    ):
        return lambda output, valid: (
            ({"label": output}, None) if valid else (None, "the model gave no label")
        )
    shape = ' {"label": ...} (a json_schema of that one property)' if kind == "classify" else ""
    raise refuse(
        "response_format",
        f"is not available on task {task.name!r} ({kind}): it answers{shape or ' text'}; "
        "omit response_format.",
    )


def label_entries(labels: list[str], lp: list[float], chosen: int, top: int) -> list[tuple]:
    """The chosen label as one log-probability entry: (token, logprob, [(token, logprob)...])."""
    order = sorted(range(len(labels)), key=lambda i: -lp[i])[:top]
    return [(labels[chosen], float(lp[chosen]), [(labels[i], float(lp[i])) for i in order])]
