"""Terminal rendering: rich progress bars for long work and the scorecard table."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class _Handle:
    def __init__(self, progress: Progress, task_id):
        self.p, self.id = progress, task_id

    def advance(self, n: float = 1) -> None:
        self.p.advance(self.id, n)

    def update(self, *, description=None, total=None, info=None) -> None:
        kw: dict[str, Any] = {}
        if description is not None:
            kw["description"] = description
        if total is not None:
            kw["total"] = total
        if info is not None:
            kw["info"] = info
        self.p.update(self.id, **kw)


class RichProgress:
    """The `Progress` protocol on a rich live display; bars vanish when their work is done."""

    def __init__(self, out: Console | None = None):
        self.console = out or console
        self.p = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", style="bold"),
            BarColumn(bar_width=28),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}", style="dim"),
            console=self.console,
            transient=True,
        )

    def __enter__(self):
        self.p.start()
        return self

    def __exit__(self, *exc):
        self.p.stop()
        return False

    @contextmanager
    def task(self, description: str, total: float | None = None):
        tid = self.p.add_task(description, total=total, info="")
        try:
            yield _Handle(self.p, tid)
        finally:
            self.p.remove_task(tid)

    def log(self, message: str) -> None:
        self.console.print(message)


def fmt_metric(card: Any, name: str, ci: bool = True) -> str:
    m = card.metrics.get(name)
    if m is None:
        return "-"
    return f"{m.value:.2f} [{m.ci_low:.2f},{m.ci_high:.2f}]" if ci else f"{m.value:.2f}"


def scorecard_table(cards: list[Any], bar: Any = None) -> Table:
    """One row per rung: the bar's metric with its 95% CI, the other metrics, validity,
    consistency, latency, tokens per call (and $ per 1k calls once economics has priced it)."""
    first = bar.metric if bar is not None else (cards[0].primary_metric if cards else "")
    others: list[str] = []
    for c in cards:
        for m in c.metrics:
            if m not in others and m not in (first, "validity"):
                others.append(m)
    t = Table(show_edge=False, header_style="bold", pad_edge=False, box=None)
    t.add_column("rung", no_wrap=True)
    t.add_column("variant", style="dim", overflow="fold", max_width=22)
    t.add_column(f"{first} [95% CI]", justify="right", no_wrap=True)
    for m in others:
        t.add_column(m.replace("_", "-"), justify="right", no_wrap=True)
    for col in ("valid", "consist", "p50/p95 ms", "tok in/out"):
        t.add_column(col, justify="right", no_wrap=True)
    show_cost = any(c.cost for c in cards)
    if show_cost:
        t.add_column("$/1k calls", justify="right", no_wrap=True)
    for c in cards:
        row = [
            c.rung,
            c.variant,
            fmt_metric(c, first),
            *(fmt_metric(c, m, ci=False) for m in others),
        ]
        row += [
            f"{c.validity:.2f}",
            "-" if c.consistency is None else f"{c.consistency:.2f}",
            f"{_num(c.latency_ms.get('p50'))}/{_num(c.latency_ms.get('p95'))}",
            f"{c.tokens_in:.0f}/{c.tokens_out:.0f}",
        ]
        if show_cost:
            per_1k = (c.cost or {}).get("per_1k_calls")
            row.append("-" if per_1k is None else f"{per_1k:.4f}")
        t.add_row(*row)
    return t


def print_wide(renderable) -> None:
    """Tables at full width: a terminal gets its own width, a file or CI log 140 columns."""
    out = console if console.is_terminal else Console(width=140, file=console.file)
    out.print(renderable)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"
