"""One registry for every pluggable piece: engines, rungs, metrics, kinds and models.

Built-ins register exactly the way a third-party plugin does. A plugin is a Python entry point in
the group ``ladder.plugins`` whose object is a callable ``register(registries)``; it may call
``registries.rungs.register(...)`` and friends. Registries refuse duplicate and malformed names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ladder.errors import LadderError

T = TypeVar("T")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._:/-]{0,79}$")


@dataclass
class Registry(Generic[T]):
    """Named objects of one kind, in registration order."""

    kind: str
    _items: dict[str, T] = field(default_factory=dict)

    def register(self, name: str, obj: T, *, replace: bool = False) -> T:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"bad {self.kind} name {name!r}: use lower-case letters, digits and . _ - : /"
            )
        if name in self._items and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise LadderError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._items), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(self._items) or "none"
        return f"Unknown {self.kind} {name!r}.{hint} Registered: {known}."

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self):
        return self._items.items()

    def names(self) -> list[str]:
        return list(self._items)


@dataclass
class Registries:
    engines: Registry = field(default_factory=lambda: Registry("engine"))
    rungs: Registry = field(default_factory=lambda: Registry("rung"))
    metrics: Registry = field(default_factory=lambda: Registry("metric"))
    kinds: Registry = field(default_factory=lambda: Registry("task kind"))
    models: Registry = field(default_factory=lambda: Registry("model"))


_REGISTRIES: Registries | None = None
_PLUGIN_ERRORS: list[str] = []


def registries() -> Registries:
    """The process-wide registries, with built-ins and installed plugins loaded once."""
    global _REGISTRIES
    if _REGISTRIES is None:
        regs = Registries()
        from ladder import builtins

        builtins.register(regs)
        _load_plugins(regs)
        _REGISTRIES = regs
    return _REGISTRIES


def _load_plugins(regs: Registries) -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group="ladder.plugins"):
        try:
            hook: Callable[[Registries], None] = ep.load()
            hook(regs)
        except Exception as exc:  # a broken plugin must not break Ladder
            _PLUGIN_ERRORS.append(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}")


def plugin_errors() -> list[str]:
    return list(_PLUGIN_ERRORS)
