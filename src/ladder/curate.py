"""Logged traffic -> the next training set, and reading such a set back (`climb --add-data`).

Curation keeps what is worth learning from: answers that were valid, not rated bad (or only
those rated good), from the routes asked for; one example per distinct input (normalised as
the leakage check normalises); and nothing that equals or nearly equals a hold-out input, so
the next climb's measurements stay honest. The output is JSONL rows `{id, input, output, meta}`,
which `ladder climb TASK --add-data FILE` adds to the train split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ladder.dataset import Dataset, Example, UnknownLabel, find_leaks, normalize, read_rows
from ladder.errors import DataError
from ladder.fsutil import atomic_write_text
from ladder.task import Task

FEEDBACK = ("good", "not-bad", "any")


@dataclass
class Curated:
    examples: list[Example]
    counts: dict[str, int] = field(default_factory=dict)  # why rows were dropped, and kept


def _prefer(row: dict[str, Any]) -> tuple:
    """Among logged answers to one input: rated good first, then the large model's, then newest."""
    large = "@" in (row.get("route") or "")  # routes name the large model as rung@model
    return (row.get("feedback") == "good", large, row.get("created_at") or 0)


def curate(
    rows: list[dict[str, Any]],
    task: Task,
    dataset: Dataset,
    *,
    routes: list[str] | None = None,
    feedback: str = "not-bad",
    include_invalid: bool = False,
    near_duplicate: float | None = None,
) -> Curated:
    """Filter, dedupe and hold-out-guard logged requests of a task model (rows from the log)."""
    counts = dict.fromkeys(("logged", "duplicate", "known", "holdout", "kept"), 0)
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        counts["logged"] += 1
        why = _dropped(r, routes, feedback, include_invalid)
        if why:
            counts[why] = counts.get(why, 0) + 1
            continue
        key = normalize(r["input"])
        counts["duplicate"] += key in best
        if key not in best or _prefer(r) > _prefer(best[key]):
            best[key] = r
    examples = [e for e in (_example(r) for r in best.values()) if e is not None]
    known = {normalize(e.input) for s in ("train", "dev") for e in dataset.splits[s]}
    fresh = [e for e in examples if normalize(e.input) not in known]
    threshold = near_duplicate or task.spec.leakage.near_duplicate
    leaked = {p.holdout_id for p in find_leaks(fresh, {"holdout": dataset.holdout}, threshold)}
    kept = [e for e in fresh if e.id not in leaked]
    counts.update(known=len(examples) - len(fresh), holdout=len(leaked), kept=len(kept))
    for why in ("unusable", "route", "feedback", "invalid"):
        counts.setdefault(why, 0)
    return Curated(kept, counts)


def _dropped(row: dict[str, Any], routes, feedback: str, include_invalid: bool) -> str | None:
    """Why a logged row is not training material, or None."""
    if row.get("status") != 200 or row.get("output") is None or not row.get("input"):
        return "unusable"  # an error, or a raw-model request (no task output)
    if routes and row.get("route") not in routes:
        return "route"
    rating = row.get("feedback")
    if (feedback == "good" and rating != "good") or (feedback == "not-bad" and rating == "bad"):
        return "feedback"
    if not include_invalid and not row.get("valid"):
        return "invalid"
    return None


def _example(row: dict[str, Any]) -> Example | None:
    output = json.loads(row["output"]) if isinstance(row["output"], str) else row["output"]
    if output is None:
        return None
    ex_id = "log-" + hashlib.sha1(normalize(row["input"]).encode()).hexdigest()[:12]
    meta = {
        "request_id": row["id"],
        "model": row.get("model"),
        "route": row.get("route"),
        "feedback": row.get("feedback"),
        "logged_at": row.get("created_at"),
    }
    return Example(ex_id, row["input"], output, meta)


def write_card(out: Path, task: Task, res: Curated, fmt: str, **filters: Any) -> Path:
    """The dataset card beside a curated file: `next.jsonl` -> `next.README.md`."""
    from ladder.trainsets import render_card

    c = res.counts
    shown = ", ".join(f"{k} {v}" for k, v in filters.items() if v) or "none"
    prov = [
        f"the gateway's request log for task `{task.name}`: {c['logged']} logged requests; filters: {shown}",
        f"dropped: {c['unusable']} not a task answer, {c['route']} other route, {c['feedback']} "
        f"feedback, {c['invalid']} invalid, {c['duplicate']} duplicate input",
    ]
    decon = [
        f"{c['known']} already in the task's train/dev split (normalised text) left out",
        f"{c['holdout']} equal or nearly equal to a hold-out input (Jaccard ≥ "
        f"{task.spec.leakage.near_duplicate}) left out, so the next climb's hold-out stays clean",
    ]
    files = {"train": (out.name, c["kept"])}
    card = out.with_name(out.stem + ".README.md")
    return atomic_write_text(
        card, render_card(task, fmt, files, provenance=prov, decontamination=decon)
    )


def write_jsonl(path: str | Path, examples: list[Example]) -> Path:
    text = "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in examples)
    return atomic_write_text(path, text)


def load_extra_examples(task: Task, path: str | Path) -> list[Example]:
    """Extra labelled examples (rows with `input` and `output`, optional `id`, `meta`)."""

    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(
            "the extra data file is not there.",
            where=path,
            fix="give the JSONL `ladder curate --out` wrote.",
        )
    kind = task.kind_impl
    out: list[Example] = []
    seen: dict[str, int] = {}
    for line, row in read_rows(path):
        text = row.get("input")
        if not isinstance(text, str) or not text.strip():
            raise DataError(
                f"line {line}: no `input` text.",
                where=path,
                fix="each row needs `input` (a string) and `output`.",
            )
        try:
            output = kind.parse_gold(row.get("output"), task)
        except UnknownLabel as exc:
            raise DataError(
                f"line {line}: {exc}, not one of the task's labels.", where=path
            ) from None
        except ValueError as exc:
            raise DataError(f"line {line}: {exc}", where=path) from None
        ex_id = str(row.get("id") or "extra-" + hashlib.sha1(text.encode()).hexdigest()[:12])
        if ex_id in seen:
            raise DataError(
                f"line {line}: duplicate id {ex_id!r} (first on line {seen[ex_id]}).", where=path
            )
        seen[ex_id] = line
        meta = m if isinstance(m := row.get("meta"), dict) else {}
        out.append(Example(ex_id, text, output, meta, line))
    return out


def extra_digest(paths: list[str]) -> str:
    """A hash of the extra data files, folded into the run's data hash (resume checks it)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).expanduser().read_bytes())
    return h.hexdigest()
