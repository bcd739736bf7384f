"""`ladder keys`: API keys for the gateway, stored hashed; a key is shown once, when created."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ladder.cli.render import console, print_wide
from ladder.errors import LadderError

DbOpt = Annotated[
    str | None, typer.Option("--db", help="postgresql:// URL (default: the run store, SQLite)")
]
RunsOpt = Annotated[
    str | None, typer.Option("--runs", help="run store folder (default ./runs or $LADDER_RUNS)")
]


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="API keys for `ladder serve` (stored hashed).", no_args_is_help=True)
    keys.command("create")(create)
    keys.command("list")(list_keys)
    keys.command("revoke")(revoke)
    app.add_typer(keys, name="keys")


def _db(db: str | None, runs: str | None):
    from ladder.serve.logs import open_db

    return open_db(db, runs)


def create(
    name: Annotated[str, typer.Argument(help="who or what the key is for")],
    db: DbOpt = None,
    runs: RunsOpt = None,
) -> None:
    """Create a key and print it once (only its SHA-256 is stored)."""
    store = _db(db, runs)
    kid, key = store.create_key(name)
    store.close()
    console.print(f"Created {kid} for {name!r}. The key (shown only now):", highlight=False)
    print(key)


def list_keys(db: DbOpt = None, runs: RunsOpt = None) -> None:
    """List keys: id, name, first characters, created, revoked."""
    store = _db(db, runs)
    rows = store.list_keys()
    store.close()
    if not rows:
        console.print("No keys yet. Create one with `ladder keys create NAME`.")
        return
    t = Table(show_edge=False, header_style="bold")
    for col in ("id", "name", "key", "created", "revoked"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["id"], r["name"], r["prefix"] + "…", r["created_at"], r["revoked_at"] or "-")
    print_wide(t)


def revoke(
    key: Annotated[str, typer.Argument(help="the key's id or name")],
    db: DbOpt = None,
    runs: RunsOpt = None,
) -> None:
    """Revoke a key by id or name (a running gateway stops accepting it within seconds)."""
    store = _db(db, runs)
    n = store.revoke_key(key)
    store.close()
    if not n:
        raise LadderError(f"no active key with id or name {key!r}.", fix="see `ladder keys list`.")
    console.print(f"Revoked {n} key(s).")
