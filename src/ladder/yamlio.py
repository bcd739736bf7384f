"""YAML reading that remembers where things are, so errors can name the line (and the fix)."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ladder.errors import LadderError


def read_text(path: Path, what: str = "file", error: type[LadderError] = LadderError) -> str:
    """Read a UTF-8 text file, turning OS and encoding problems into clear errors."""
    if not path.exists():
        raise error(
            f"{what} not found.",
            where=path,
            fix="check the path (relative paths are resolved from the task folder).",
        )
    if path.is_dir():
        raise error(f"expected a {what}, found a folder.", where=path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}.", where=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}).",
            where=path,
            fix="re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in > out`).",
        ) from None


def load_yaml(path: Path, error: type[LadderError] = LadderError) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; return (data, node tree for line lookups). Duplicate keys are errors."""
    text = read_text(path, "YAML file", error)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise error(
            f"{line}invalid YAML ({exc.problem}).",
            where=path,
            fix="check indentation and quoting around that line.",
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}.", where=path) from None
    dup = _duplicate_key(node)
    if dup:
        key, first, again = dup
        raise error(
            f"line {again}: key `{key}` appears twice (first on line {first}); YAML would silently keep only the last.",
            where=path,
            fix="merge the two into one.",
        )
    return data, node


def _duplicate_key(node: yaml.Node | None) -> tuple[str, int, int] | None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            k = str(key.value)
            if k in seen:
                return k, seen[k], key.start_mark.line + 1
            seen[k] = key.start_mark.line + 1
            found = _duplicate_key(value)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item)
            if found:
                return found
    return None


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the value at `loc` (keys and list indices), or of the closest parent."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    # unknown-key errors point at the key itself
                    best = key.start_mark.line + 1
                    node = value
                    break
            else:
                return best
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            return best
    return best


def explain(exc: ValidationError, node, model: type[BaseModel], prefix: tuple = ()) -> str:
    """Turn pydantic errors into sentences naming the YAML line, the field and the fix: one
    wording for every YAML file (task.yaml, price books)."""
    parts = []
    for err in exc.errors()[:5]:
        loc = prefix + tuple(err["loc"])
        line = line_of(node, loc)
        at = f"line {line}, " if line else ""
        field = ".".join(str(p) for p in loc) or "(top)"
        if err["type"] == "extra_forbidden":
            known = _known_keys(model, err["loc"][:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            parts.append(f"{at}unknown key `{field}`; {hint}known keys here: {', '.join(known)}.")
        elif err["type"] == "missing":
            parts.append(f"{at}required field `{field}` is missing; add it.")
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
            parts.append(f"{at}field `{field}`: {err['msg']} (got {shown}).")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"...and {more} more.")
    return " ".join(parts)


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    cur: Any = model
    for part in loc:
        field = getattr(cur, "model_fields", {}).get(part)
        if field is None:
            # dict[str, Model] values
            return []
        ann = field.annotation
        cur = _model_in(ann)
        if cur is None:
            return []
    return list(getattr(cur, "model_fields", {}))


def _model_in(ann) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
