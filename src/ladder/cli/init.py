"""`ladder init`: a starter task.yaml for a data file, and a look at its split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ladder.cli.render import console


def register(app: typer.Typer) -> None:
    app.command("init")(init_cmd)


def init_cmd(
    data: Annotated[
        Path,
        typer.Argument(
            help="a CSV, TSV, JSONL or JSON file of examples, or a promptfooconfig.yaml"
        ),
    ],
    input: Annotated[
        list[str] | None, typer.Option("--input", help="input column (repeat for several)")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", "--output", help="column with the answer")
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="column with a unique id")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="classify | extract (default: guessed)")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="task name (default: the file name)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="task folder to write (default: ./NAME)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing task.yaml")] = False,
) -> None:
    """Write a starter task.yaml for DATA (guessing columns and kind), then show its split."""
    from ladder.dataset import load_dataset
    from ladder.promptfoo_init import is_promptfoo_config, write_task
    from ladder.starter import write_starter
    from ladder.task import load_task

    imported = None
    if is_promptfoo_config(data):
        task_file, st, imported = write_task(data, out, name, force)
    else:
        task_file, st = write_starter(
            data, out, force=force, inputs=input, output=label, id=id, kind=kind, name=name
        )
    task = load_task(task_file)
    ds = load_dataset(task, leakage="report")
    c = ds.counts()
    what = f"{len(st.labels)} labels" if st.kind == "classify" else "schema.json inferred"
    console.print(f"Wrote [bold]{task_file}[/]: {st.kind} · {what} · {len(ds.examples)} examples")
    console.print(
        f"  input {', '.join(st.inputs)} · output {st.output} · id {st.id or '(hash of the input)'}"
    )
    console.print(f"  split train {c['train']} · dev {c['dev']} · holdout {c['holdout']}")
    if st.kind == "classify":
        small = [lab for lab in st.labels if st.counts[lab] < 5]
        if small:
            console.print(
                f"  [yellow]{len(small)} label(s) have fewer than 5 examples[/]: {', '.join(small[:8])}"
            )
    if ds.leaks:
        console.print(
            f"  [yellow]{len(ds.leaks)} hold-out input(s) duplicate train/dev[/]: climb will refuse until you dedupe, or set `leakage: {{mode: drop}}`."
        )
    if imported is not None:
        console.print(
            f"  from promptfoo: {len(imported.rows)} tests, {len(imported.templates)} prompt(s) "
            "as zero-shot variants " + ", ".join(imported.templates)
        )
        for n in imported.notes:
            console.print(f"  [yellow]{n}[/]")
    for w in ds.warnings:
        if "duplicate" not in w:
            console.print(f"  [yellow]{w}[/]")
    console.print(
        f"Next: edit instructions, bar and volume, then `ladder climb {task_file.parent}`"
    )
