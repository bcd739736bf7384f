"""`ladder export dataset RUN`: a run's training data in the formats fine-tuning tools read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ladder.cli.render import console

export_app = typer.Typer(
    help="Write a run's artifacts in other tools' formats.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


@export_app.command("dataset")
def dataset_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (see `ladder runs`)")],
    out: Annotated[
        Path | None, typer.Option("--out", help="folder to write (default: RUN_DIR/dataset)")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="ladder | messages | prompt-completion")
    ] = "messages",
    runs: Annotated[str | None, typer.Option("--runs", help="run store folder")] = None,
) -> None:
    """Write RUN's train and dev splits (never its hold-out) and a dataset card README.md."""
    from ladder.store.db import Store
    from ladder.trainsets import check_format, export_run

    check_format(format)
    store = Store(runs)
    folder = out or Path(store.get_run(run_id)["run_dir"]) / "dataset"
    res = export_run(store, run_id, folder, format)
    parts = " · ".join(f"{s} {n} ({name})" for s, (name, n) in res["files"].items())
    console.print(f"Wrote [bold]{folder}[/]: {parts}", highlight=False)
    console.print(
        f"  left out: the hold-out ({res['holdout']}) and {res['left_out']} train/dev example(s) "
        f"overlapping it · card {res['card']}",
        highlight=False,
    )
