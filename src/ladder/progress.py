"""Progress reporting without a UI dependency: library code reports, the CLI renders.

Library code calls `progress.task("few-shot dev", total=72)` and `.advance(n)` on the handle;
the CLI passes a rich implementation, tests and library users get the silent default.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Protocol


class TaskHandle(Protocol):
    def advance(self, n: float = 1) -> None: ...
    def update(
        self, *, description: str | None = None, total: float | None = None, info: str | None = None
    ) -> None: ...


class Progress(Protocol):
    def task(
        self, description: str, total: float | None = None
    ): ...  # context manager -> TaskHandle
    def log(self, message: str) -> None: ...


class _NullHandle:
    def advance(self, n: float = 1) -> None:
        pass

    def update(self, *, description=None, total=None, info=None) -> None:
        pass


class NullProgress:
    """Reports nothing; collects log lines so callers can inspect them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @contextmanager
    def task(self, description: str, total: float | None = None):
        yield _NullHandle()

    def log(self, message: str) -> None:
        self.lines.append(message)
