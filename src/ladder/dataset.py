"""Examples, their deterministic split, and the leakage check that guards the hold-out.

Each example lands in train/dev/holdout by a hash of its id (and the task's salt), so the split
never depends on file order and an example never moves when data is added. Within a split,
examples are ordered by that same hash: a deterministic shuffle, so `--limit N` takes an
unbiased slice.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ladder.errors import DataError
from ladder.task import DataSpec, Task
from ladder.yamlio import read_text

SPLITS = ("train", "dev", "holdout")


@dataclass
class Example:
    id: str
    input: str
    output: Any
    meta: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # 1-based line (JSONL) or row (CSV, header = 1) in the source file

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "input": self.input, "output": self.output, "meta": self.meta}


@dataclass
class Prediction:
    """What a solution returned for one example: stored by the run, scored by evaluation."""

    example_id: str
    output: Any  # parsed output (label, object...), None when the answer was unusable
    valid: bool
    error: str | None = None
    raw: str | None = None  # the model's text, or the chosen label when scoring
    scores: list[float] | None = None  # log-likelihood per label when the answer was scored
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    compute_s: float = 0.0
    repeat: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # rung-specific (citations, confidence...)


@dataclass
class LeakPair:
    holdout_id: str
    other_id: str
    other_split: str
    similarity: float  # 1.0 = exact (after normalisation)


@dataclass
class Dataset:
    task_name: str
    source: Path
    examples: list[Example]
    splits: dict[str, list[Example]]
    data_hash: str
    leaks: list[LeakPair] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # duplicate rows merged or dropped

    @property
    def train(self) -> list[Example]:
        return self.splits["train"]

    @property
    def dev(self) -> list[Example]:
        return self.splits["dev"]

    @property
    def holdout(self) -> list[Example]:
        return self.splits["holdout"]

    def counts(self) -> dict[str, int]:
        return {s: len(self.splits[s]) for s in SPLITS}

    def holdout_inputs(self) -> set[str]:
        """Normalised hold-out inputs: anything that trains must exclude these."""
        return {normalize(e.input) for e in self.holdout}


# ---------------------------------------------------------------- reading rows


def detect_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    return {
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".json": "json",
        ".csv": "csv",
        ".tsv": "tsv",
        ".parquet": "parquet",
        ".arrow": "arrow",
    }.get(suffix, "hf" if path.is_dir() else "")


def read_source(
    path: Path, fmt: str = "auto", split: str | None = None
) -> tuple[list[tuple[int, dict[str, Any]]], str]:
    """(rows, sha256 of what was read): a data file, or one split of a dataset folder."""
    from ladder.hfdata import digest, is_table_source

    if fmt in ("parquet", "arrow", "hf") or (fmt == "auto" and is_table_source(path)):
        _, files, rows = read_table_rows(path, split)
        return rows, digest(files)
    if split is not None:
        raise DataError(
            f"`split: {split}` needs a dataset folder or a Parquet file, not a {path.suffix} file.",
            where=path,
            fix="remove `split`, or point `path` at the dataset folder.",
        )
    rows = read_rows(path, fmt)
    return rows, hashlib.sha256(path.read_bytes()).hexdigest()


def read_table_rows(
    path: Path, split: str | None = None
) -> tuple[str, list[Path], list[tuple[int, dict[str, Any]]]]:
    """(split, files, rows) of a Parquet/Arrow file or a dataset folder; ClassLabels as names."""
    from ladder.hfdata import TABLE_SUFFIXES, name_labels, read_table, split_files

    if not path.exists():
        raise DataError("the data file or folder is not there.", where=path)
    if path.is_dir():
        name, files, labels = split_files(path, split)
    else:
        name, files, labels = split or path.stem, [path], {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for f in files:
        if f.suffix.lower() in TABLE_SUFFIXES:
            part, found = read_table(f)
            labels = {**found, **labels}
        else:
            part = [r for _, r in read_rows(f)]
        rows += [(len(rows) + i + 1, r) for i, r in enumerate(part)]
    if not rows:
        raise DataError(f"split {name!r} has no rows.", where=path)
    return name, files, [(n, name_labels(r, labels, files[0])) for n, r in rows]


def read_rows(path: Path, fmt: str = "auto") -> list[tuple[int, dict[str, Any]]]:
    """Rows of a JSONL/JSON/CSV/TSV file as (line or row number, mapping)."""
    fmt = detect_format(path, fmt)
    if fmt in ("parquet", "arrow", "hf"):
        return read_source(path, fmt)[0]
    if not fmt:
        raise DataError(
            f"cannot tell the format from the extension {path.suffix!r}.",
            where=path,
            fix="use .jsonl, .json, .csv, .tsv or .parquet (or a Hugging Face dataset folder), "
            "or set `data.format` in task.yaml.",
        )
    text = read_text(path, "data file", DataError)
    if not text.strip():
        raise DataError(
            "the data file is empty.",
            where=path,
            fix="add examples (one JSON object per line, or a CSV with a header row).",
        )
    if fmt == "jsonl":
        rows = _read_jsonl(path, text)
    elif fmt == "json":
        rows = _read_json(path, text)
    else:
        rows = _read_csv(path, text, "\t" if fmt == "tsv" else None)
    if not rows:
        raise DataError("the data file has no rows.", where=path)
    return rows


def _read_jsonl(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"line {n}: not valid JSON ({exc.msg} at column {exc.colno}).",
                where=path,
                fix="each line must be one complete JSON object; check quotes and escapes on that line.",
            ) from None
        if not isinstance(obj, dict):
            raise DataError(
                f"line {n}: expected a JSON object, got {type(obj).__name__}.", where=path
            )
        rows.append((n, obj))
    return rows


def _read_json(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"line {exc.lineno}: not valid JSON ({exc.msg}).", where=path) from None
    if isinstance(obj, dict):  # {"data": [...]} and similar wrappers
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(
                "expected a JSON list of objects (or an object holding exactly one list).",
                where=path,
            )
        obj = lists[0]
    if not isinstance(obj, list):
        raise DataError("expected a JSON list of objects.", where=path)
    rows = []
    for i, item in enumerate(obj, 1):
        if not isinstance(item, dict):
            raise DataError(
                f"item {i}: expected a JSON object, got {type(item).__name__}.", where=path
            )
        rows.append((i, item))
    return rows


def _read_csv(path: Path, text: str, delimiter: str | None) -> list[tuple[int, dict[str, Any]]]:
    csv.field_size_limit(1 << 30)
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:20000], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames:
        raise DataError(
            "the CSV has no header row.", where=path, fix="add a first row naming the columns."
        )
    _check_header(path, reader.fieldnames)
    rows = []
    try:
        for rec in reader:
            row = reader.line_num
            if None in rec:
                raise DataError(
                    f"row {row}: more fields than the header has columns.",
                    where=path,
                    fix="quote fields that contain the delimiter.",
                )
            if all((v or "").strip() == "" for v in rec.values()):
                continue
            rows.append((row, dict(rec)))
    except csv.Error as exc:
        raise DataError(f"row {reader.line_num}: malformed CSV ({exc}).", where=path) from None
    return rows


def get_field(row: dict[str, Any], name: str) -> tuple[bool, Any]:
    """Look up a column, or a dotted path into nested JSON (`user.message`)."""
    if name in row:
        return True, row[name]
    cur: Any = row
    for part in name.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return False, None
    return True, cur


def _missing_column(
    path: Path, line: int, column: str, role: str, row: dict[str, Any]
) -> DataError:
    cols = list(row)
    close = difflib.get_close_matches(column, cols, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return DataError(
        f"line/row {line}: no column {column!r} (mapped as `data.{role}` in task.yaml).{hint} Columns here: {', '.join(map(str, cols))}.",
        where=path,
        fix=f"set `data.{role}` in task.yaml to one of those columns.",
    )


def render_input(row: dict[str, Any], columns: list[str]) -> str:
    """One input text from one or several columns (several become `Name: value` lines)."""
    values = []
    for col in columns:
        _, value = get_field(row, col)
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        values.append("" if value is None else str(value))
    if len(columns) == 1:
        return values[0]
    return "\n".join(f"{col[:1].upper()}{col[1:]}: {v}" for col, v in zip(columns, values))


def _check_header(path: Path, names: Sequence[str]) -> None:
    """A column named twice would silently lose all but its last copy: refuse it."""
    where: dict[str, list[int]] = {}
    for i, name in enumerate(names, 1):
        where.setdefault(name.strip(), []).append(i)
    twice = {n: cols for n, cols in where.items() if len(cols) > 1}
    if twice:
        shown = "; ".join(f"{n!r} in columns {', '.join(map(str, c))}" for n, c in twice.items())
        raise DataError(
            f"row 1: the header names a column more than once ({shown}), so all but the last copy would be lost.",
            where=path,
            fix="give every column its own name (e.g. subject, body), then list them in `data.input`.",
        )


def load_examples(
    task: Task,
    spec: DataSpec | None = None,
    *,
    labelled: bool = True,
    skipped: list[str] | None = None,
) -> tuple[list[Example], Path, str]:
    """Read, map and validate examples; return (examples, file, sha256 of the file).

    Rows merged or dropped as duplicates are described in `skipped` (one line each)."""

    spec = spec or task.spec.data
    path = task.resolve(spec.path)
    rows, digest = read_source(path, spec.format, spec.split)
    if spec.label_names and spec.output:
        rows = [(n, label_names(r, spec.output, spec.label_names, path, n)) for n, r in rows]
    kind = task.kind_impl
    columns = [spec.input] if isinstance(spec.input, str) else list(spec.input)
    examples: list[Example] = []
    seen: dict[str, int] = {}
    dups: dict[str, int] = {}  # derived id -> line of a repeated identical input
    unknown: dict[str, list[int]] = {}
    for line, row in rows:
        for col in columns:
            if not get_field(row, col)[0]:
                raise _missing_column(path, line, col, "input", row)
        text = render_input(row, columns)
        if not text.strip():
            raise DataError(
                f"line/row {line}: the input is empty.",
                where=path,
                fix="remove the row or fill in its input.",
            )
        if spec.id:
            found, raw_id = get_field(row, spec.id)
            if not found:
                raise _missing_column(path, line, spec.id, "id", row)
            ex_id = str(raw_id).strip()
            if not ex_id:
                raise DataError(f"line/row {line}: empty id.", where=path)
            if ex_id in seen:
                raise DataError(
                    f"line/row {line}: duplicate id {ex_id!r} (first seen on line/row {seen[ex_id]}).",
                    where=path,
                    fix="ids must be unique: renumber, or remove `data.id` to let Ladder derive ids from the input text.",
                )
        else:
            ex_id = hashlib.sha1(text.encode()).hexdigest()[:12]
            if ex_id in seen:  # identical input twice: keep the first, never split a duplicate
                dups.setdefault(f"{ex_id}:{line}", line)
        if f"{ex_id}:{line}" not in dups:
            seen[ex_id] = line
        output = None
        if labelled:
            if spec.output is None:
                raise DataError(
                    "`data.output` is not set, so there are no gold outputs.",
                    where=task.file,
                    fix="name the column that holds the answer.",
                )
            found, raw = get_field(row, spec.output)
            if not found:
                raise _missing_column(path, line, spec.output, "output", row)
            try:
                output = kind.parse_gold(raw, task)
            except UnknownLabel as exc:
                unknown.setdefault(exc.label, []).append(line)
                continue
            except ValueError as exc:
                raise DataError(f"line/row {line}: {exc}", where=path) from None
        if f"{ex_id}:{line}" in dups:
            _note_duplicate(skipped, examples, ex_id, line, seen[ex_id], output)
            continue
        meta = {m: get_field(row, m)[1] for m in spec.meta}
        examples.append(Example(id=ex_id, input=text, output=output, meta=meta, line=line))
    if unknown:
        shown = "; ".join(
            f"{lab!r} on line/row {', '.join(map(str, lines[:3]))}{'...' if len(lines) > 3 else ''}"
            for lab, lines in list(unknown.items())[:5]
        )
        raise DataError(
            f"unknown label(s) not listed in task.yaml `labels`: {shown}.",
            where=path,
            fix=f"add them to `labels` in {task.file.name}, or correct those rows.",
        )
    if not examples:
        raise DataError("no usable examples.", where=path)
    return examples, path, digest


def _note_duplicate(
    skipped: list[str] | None, examples: list[Example], ex_id: str, line: int, first: int, output
) -> None:
    kept = next(e for e in reversed(examples) if e.id == ex_id)
    if kept.output == output:
        what = f"line/row {line}: same input and output as line/row {first}: merged into it"
    else:
        what = f"line/row {line}: same input as line/row {first} but output {output!r} (kept {kept.output!r}): dropped"
    if skipped is not None:
        skipped.append(what)


def label_names(row: dict[str, Any], col: str, names: list[str], path: Path, line: int) -> dict:
    """Map an integer class id (or its digits as text) in `col` to its name from `names`."""
    v = row.get(col)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        if not 0 <= v < len(names):
            raise DataError(
                f"line/row {line}: class id {v} in {col!r}, but only {len(names)} label names are given.",
                where=path,
                fix="give one name per class id, in order (`--label-names a,b,c` / `data.label_names`).",
            )
        row = {**row, col: names[v]}
    return row


class UnknownLabel(ValueError):
    def __init__(self, label: str):
        super().__init__(f"unknown label {label!r}")
        self.label = label


# ---------------------------------------------------------------- split


def split_point(ex_id: str, salt: str) -> float:
    """A uniform number in [0, 1) from the id: the example's fixed place in the split."""
    h = hashlib.sha256(f"{salt}\0{ex_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign_splits(
    examples: list[Example], train: float, dev: float, salt: str
) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    keyed = sorted(((split_point(e.id, salt), e) for e in examples), key=lambda t: t[0])
    for u, ex in keyed:
        split = "train" if u < train else "dev" if u < train + dev else "holdout"
        out[split].append(ex)
    # order inside each split: a second, independent hash (so a prefix is a fair sample)
    for s in SPLITS:
        out[s].sort(key=lambda e: split_point(e.id, salt + "/order"))
    return out


