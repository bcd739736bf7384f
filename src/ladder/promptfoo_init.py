"""`ladder init promptfooconfig.yaml`: a promptfoo config's tests as a task, its prompts as variants.

Each test's `vars` become the input columns and its assertion the gold output: `equals` a string
-> a classify label; `is-json` with an `equals` object (or JSON text) -> an extract object. Each
prompt becomes a zero-shot template variant, its `{{ var }}` placeholders reading Ladder's
`{{ input }}` (the input columns, joined). Config never runs code: `file://` references and
`javascript` assertions are refused with the reason, never run and never silently dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ladder.promptfoo import PromptfooError
from ladder.yamlio import load_yaml

GOLD_TYPES = ("equals", "is-json")
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass
class Imported:
    rows: list[dict[str, Any]]
    inputs: list[str]
    kind: str
    templates: dict[str, str]
    notes: list[str] = field(default_factory=list)


def is_promptfoo_config(path: Path) -> bool:
    if path.suffix.lower() not in (".yaml", ".yml"):
        return False
    data, _ = load_yaml(path, PromptfooError)
    return isinstance(data, dict) and "tests" in data and "prompts" in data


def read_config(path: Path) -> Imported:
    data, _ = load_yaml(path, PromptfooError)
    tests = data.get("tests")
    if isinstance(tests, str) or not isinstance(tests, list) or not tests:
        raise PromptfooError(
            "`tests:` must be a non-empty list of tests written in the file"
            + (f" (got {tests!r}: Ladder does not follow file references)" if tests else "")
            + ".",
            where=path,
            fix="inline the tests (vars + assert), or convert the CSV/JSONL with `ladder init DATA`.",
        )
    rows = [_row(t, i, path) for i, t in enumerate(tests, 1)]
    inputs = sorted({k for r in rows for k in r if k not in ("id", "output")})
    kinds = {"extract" if isinstance(r["output"], dict) else "classify" for r in rows}
    if len(kinds) > 1:
        raise PromptfooError(
            "some tests expect a JSON object and others a string.",
            where=path,
            fix="split them into two configs: one classify task (equals), one extract (is-json).",
        )
    templates, notes = _templates(data.get("prompts"), inputs, path)
    return Imported(rows, inputs, kinds.pop(), templates, notes)


def _row(test: Any, i: int, path: Path) -> dict[str, Any]:
    where = f"{path}: tests[{i}]"
    if not isinstance(test, dict) or not isinstance(test.get("vars"), dict) or not test["vars"]:
        raise PromptfooError(
            "a test needs `vars:` (a mapping of the prompt's variables).", where=where
        )
    asserts = test.get("assert") or []
    types = [a.get("type") for a in asserts if isinstance(a, dict)]
    equals = [a.get("value") for a in asserts if isinstance(a, dict) and a.get("type") == "equals"]
    if not equals:
        raise PromptfooError(
            f"no gold answer: its assertions are {types or 'none'}; Ladder reads the gold output "
            "from an `equals` assertion (with `is-json` for a JSON object).",
            where=where,
            fix="add `- {type: equals, value: ANSWER}`; `contains` checks are qa tasks, written "
            "by hand with `kind: qa` and `documents:` (README, retrieval).",
        )
    gold = equals[0]
    if "is-json" in types and isinstance(gold, str):
        try:
            gold = json.loads(gold)
        except json.JSONDecodeError as exc:
            raise PromptfooError(
                f"`is-json` with an `equals` value that is not JSON ({exc.msg}).", where=where
            ) from None
    if not isinstance(gold, (str, dict)):
        gold = json.dumps(gold) if isinstance(gold, list) else str(gold)
    row: dict[str, Any] = {"id": str(test.get("description") or f"test-{i}")}
    row.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in test["vars"].items()})
    row["output"] = gold
    return row


def _templates(prompts: Any, inputs: list[str], path: Path) -> tuple[dict[str, str], list[str]]:
    """Each prompt as a template reading `{{ input }}`; notes say what changed."""
    prompts = [prompts] if isinstance(prompts, str) else prompts or []
    out: dict[str, str] = {}
    notes: list[str] = []
    for i, p in enumerate(prompts, 1):
        raw = p.get("raw") if isinstance(p, dict) else p
        if not isinstance(raw, str) or raw.startswith("file://"):
            raise PromptfooError(
                f"prompts[{i}] is not inline text ({raw!r}); Ladder does not follow file "
                "references or run prompt functions.",
                where=path,
                fix="paste the prompt text into `prompts:`.",
            )
        used = _VAR.findall(raw)
        first = [True]

        def sub(m: re.Match, first=first) -> str:
            if first[0]:
                first[0] = False
                return "{{ input }}"
            return ""

        out[f"promptfoo-{i}"] = _VAR.sub(sub, raw)
        if len(set(used)) > 1:
            notes.append(
                f"prompt {i} uses {', '.join(sorted(set(used)))}: Ladder passes them joined as "
                "{{ input }}, put where the first one was"
            )
    return out, notes


def write_task(config: Path, out: Path | None, name: str | None, force: bool):
    """Write FOLDER/data.jsonl and FOLDER/task.yaml from a promptfoo config; returns the starter."""
    from ladder.fsutil import atomic_write_text
    from ladder.starter import write_starter

    imp = read_config(config)
    folder = out or Path(name or config.parent.resolve().name or "promptfoo-task")
    if (folder / "task.yaml").exists() and not force:
        raise PromptfooError(
            "already exists; not overwriting it.", where=folder / "task.yaml", fix="use --force."
        )
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.jsonl"
    atomic_write_text(data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in imp.rows))
    task_file, st = write_starter(
        data,
        folder,
        force=True,
        inputs=imp.inputs,
        output="output",
        id="id",
        kind=imp.kind,
        name=name or folder.resolve().name,
    )
    text = task_file.read_text(encoding="utf-8").rstrip("\n")
    if imp.templates and text.endswith("}"):
        flow = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in imp.templates.items())
        note = f"# from {config.name}: its prompts as zero-shot variants\n"
        text = text[:-1] + f", templates: {{{flow}}}}}"
        text = text.replace("\nprompt: {", "\n" + note + "prompt: {")
    notes = "".join(f"# note: {n}\n" for n in imp.notes)
    atomic_write_text(task_file, notes + text + "\n")
    return task_file, st, imp
