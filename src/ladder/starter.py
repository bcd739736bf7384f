"""`ladder init`: look at a user's data file and write a starter task.yaml for it.

Guesses (each overridable by a flag): the id column (unique values, id-like name), the output
column (an answer-like name, or the low-cardinality column), the input column (the longest
text), and the kind (JSON objects as outputs -> extract, else classify).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.dataset import get_field, label_names, read_source, render_input
from ladder.errors import DataError, TaskError
from ladder.fsutil import atomic_write_json, atomic_write_text
from ladder.starter_text import evidence_columns, text_columns, with_context

OUTPUT_NAMES = (
    "label",
    "labels",
    "category",
    "class",
    "intent",
    "target",
    "output",
    "answer",
    "queue",
    "topic",
    "y",
    "tag",
)
INPUT_NAMES = (
    "text",
    "input",
    "body",
    "message",
    "content",
    "utterance",
    "query",
    "question",
    "prompt",
    "email",
    "ticket",
    "review",
    "sentence",
)
MAX_LABELS = 200
# file names that say which split a file is, not what the data is: name the task after the folder
GENERIC_STEMS = (
    "train",
    "test",
    "validation",
    "valid",
    "val",
    "dev",
    "data",
    "default",
    "all",
    "questions",
)


@dataclass
class Starter:
    name: str
    kind: str
    id: str | None
    inputs: list[str]
    output: str
    labels: list[str]
    counts: Counter
    schema: dict[str, Any] | None
    rows: int
    split: str | None = None
    label_names: list[str] | None = None
    dropped: dict[str, int] | None = None  # rows `load_dataset` will not keep, by reason
    texts: dict[str, tuple[float, int]] | None = None  # text columns: mean, max length
    meta: list[str] | None = None  # qa: the gold evidence columns
    documents: str | None = None  # qa: the documents folder, relative to the task folder


def _columns(rows: list[tuple[int, dict[str, Any]]]) -> list[str]:
    cols: dict[str, None] = {}
    for _, r in rows[:500]:
        cols.update(dict.fromkeys(r))
    return list(cols)


def _as_object(v: Any) -> dict | None:
    if isinstance(v, dict):
        return v
    if isinstance(v, str) and v.strip().startswith("{"):
        try:
            obj = json.loads(v)
        except json.JSONDecodeError:
            return None
        return obj if isinstance(obj, dict) else None
    return None


def _text_len(rows, col) -> float:
    vals = [r.get(col) for _, r in rows[:500]]
    strs = [v for v in vals if isinstance(v, str)]
    return sum(map(len, strs)) / max(1, len(vals)) if len(strs) >= 0.8 * len(vals) else 0.0


def infer_schema(values: list[Any]) -> dict[str, Any]:
    """A JSON Schema that every given value validates against (types, nesting, nullability)."""
    types = set()
    for v in values:
        types.add(
            {
                bool: "boolean",
                int: "integer",
                float: "number",
                str: "string",
                dict: "object",
                list: "array",
                type(None): "null",
            }[type(v)]
        )
    if {"integer", "number"} <= types:
        types.discard("integer")
    schema: dict[str, Any] = {}
    non_null = sorted(types - {"null"})
    if "object" in types:
        objs = [v for v in values if isinstance(v, dict)]
        keys: dict[str, None] = {}
        for o in objs:
            keys.update(dict.fromkeys(o))
        schema = {
            "type": "object" if "null" not in types else ["object", "null"],
            "properties": {k: infer_schema([o[k] for o in objs if k in o]) for k in keys},
            "required": [k for k in keys if all(k in o for o in objs)],
        }
        return schema
    if "array" in types:
        items = [x for v in values if isinstance(v, list) for x in v]
        schema = {"type": "array" if "null" not in types else ["array", "null"]}
        if items:
            schema["items"] = infer_schema(items)
        return schema
    if not non_null:
        return {"type": "null"}
    t = non_null[0] if len(non_null) == 1 else non_null
    return {"type": t if "null" not in types else ([t] if isinstance(t, str) else t) + ["null"]}


def analyse(
    path: Path,
    *,
    inputs: list[str] | None = None,
    output: str | None = None,
    id: str | None = None,
    kind: str | None = None,
    name: str | None = None,
    split: str | None = None,
    label_names: list[str] | None = None,
    documents: Path | None = None,
) -> Starter:
    if path.is_dir():
        from ladder.dataset import read_table_rows

        split, _, rows = read_table_rows(path, split)
    else:
        rows, _ = read_source(path, "auto", split)
    cols = _columns(rows)

    def check(col: str, role: str) -> str:
        if not any(get_field(r, col)[0] for _, r in rows[:50]):
            raise DataError(
                f"no column {col!r} (given as --{role}). Columns: {', '.join(cols)}.", where=path
            )
        return col

    lower = {c.lower(): c for c in cols}
    if id:
        id = check(id, "id")
    else:
        for c in cols:
            if c.lower() in ("id", "uuid", "guid") or c.lower().endswith("_id"):
                vals = [str(r.get(c)) for _, r in rows]
                if len(set(vals)) == len(vals):
                    id = c
                    break
    if output:
        output = check(output, "label")
    else:
        output = next((lower[n] for n in OUTPUT_NAMES if n in lower and lower[n] != id), None)
        if output is None:
            cands = [
                c
                for c in cols
                if c != id
                and 1 < len({str(r.get(c)) for _, r in rows}) <= min(MAX_LABELS, len(rows) // 2)
            ]
            output = min(cands, key=lambda c: len({str(r.get(c)) for _, r in rows}), default=None)
        if output is None:
            raise DataError(
                f"cannot tell which column holds the answer. Columns: {', '.join(cols)}.",
                where=path,
                fix="name it: `ladder init DATA --label COLUMN`.",
            )
    if inputs:
        inputs = [check(c, "input") for c in inputs]
    else:
        rest = [c for c in cols if c not in (id, output)]
        named = [lower[n] for n in INPUT_NAMES if n in lower and lower[n] in rest]
        best = named[0] if named else max(rest, key=lambda c: _text_len(rows, c), default=None)
        if best is None:
            raise DataError(
                f"no column left for the input. Columns: {', '.join(cols)}.",
                where=path,
                fix="name it: `ladder init DATA --input COLUMN`.",
            )
        inputs = [best]
        inputs = with_context(inputs, text_columns(rows), {c for c in (id, output) if c})
    if documents is not None and kind not in (None, "qa"):
        raise TaskError(
            f"--documents makes a qa task, not {kind!r}.", fix="drop --kind, or use --kind qa."
        )
    if documents is not None or kind == "qa":
        return _qa_starter(path, rows, cols, inputs, output, id, name, split, documents)
    if label_names:
        rows = [(n, label_names_map(r, output, label_names, path, n)) for n, r in rows]
    rows, dropped = _kept_rows(rows, inputs, id, output)
    outs = [get_field(r, output)[1] for _, r in rows]
    objs = [_as_object(v) for v in outs]
    if kind is None:
        kind = "extract" if sum(o is not None for o in objs) >= 0.9 * len(objs) else "classify"
    labels: list[str] = []
    counts: Counter = Counter()
    schema = None
    if kind == "classify":
        counts = Counter(str(v).strip() for v in outs if v is not None and str(v).strip())
        if len(counts) > MAX_LABELS:
            raise DataError(
                f"column {output!r} has {len(counts)} distinct values: too many labels for classify.",
                where=path,
                fix="pick another column with --label, or use --kind extract for JSON outputs.",
            )
        if len(counts) < 2:
            raise DataError(
                f"column {output!r} has fewer than 2 distinct values.",
                where=path,
                fix="pick the answer column with --label.",
            )
        labels = [lab for lab, _ in counts.most_common()]
    elif kind == "extract":
        good = [o for o in objs if o is not None]
        if not good:
            raise DataError(
                f"column {output!r} holds no JSON objects, so it cannot be an extract task.",
                where=path,
            )
        schema = infer_schema(good)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["additionalProperties"] = False
    else:
        raise TaskError(
            f"`ladder init` writes classify or extract tasks, not {kind!r}.",
            fix="use --kind classify or --kind extract.",
        )
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name or task_name(path)).strip("-") or "task"
    st = Starter(slug, kind, id, inputs, output, labels, counts, schema, len(rows))
    st.split, st.label_names, st.dropped = split, label_names, dropped
    st.texts = text_columns(rows)
    return st


def _qa_starter(path, rows, cols, inputs, output, id, name, split, documents) -> Starter:
    if documents is None or not documents.is_dir():
        raise TaskError(
            "a qa task answers from documents: give their folder.",
            where=documents,
            fix="`ladder init QUESTIONS --documents FOLDER`.",
        )
    rows, dropped = _kept_rows(rows, inputs, id, output)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name or task_name(path)).strip("-") or "task"
    st = Starter(slug, "qa", id, inputs, output, [], Counter(), None, len(rows), split)
    st.dropped, st.texts = dropped, text_columns(rows)
    st.meta = evidence_columns(cols, {id, output, *inputs})
    st.documents = str(documents)
    return st


label_names_map = label_names


def task_name(path: Path) -> str:
    """The dataset's name: the folder for a dataset folder or a file named by its split."""
    path = path.resolve()
    if path.is_dir():
        return path.name
    stem = re.split(r"[-_.]", path.stem, maxsplit=1)[0] if "-of-" in path.stem else path.stem
    while stem.lower() in GENERIC_STEMS and path.parent != path:
        path = path.parent
        stem = path.name
    return stem


