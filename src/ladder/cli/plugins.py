"""`ladder plugins`: every `ladder.plugins` entry point, where it came from, what it registered."""

from __future__ import annotations

import typer
from rich.table import Table

from ladder.cli.render import console, print_wide


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins_cmd)


def plugins_cmd() -> None:
    """List the plugins that loaded (built-ins included) and what they registered; exit 1 if one failed."""
    import warnings

    from ladder.registry import PluginWarning, plugins, rung_family

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # the table says it, once
        records = plugins()
    table = Table(title="ladder.plugins")
    for col in ("plugin", "from", "registered", "status"):
        table.add_column(col, overflow="fold")
    for r in records:
        where = f"{r.dist} {r.version or ''}".strip() if r.dist else "?"
        parts = []
        for kind, names in r.added.items():
            if kind == "rungs":
                names = [f"{n} ({rung_family(n)})" for n in names]
            shown = ", ".join(names[:8]) + (f" +{len(names) - 8}" if len(names) > 8 else "")
            parts.append(f"{kind}: {shown}")
        status = f"[red]failed[/]: {r.error}" if r.error else "[green]loaded[/]"
        table.add_row(f"{r.name}\n{r.value}", where, "\n".join(parts) or "-", status)
    print_wide(table)
    failed = [r for r in records if r.error]
    if failed:
        console.print(
            f"{len(failed)} plugin(s) failed to load; Ladder runs without them. Fix the plugin or "
            "uninstall it (pip uninstall DIST)."
        )
        raise typer.Exit(1)
