"""promptfoo, both ways: a run's hold-out as a `promptfooconfig.yaml` that watches the gateway.

The config's provider is the gateway's model for the task (`openai:chat:TASK`, the served
winner) and its tests are the run's hold-out, each asserted the way the task's metric scores it:
classify `equals` the label; extract `is-json` plus one `javascript` check per gold field (a
key-order-free comparison); qa `icontains-any` of the acceptable answers (or "unanswerable").
"""

from __future__ import annotations

import json
from typing import Any

from ladder.errors import LadderError

KINDS = ("classify", "extract", "qa")
# Key-order-free equality of JSON values, in JavaScript: promptfoo runs it on the model's output.
_CANON = (
    "const c = v => v && typeof v === 'object' ? (Array.isArray(v) ? '[' + v.map(c) + ']' : "
    "'{' + Object.keys(v).sort().map(k => JSON.stringify(k) + ':' + c(v[k])) + '}') : "
    "JSON.stringify(v);"
)


class PromptfooError(LadderError):
    """A run that cannot be exported, or a promptfoo config that cannot be read."""


def assertions(kind: str, gold: Any) -> list[dict[str, Any]]:
    """The promptfoo assertions that pass exactly when the task's metric counts the answer right."""
    if kind == "classify":
        return [{"type": "equals", "value": str(gold)}]
    if kind == "extract":
        out: list[dict[str, Any]] = [{"type": "is-json"}]
        for key, value in (gold or {}).items():
            check = f"return c(JSON.parse(output)[{json.dumps(key)}]) === c({json.dumps(value)});"
            out.append({"type": "javascript", "value": f"{_CANON} {check}", "metric": key})
        return out
    if kind == "qa":
        answers = ["unanswerable"] if gold is None else gold if isinstance(gold, list) else [gold]
        return [{"type": "icontains-any", "value": [str(a) for a in answers]}]
    raise PromptfooError(
        f"a {kind!r} task has no promptfoo assertion that matches its metric.",
        fix=f"export a {', '.join(KINDS)} task.",
    )


def export_config(view, base_url: str, key_env: str, limit: int | None = None) -> dict[str, Any]:
    """The promptfoo config for a run (a `RunView` with its hold-out)."""
    spec = view.spec
    if view.holdout is None:
        raise PromptfooError(
            f"run {view.run['id']} has no hold-out to export: {'; '.join(view.notes)}.",
            fix="restore the task file and data the run used, or export another run.",
        )
    if spec.kind not in KINDS:
        assertions(spec.kind, None)  # raises: no assertion matches this kind's metric
    rows = view.holdout[:limit] if limit else view.holdout
    return {
        "description": f"Ladder {spec.name}: the hold-out of run {view.run['id']} ({len(rows)} items)",
        "prompts": ["{{input}}"],
        "providers": [
            {
                "id": f"openai:chat:{spec.name}",
                "label": f"{spec.name} (served winner)",
                "config": {"apiBaseUrl": base_url, "apiKeyEnvar": key_env, "temperature": 0},
            }
        ],
        "tests": [
            {
                "description": f"holdout {e.id}",
                "vars": {"input": e.input},
                "assert": assertions(spec.kind, e.output),
            }
            for e in rows
        ],
    }


def header(run_id: str, base_url: str, key_env: str) -> str:
    return (
        f"# promptfoo eval -c promptfooconfig.yaml   (written by `ladder export promptfoo {run_id}`)\n"
        f"# Serve the run first: `ladder serve {run_id}` (gateway at {base_url});\n"
        f"# the key is read from ${key_env} (any value when the gateway has no keys).\n"
    )
