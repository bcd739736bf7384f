"""One registry for every pluggable piece: engines, rungs, metrics, kinds and models.

Built-ins register exactly the way a third-party plugin does: through an entry point in the
group ``ladder.plugins`` (pyproject.toml) whose object is a callable ``register(registries)``; it
may call ``registries.rungs.register(...)`` and friends. Registries refuse duplicate and
malformed names. A rung declares its `family` (prompt / retrieve / fine-tune / other), which the
economics and the gates ask instead of matching rung names. `ladder plugins` lists what loaded.
"""

from __future__ import annotations

import difflib
import importlib
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


FAMILIES = ("prompt", "retrieve", "fine-tune", "other")  # what a rung is, for economics and gates
BUILTINS = "ladder.builtins:register"


@dataclass
class PluginRecord:
    """One `ladder.plugins` entry point: where it came from, what it added, or why it failed."""

    name: str
    value: str
    dist: str | None = None
    version: str | None = None
    added: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


class PluginWarning(UserWarning):
    """A plugin failed to load: Ladder runs on without it and says so once."""


_REGISTRIES: Registries | None = None
_PLUGINS: list[PluginRecord] = []


def registries() -> Registries:
    """The process-wide registries: every `ladder.plugins` entry point, built-ins first."""
    global _REGISTRIES
    if _REGISTRIES is None:
        regs = Registries()
        _PLUGINS.clear()
        _PLUGINS.extend(_load_plugins(regs))
        _REGISTRIES = regs
        _warn_failures(_PLUGINS)
    return _REGISTRIES


def _names(regs: Registries) -> dict[str, set[str]]:
    return {k: set(getattr(regs, k)) for k in ("engines", "rungs", "metrics", "kinds", "models")}


def _entry_points() -> list:
    from importlib.metadata import entry_points

    return list(entry_points(group="ladder.plugins"))


def _load_plugins(regs: Registries) -> list[PluginRecord]:
    """Built-ins through their own entry point (pyproject.toml), then the others by name.

    A source tree that was never installed has no entry points: its built-ins register directly.
    A failing built-in is a bug and raises; a failing plugin is recorded, its partial
    registrations are undone, and Ladder runs on without it.
    """
    eps = _entry_points()
    ours = [ep for ep in eps if ep.value == BUILTINS][:1]
    others = sorted((ep for ep in eps if ep.value != BUILTINS), key=lambda ep: ep.name)
    records = []
    if not ours:  # by name, so that this module imports nothing it registers
        module, _, attr = BUILTINS.partition(":")
        ours_hook = getattr(importlib.import_module(module), attr)
        records.append(
            _apply(regs, PluginRecord("builtins", BUILTINS, "ladder (source tree)"), ours_hook)
        )
    for ep in [*ours, *others]:
        dist = getattr(ep, "dist", None)
        rec = PluginRecord(
            ep.name,
            ep.value,
            getattr(dist, "name", None) if dist else None,
            getattr(dist, "version", None) if dist else None,
        )
        if ep.value == BUILTINS:
            records.append(_apply(regs, rec, ep.load()))
            continue
        try:
            hook: Callable[[Registries], None] = ep.load()
        except Exception as exc:  # a broken plugin must not break Ladder
            rec.error = f"{type(exc).__name__}: {exc}"
            records.append(rec)
            continue
        records.append(_apply(regs, rec, hook, guard=True))
    return records


def _apply(regs: Registries, rec: PluginRecord, hook, *, guard: bool = False) -> PluginRecord:
    before = _names(regs)
    try:
        hook(regs)
        _check_rungs(regs, before["rungs"])
    except Exception as exc:  # a plugin's bug is its own: undo it, run on
        if not guard:
            raise
        rec.error = f"{type(exc).__name__}: {exc}"
        for kind, names in _names(regs).items():  # undo what it registered before failing
            for n in names - before[kind]:
                getattr(regs, kind)._items.pop(n, None)
        return rec
    rec.added = {k: sorted(v - before[k]) for k, v in _names(regs).items() if v - before[k]}
    return rec


def _check_rungs(regs: Registries, before: set[str]) -> None:
    for name in set(regs.rungs) - before:
        rung = regs.rungs.get(name)
        family = getattr(rung, "family", "other")
        if family not in FAMILIES:
            raise ValueError(
                f"rung {name!r} declares family {family!r}; use one of {', '.join(FAMILIES)}"
            )
        for attr in ("skip_reason", "prepare"):
            if not callable(getattr(rung, attr, None)):
                raise ValueError(
                    f"rung {name!r} has no {attr}() method (see ladder.rungs.base.Rung)"
                )


def _warn_failures(records: list[PluginRecord]) -> None:
    import warnings

    for r in records:
        if r.error:
            where = f" from {r.dist} {r.version}" if r.dist else ""
            warnings.warn(
                PluginWarning(
                    f"plugin {r.name!r} ({r.value}{where}) failed to load and is not available: "
                    f"{r.error}. `ladder plugins` lists what loaded; fix the plugin or uninstall "
                    f"it{f' (pip uninstall {r.dist})' if r.dist else ''}."
                ),
                stacklevel=3,
            )


def plugins() -> list[PluginRecord]:
    """What each `ladder.plugins` entry point registered, or why it failed."""
    registries()
    return list(_PLUGINS)


def plugin_errors() -> list[str]:
    return [
        f"plugin {r.name!r} ({r.value}) failed to load: {r.error}" for r in plugins() if r.error
    ]


def rung_family(name: str) -> str:
    """The family a rung declares (`prompt`, `retrieve`, `fine-tune`, `other`).

    A rung this process does not know (a stored run of an uninstalled plugin) is `other`.
    """
    regs = registries()
    if name not in regs.rungs:
        return "other"
    return getattr(regs.rungs.get(name), "family", "other")
