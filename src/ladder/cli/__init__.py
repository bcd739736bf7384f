"""`ladder`: the command line. One module per command group; help text comes from docstrings."""

from __future__ import annotations

import sys

import click
import typer

from ladder.errors import LadderError

try:  # typer >= 0.22 vendors click: the exceptions its commands raise are not click's
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # pragma: no cover - older typer uses click itself
    _TyperClickException = click.exceptions.ClickException  # type: ignore[misc, assignment]

app = typer.Typer(
    name="ladder",
    help="Prompt it, retrieve for it, or fine-tune for it? Ladder measures every rung on one hold-out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


_registered = False


def _register() -> None:
    global _registered
    if _registered:
        return
    from ladder.cli import (
        climb,
        cost,
        curate,
        export,
        ingest,
        init,
        keys,
        models,
        plugins,
        report,
        runs,
        serve,
        train,
    )

    for module in (
        climb,
        init,
        models,
        runs,
        ingest,
        train,
        cost,
        report,
        serve,
        curate,
        keys,
        export,
        plugins,
    ):
        module.register(app)
    _registered = True


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input ends in one clear paragraph and exit code 2, never a traceback."""
    from ladder.cli.render import err_console

    _register()
    try:
        rc = app(args=argv, standalone_mode=False)
    except LadderError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.ClickException, _TyperClickException) as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        err_console.print(
            "[yellow]interrupted[/]: finished work is stored; `ladder climb TASK --resume` continues."
        )
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
