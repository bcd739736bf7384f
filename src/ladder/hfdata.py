"""Parquet files and Hugging Face `datasets` folders as rows, one split chosen by name.

Three layouts are read, all with pyarrow only (the `[datasets]` extra):
- `save_to_disk` output: `dataset_dict.json` + one folder per split, each with `state.json`
  (its Arrow files) and `dataset_info.json` (its features); or one such split folder;
- a dataset repository: a README.md card whose YAML header lists `configs: data_files` per
  split and `dataset_info: features`, or files named by split (`data/train-00000-of-00001.parquet`,
  `test.jsonl`, ...);
- a single `.parquet` or `.arrow` file.
Integer ClassLabel columns become their names (from the features in `dataset_info.json`, the
card, or the Parquet/Arrow schema's `huggingface` metadata).
`ladder.dataset.read_table_rows` reads a split's files (tables here, text formats there).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from ladder.errors import DataError

TABLE_SUFFIXES = (".parquet", ".arrow")
FILE_SUFFIXES = (".parquet", ".arrow", ".jsonl", ".json", ".csv", ".tsv")
INSTALL = "pip install 'ladder-llm[datasets]'"


def _arrow(where: Path):
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise DataError(
            "reading Parquet and Hugging Face dataset folders needs pyarrow, which is not installed.",
            where=where,
            fix=f"install the extra: `{INSTALL}`.",
        ) from None
    return pyarrow


def is_table_source(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in TABLE_SUFFIXES


def _card(folder: Path) -> dict[str, Any]:
    card = folder / "README.md"
    if not card.is_file():
        return {}
    m = re.match(r"---\s*\n(.*?)\n---\s*\n", card.read_text(encoding="utf-8"), re.S)
    try:
        head = yaml.safe_load(m.group(1)) if m else {}
    except yaml.YAMLError as exc:
        raise DataError(f"the card's YAML header does not parse: {exc}", where=card) from None
    return head if isinstance(head, dict) else {}


def _class_labels_json(features: Any) -> dict[str, list[str]]:
    """ClassLabel names from `datasets`' features JSON (`{"col": {"_type": "ClassLabel", ...}}`)."""
    if not isinstance(features, dict):
        return {}
    return {
        col: [str(n) for n in f["names"]]
        for col, f in features.items()
        if isinstance(f, dict) and f.get("_type") == "ClassLabel" and f.get("names")
    }


def _class_labels_card(head: dict[str, Any]) -> dict[str, list[str]]:
    """ClassLabel names from a card's `dataset_info: features: [{name, dtype: {class_label}}]`."""
    infos = head.get("dataset_info") or []
    out: dict[str, list[str]] = {}
    for info in infos if isinstance(infos, list) else [infos]:
        for f in (info or {}).get("features") or []:
            names = (
                ((f.get("dtype") or {}) if isinstance(f.get("dtype"), dict) else {})
                .get("class_label", {})
                .get("names")
            )
            if isinstance(names, dict):
                out[f["name"]] = [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
            elif isinstance(names, list):
                out[f["name"]] = [str(n) for n in names]
    return out


def _schema_labels(table) -> dict[str, list[str]]:
    meta = (table.schema.metadata or {}).get(b"huggingface")
    if not meta:
        return {}
    info = json.loads(meta).get("info") or {}
    return _class_labels_json(info.get("features"))


def split_files(folder: Path, split: str | None) -> tuple[str, list[Path], dict[str, list[str]]]:
    """The chosen split's files and the ClassLabel names known from the folder's metadata."""
    if (folder / "dataset_dict.json").is_file():
        splits = json.loads((folder / "dataset_dict.json").read_text()).get("splits") or []
        name = _choose(folder, split, splits)
        return (name, *_saved_split(folder / name))
    if (folder / "state.json").is_file():
        return (split or folder.name, *_saved_split(folder))
    head = _card(folder)
    by_split = _card_data_files(folder, head) or _named_files(folder)
    name = _choose(folder, split, list(by_split))
    return name, by_split[name], _class_labels_card(head)


def _saved_split(folder: Path) -> tuple[list[Path], dict[str, list[str]]]:
    state = json.loads((folder / "state.json").read_text())
    files = [folder / f["filename"] for f in state.get("_data_files", [])]
    info = folder / "dataset_info.json"
    feats = json.loads(info.read_text()).get("features") if info.is_file() else None
    return files, _class_labels_json(feats)


def _card_data_files(folder: Path, head: dict[str, Any]) -> dict[str, list[Path]]:
    configs = head.get("configs") or []
    config = next((c for c in configs if c.get("default")), configs[0] if configs else None)
    out: dict[str, list[Path]] = {}
    for entry in (config or {}).get("data_files") or []:
        if not isinstance(entry, dict) or "split" not in entry:
            continue
        globs = entry.get("path")
        for g in [globs] if isinstance(globs, str) else globs or []:
            out.setdefault(str(entry["split"]), []).extend(sorted(folder.glob(g)))
    return {k: v for k, v in out.items() if v}


def _named_files(folder: Path) -> dict[str, list[Path]]:
    """Files named by split: `train.csv`, `data/test-00000-of-00001.parquet`, ..."""
    out: dict[str, list[Path]] = {}
    for f in sorted(folder.rglob("*")):
        hidden = any(p.startswith(".") for p in f.relative_to(folder).parts)  # .cache/, .git/
        if f.is_file() and f.suffix.lower() in FILE_SUFFIXES and not hidden:
            split = re.split(r"[-_.]", f.name, maxsplit=1)[0]
            out.setdefault(split, []).append(f)
    return out


def _choose(folder: Path, split: str | None, splits: list[str]) -> str:
    if not splits:
        raise DataError(
            "no data files found (Parquet, Arrow, JSONL, JSON, CSV or TSV).",
            where=folder,
            fix="point at a `save_to_disk` folder, a dataset repository, or a data file.",
        )
    if split is None and len(splits) == 1:
        return splits[0]
    if split is None and "train" in splits:
        return "train"
    if split in splits:
        return split
    given = f"no split {split!r}" if split else "several splits and none is `train`"
    raise DataError(
        f"{given}; the dataset has: {', '.join(splits)}.",
        where=folder,
        fix="choose one with `--split NAME` (or `data.split` in task.yaml).",
    )


def read_table(f: Path) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    pa = _arrow(f)
    try:
        if f.suffix.lower() == ".parquet":
            table = pa.parquet.read_table(f)
        else:
            with pa.memory_map(str(f)) as src:
                try:
                    table = pa.ipc.open_stream(src).read_all()  # what save_to_disk writes
                except pa.ArrowInvalid:
                    table = pa.ipc.open_file(src).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read it as {f.suffix[1:]}: {exc}", where=f) from None
    return table.to_pylist(), _schema_labels(table)


def name_labels(row: dict[str, Any], labels: dict[str, list[str]], where: Path) -> dict[str, Any]:
    """Integer class ids -> their names (an id of -1, `datasets`' "no label", stays None)."""
    for col, names in labels.items():
        v = row.get(col)
        if isinstance(v, int) and not isinstance(v, bool):
            if v == -1:
                row[col] = None
            elif 0 <= v < len(names):
                row[col] = names[v]
            else:
                raise DataError(
                    f"column {col!r} holds class id {v}, but the features name only {len(names)} classes.",
                    where=where,
                )
    return row


def digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()
