"""Training sets in the formats other tools read, and the dataset card that travels with them.

`ladder` rows are Ladder's own `{id, input, output, meta}`. `messages` is the chat format of
TRL's SFTTrainer and the OpenAI and Together fine-tuning APIs:
`{"messages": [{"role": "system"|"user"|"assistant", "content": ...}]}`. `prompt-completion` is
TRL's (and Together's) `{"prompt": ..., "completion": ...}`. The system message / prompt head
is the task's instructions plus its answer format, so a model tuned on the file is asked the
way Ladder asks it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ladder.dataset import Dataset, Example
from ladder.errors import DataError
from ladder.fsutil import atomic_write_text
from ladder.task import Task

FORMATS = ("ladder", "messages", "prompt-completion")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DataError(
            f"unknown training-data format {fmt!r}.",
            fix=f"use --format {' | '.join(FORMATS)}.",
        )
    return fmt


def system_text(task: Task) -> str:

    kind = task.kind_impl
    head = (task.spec.instructions or "").strip()
    return "\n".join(s for s in (head, kind.answer_format(task)) if s)


def to_record(ex: Example, task: Task, fmt: str) -> dict[str, Any]:
    """One example as a row of `fmt`."""

    if fmt == "ladder":
        return ex.to_json()
    answer = task.kind_impl.render_output(ex.output, task)
    if fmt == "messages":
        return {
            "messages": [
                {"role": "system", "content": system_text(task)},
                {"role": "user", "content": ex.input},
                {"role": "assistant", "content": answer},
            ]
        }
    return {"prompt": f"{system_text(task)}\n\n{ex.input}\n", "completion": answer}


def write_trainset(path: str | Path, examples: list[Example], task: Task, fmt: str) -> Path:
    """Write examples as JSONL rows of `fmt` (one object per line)."""
    check_format(fmt)
    rows = (to_record(e, task, fmt) for e in examples)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return atomic_write_text(path, text)


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def render_card(
    task: Task,
    fmt: str,
    files: dict[str, tuple[str, int]],
    *,
    provenance: list[str],
    decontamination: list[str],
) -> str:
    """A Hugging Face dataset card: YAML header (configs, splits, counts) and a body.

    `files` maps split name -> (file name relative to the card, number of rows).
    """
    head = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, (name, _) in files.items():
        head += [f"  - split: {split}", f"    path: {_yaml_str(name)}"]
    head += ["dataset_info:", "  splits:"]
    for split, (_, n) in files.items():
        head += [f"  - name: {split}", f"    num_examples: {n}"]
    head += [
        "tags:",
        "- ladder",
        f"- {fmt}",
        "---",
        "",
        f"# {task.name}: training data ({fmt} format)",
        "",
        f"Written by Ladder for the `{task.kind}` task `{task.name}` ({task.file}).",
        "",
        "| split | file | rows |",
        "|---|---|---|",
    ]
    head += [f"| {s} | {name} | {n} |" for s, (name, n) in files.items()]
    head += ["", "## Provenance", ""] + [f"- {p}" for p in provenance]
    head += ["", "## Hold-out decontamination", ""] + [f"- {d}" for d in decontamination]
    head += ["", "## Format", "", _FORMAT_NOTE[fmt], ""]
    return "\n".join(head)


_FORMAT_NOTE = {
    "ladder": "Ladder rows `{id, input, output, meta}`: `ladder climb TASK --add-data FILE` reads them.",
    "messages": "Chat rows `{messages: [system, user, assistant]}`: TRL's SFTTrainer and the "
    "OpenAI and Together fine-tuning APIs read them as they are.",
    "prompt-completion": "Rows `{prompt, completion}`: TRL's SFTTrainer (completion-only loss) "
    "and Together's fine-tuning API read them as they are.",
}


def export_run(run: dict[str, Any], task: Task, ds: Dataset, out: Path, fmt: str) -> dict[str, Any]:
    """A stored run's train and dev splits as a dataset folder (files + README.md card).

    `ds` is the run's dataset as its climb loaded it (with its `--add-data` files), leaks
    reported, not refused. The hold-out is not exported: it is what the run measured on.
    Train/dev examples that equal or nearly equal a hold-out input are left out, so a model
    tuned on the folder can still be measured honestly on that hold-out.
    """
    check_format(fmt)
    if ds.data_hash != run["data_hash"]:
        raise DataError(
            f"the task's data changed since run {run['id']} (its hash differs), so its split is gone.",
            where=ds.source,
            fix="restore the data the run used, or climb again and export the new run.",
        )
    leaked = {p.other_id for p in ds.leaks}
    suffix = {"ladder": "jsonl", "messages": "messages.jsonl", "prompt-completion": "pc.jsonl"}
    files: dict[str, tuple[str, int]] = {}
    for split, name in (("train", "train"), ("dev", "validation")):
        keep = [e for e in ds.splits[split] if e.id not in leaked]
        fname = f"{name}.{suffix[fmt]}"
        write_trainset(out / fname, keep, task, fmt)
        files[name] = (fname, len(keep))
    n_left = sum(len(ds.splits[s]) for s in ("train", "dev")) - sum(n for _, n in files.values())
    thr = task.spec.leakage.near_duplicate
    decon = [
        f"the hold-out ({len(ds.holdout)} examples) is not included: run {run['id']} measured on it",
        f"{n_left} train/dev example(s) left out because they equal or nearly equal a hold-out "
        f"input (normalised text; near-duplicate Jaccard ≥ {thr} on character 3-gram MinHash)",
    ]
    prov = [
        f"run `{run['id']}` of task `{task.name}` ({run['created_at']}), status {run['status']}",
        f"data file `{ds.source.name}`, sha256 `{ds.data_hash[:16]}…` (the run's own)",
        f"split by a hash of each id: train {task.spec.split.train}, dev {task.spec.split.dev}, "
        f"salt `{task.spec.split.salt}`",
    ]
    card = render_card(task, fmt, files, provenance=prov, decontamination=decon)
    atomic_write_text(out / "README.md", card)
    return {
        "files": files,
        "left_out": n_left,
        "holdout": len(ds.holdout),
        "card": out / "README.md",
    }
