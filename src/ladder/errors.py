"""Errors a user can act on.

Every error Ladder raises on bad input is a `LadderError`: one paragraph that names the file,
line/row or field, says what is wrong and how to fix it. The CLI prints it and exits with code 2;
it never shows a traceback for these.
"""

from __future__ import annotations

from pathlib import Path


class LadderError(Exception):
    """A problem the user can fix; `str(err)` is the whole message."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | Path | None = None, fix: str | None = None):
        self.where = str(where) if where is not None else None
        self.fix = fix
        parts = []
        if self.where:
            parts.append(f"{self.where}: ")
        parts.append(message.rstrip())
        if fix:
            parts.append(f" Fix: {fix.rstrip()}")
        super().__init__("".join(parts))


class TaskError(LadderError):
    """task.yaml is missing, malformed or inconsistent."""


class DataError(LadderError):
    """A data file cannot be read or contains rows Ladder cannot use."""


class ModelError(LadderError):
    """A model name is unknown, or a model cannot be prepared or loaded."""


class EngineError(LadderError):
    """An engine failed to serve a request (unreachable endpoint, bad response)."""


class StoreError(LadderError):
    """The run store cannot be opened, or a run cannot be found or resumed."""


class MissingExtra(LadderError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed.",
            fix=f"pip install 'ladder-llm[{extra}]' (or, in this repository, `make install`).",
        )


def require(module: str, extra: str, purpose: str):
    """Import an optional module or raise `MissingExtra` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtra(module.split(".")[0], extra, purpose) from exc