# ---------------------------------------------------------------- leakage

_WORD = re.compile(r"\w+", re.UNICODE)


def normalize(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def shingles(text: str, n: int = 3) -> set[int]:
    words = normalize(text).split()
    if len(words) < n:
        return set()
    return {zlib.crc32(" ".join(words[i : i + n]).encode()) for i in range(len(words) - n + 1)}


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


_MERSENNE = (1 << 61) - 1


def _minhash(sets: list[set[int]], perms: int = 32, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 31, size=perms, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, size=perms, dtype=np.uint64)
    sig = np.full((len(sets), perms), np.iinfo(np.uint64).max, dtype=np.uint64)
    for i, s in enumerate(sets):
        if s:
            x = np.fromiter(s, dtype=np.uint64, count=len(s))[:, None]
            sig[i] = ((x * a + b) % _MERSENNE).min(axis=0)
    return sig


def find_leaks(
    holdout: list[Example], others: dict[str, list[Example]], threshold: float
) -> list[LeakPair]:
    """Hold-out examples whose input equals or nearly equals a train/dev input."""
    pool = [(split, e) for split, exs in others.items() for e in exs]
    exact: dict[str, tuple[str, Example]] = {}
    for split, e in pool:
        exact.setdefault(normalize(e.input), (split, e))
    leaks: dict[str, LeakPair] = {}
    for h in holdout:
        hit = exact.get(normalize(h.input))
        if hit:
            leaks[h.id] = LeakPair(h.id, hit[1].id, hit[0], 1.0)
    # near duplicates: MinHash with LSH bands, every candidate verified by exact Jaccard
    rest = [h for h in holdout if h.id not in leaks]
    if not rest or not pool:
        return list(leaks.values())
    pool_sets = [shingles(e.input) for _, e in pool]
    rest_sets = [shingles(h.input) for h in rest]
    sig_pool, sig_rest = _minhash(pool_sets), _minhash(rest_sets)
    bands, rows = 8, 4
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for j in range(len(pool)):
        if pool_sets[j]:
            for band in range(bands):
                buckets.setdefault(
                    (band, sig_pool[j, band * rows : (band + 1) * rows].tobytes()), []
                ).append(j)
    for i, h in enumerate(rest):
        if not rest_sets[i]:
            continue
        cands: set[int] = set()
        for band in range(bands):
            cands.update(
                buckets.get((band, sig_rest[i, band * rows : (band + 1) * rows].tobytes()), ())
            )
        best = max(((jaccard(rest_sets[i], pool_sets[j]), j) for j in cands), default=(0.0, -1))
        if best[0] >= threshold:
            split, e = pool[best[1]]
            leaks[h.id] = LeakPair(h.id, e.id, split, round(best[0], 3))
    return list(leaks.values())


# ---------------------------------------------------------------- entry point


def load_dataset(
    task: Task, leakage: str | None = None, extra: list[Example] | None = None
) -> Dataset:
    """Load, split and leak-check a task's data. `leakage` overrides task.yaml's mode."""
    skipped: list[str] = []
    examples, path, digest = load_examples(task, skipped=skipped)
    sp = task.spec.split
    splits = assign_splits(examples, sp.train, sp.dev, sp.salt)
    if extra:  # extra training data (curated logs): train only, never hold-out
        splits["train"].extend(extra)
    ds = Dataset(task.name, path, examples, splits, digest)
    mode = leakage or task.spec.leakage.mode
    ds.leaks = find_leaks(
        splits["holdout"],
        {"train": splits["train"], "dev": splits["dev"]},
        task.spec.leakage.near_duplicate,
    )
    if ds.leaks:
        by_id = {e.id: e for e in examples}
        sample = "; ".join(
            f"holdout {p.holdout_id!r} (line {by_id[p.holdout_id].line}) ~ {p.other_split} {p.other_id!r}"
            f"{' (line ' + str(by_id[p.other_id].line) + ')' if p.other_id in by_id else ''}"
            f" {'exact' if p.similarity >= 1 else f'similarity {p.similarity:.2f}'}"
            for p in ds.leaks[:3]
        )
        if mode == "refuse":
            raise DataError(
                f"{len(ds.leaks)} hold-out input(s) also appear (exactly or nearly) in train/dev, which would inflate every score: {sample}.",
                where=path,
                fix="remove the duplicates from the data, or run with `--leakage drop` (drop them from the hold-out) or `--leakage report` (keep and report them); the same can be set as `leakage: {mode: drop}` in task.yaml.",
            )
        if mode == "drop":
            leaked = {p.holdout_id for p in ds.leaks}
            splits["holdout"] = [e for e in splits["holdout"] if e.id not in leaked]
            ds.dropped = sorted(leaked)
            ds.warnings.append(
                f"dropped {len(leaked)} hold-out example(s) that duplicate train/dev inputs"
            )
        else:
            ds.warnings.append(
                f"{len(ds.leaks)} hold-out example(s) duplicate train/dev inputs (kept: leakage mode 'report')"
            )
    ds.skipped = skipped
    if skipped:
        conflicts = sum(s.endswith("dropped") for s in skipped)
        ds.warnings.append(
            f"{len(skipped)} duplicate input row(s) not used ({conflicts} with a different output, "
            f"dropped; {len(skipped) - conflicts} merged): {'; '.join(skipped[:3])}"
            + ("; ..." if len(skipped) > 3 else "")
        )
    ds.warnings.extend(label_warnings(task, splits))
    return ds


def label_warnings(task: Task, splits: dict[str, list[Example]]) -> list[str]:
    """Degenerate label distributions: one label only, a label only in the hold-out, or absent."""
    if not task.labels:
        return []
    seen = {name: {str(e.output) for e in exs} for name, exs in splits.items()}
    every = set().union(*seen.values())
    out = []
    if len(every) == 1:
        out.append(
            f"every example has the label {next(iter(every))!r}: accuracy cannot tell a model from a constant"
        )
    only = sorted(seen["holdout"] - seen["train"] - seen["dev"])
    if only:
        out.append(f"label(s) {', '.join(only)} occur only in the hold-out: no rung has seen them")
    missing = [lab for lab in task.labels if lab not in every]
    if missing:
        out.append(f"label(s) {', '.join(missing)} have no example in the data")
    return out