def _kept_rows(rows, inputs: list[str], id: str | None, output: str):
    """The rows `load_examples` keeps: without an id, one per distinct input (the first).

    `conflicting` counts the dropped duplicates whose answer differs from the kept one's.
    """
    dropped = {"duplicate": 0, "conflicting": 0}
    if id:
        return rows, dropped
    first: dict[str, str] = {}
    kept = []
    for n, r in rows:
        text, answer = render_input(r, inputs), str(get_field(r, output)[1])
        if text in first:
            dropped["duplicate"] += 1
            dropped["conflicting"] += first[text] != answer
            continue
        first[text] = answer
        kept.append((n, r))
    return kept, dropped


INSTRUCTIONS = {
    "classify": "Classify the {} into exactly one of the labels.",
    "extract": "Extract the fields described by the schema from the {}.",
    "qa": "Answer the {} accurately and briefly from the documents.",
}


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _dropped_comment(st: Starter) -> list[str]:
    d = st.dropped or {}
    if not d.get("duplicate"):
        return [f"# {st.rows} rows read, all kept."]
    return [
        f"# {st.rows + d['duplicate']} rows read; {d['duplicate']} dropped as duplicate inputs "
        f"({d['conflicting']} of them with a different answer): the label counts below are of the "
        f"{st.rows} kept."
    ]


