"""`ladder export`: a run as artifacts other tools read (`promptfoo`: an eval config;
`dataset`: its training data in the formats fine-tuning tools read)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from ladder.cli.render import console

export_app = typer.Typer(help="Write a run as artifacts other tools read.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


@export_app.command("promptfoo")
def promptfoo_cmd(
    run: Annotated[str, typer.Argument(help="run id (see `ladder runs`)")],
    out: Annotated[Path, typer.Option("--out", help="file to write")] = Path(
        "promptfooconfig.yaml"
    ),
    base_url: Annotated[
        str, typer.Option("--base-url", help="the gateway's OpenAI-compatible URL")
    ] = "http://127.0.0.1:8000/v1",
    key_env: Annotated[
        str, typer.Option("--key-env", help="environment variable holding the gateway key")
    ] = "LADDER_API_KEY",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="first N items")] = None,
    runs: Annotated[str | None, typer.Option("--runs", help="run store folder")] = None,
) -> None:
    """A promptfooconfig.yaml: the gateway's model for the task, tested on the run's hold-out."""
    from ladder.promptfoo import export_config, header
    from ladder.report.build import load_view
    from ladder.store.db import Store

    view = load_view(Store(runs), run)
    config = export_config(view, base_url, key_env, limit)
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
    out.write_text(header(run, base_url, key_env) + text, encoding="utf-8")
    console.print(
        f"Wrote [bold]{out}[/]: {len(config['tests'])} hold-out tests of "
        f"{config['providers'][0]['id']} at {base_url}. Run: `promptfoo eval -c {out}`",
        highlight=False,
        soft_wrap=True,
    )


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
    from ladder.climb import ClimbOptions, _load_data
    from ladder.store.db import Store
    from ladder.task import load_task
    from ladder.trainsets import check_format, export_run

    check_format(format)
    store = Store(runs)
    run = store.get_run(run_id)
    folder = out or Path(run["run_dir"]) / "dataset"
    task = load_task(run["task_path"])
    opts = ClimbOptions(run_id=run["id"], leakage="report")  # the run's --add-data files too
    res = export_run(run, task, _load_data(store, task, opts), folder, format)
    parts = " · ".join(f"{s} {n} ({name})" for s, (name, n) in res["files"].items())
    console.print(f"Wrote [bold]{folder}[/]: {parts}", highlight=False)
    console.print(
        f"  left out: the hold-out ({res['holdout']}) and {res['left_out']} train/dev example(s) "
        f"overlapping it · card {res['card']}",
        highlight=False,
    )
