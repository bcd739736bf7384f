"""YAML reading that remembers where things are, so errors can name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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