def render_yaml(st: Starter, data_rel: str, folder: str) -> str:
    input_name = st.inputs[0].replace("_", " ").title() if len(st.inputs) == 1 else "Input"
    lines = [
        f"# ladder climb {folder}",
        f"# Written by `ladder init` from {data_rel}. Edit the instructions, the bar and the volume.",
        *_dropped_comment(st),
        f"name: {st.name}",
        f"kind: {st.kind}",
        "instructions: " + _q(INSTRUCTIONS[st.kind].format(input_name.lower())),
    ]
    if st.kind == "qa":
        lines.append(f"documents: {_q(st.documents or '')}   # `ladder ingest` indexes them")
        metric = "token_f1"
    elif st.kind == "classify":
        lines.append(
            f"labels:   # {len(st.labels)} labels, most frequent first (counts in the data)"
        )
        lines += [f"  - {_q(lab)}   # {st.counts[lab]}" for lab in st.labels]
        metric = "accuracy"
    else:
        lines.append(
            "output_schema: schema.json   # inferred from the data: tighten enums and patterns"
        )
        metric = "field_f1"
    inp = _q(st.inputs[0]) if len(st.inputs) == 1 else "[" + ", ".join(map(_q, st.inputs)) + "]"
    lines += [
        "data:",
        f"  path: {_q(data_rel)}",
        f"  id: {_q(st.id)}"
        if st.id
        else "  # id: no unique id column found; ids are hashes of the input text",
        f"  input: {inp}",
        f"  output: {_q(st.output)}",
        *(
            ["  meta: [" + ", ".join(map(_q, st.meta)) + "]   # gold evidence (detected)"]
            if st.meta
            else []
        ),
        *([f"  split: {_q(st.split)}   # the dataset's split read"] if st.split else []),
        *(
            ["  label_names: [" + ", ".join(map(_q, st.label_names)) + "]   # class ids 0, 1, ..."]
            if st.label_names
            else []
        ),
        "split: {train: 0.6, dev: 0.15, holdout: 0.25}   # by a hash of each id: stable as data grows",
        "leakage: {mode: refuse}   # or drop / report hold-out inputs that duplicate train/dev",
        f"bar: {{metric: {metric}, threshold: 0.8}}   # climb stops at the first rung that reaches it",
        "volume: {calls_per_day: 10000}   # your expected traffic: used by the economics",
        "knowledge: stable   # volatile if the facts the task needs change often",
        "scope: single-task   # shared if the tuned model also serves other tasks: forgetting counts",
        "model: gemma-3-270m",
        "prompt: {input_name: "
        + _q(input_name)
        + ", output_name: "
        + _q({"classify": "Label", "qa": "Answer"}.get(st.kind, "JSON"))
        + "}",
    ]
    return "\n".join(lines) + "\n"


def write_starter(
    data: Path, out: Path | None = None, *, force: bool = False, **kw
) -> tuple[Path, Starter]:
    st = analyse(data, **kw)
    folder = out or Path(st.name)
    task_file = folder / "task.yaml"
    if task_file.exists() and not force:
        raise TaskError(
            "already exists; not overwriting it.",
            where=task_file,
            fix="use --force, or --out another folder.",
        )
    folder.mkdir(parents=True, exist_ok=True)
    data_rel = os.path.relpath(data.resolve(), folder.resolve())
    if st.documents is not None:
        st.documents = os.path.relpath(Path(st.documents).resolve(), folder.resolve())
    if st.schema is not None:
        atomic_write_json(folder / "schema.json", st.schema)
    atomic_write_text(task_file, render_yaml(st, data_rel, str(folder)))
    return task_file, st
