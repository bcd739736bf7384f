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
            help="a CSV, TSV, JSONL, JSON or Parquet file, a Hugging Face dataset folder, or a promptfooconfig.yaml"
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
        str | None,
        typer.Option(
            "--kind", help="classify | extract | qa (default: guessed; qa with --documents)"
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="task name (default: the dataset or folder name)")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split", help="the dataset's split to read (default: its only one, or train)"
        ),
    ] = None,
    label_names: Annotated[
        str | None,
        typer.Option("--label-names", help="names of integer class ids 0,1,2,...: a,b,c"),
    ] = None,
    documents: Annotated[
        Path | None,
        typer.Option(
            "--documents", help="folder of documents the questions are answered from (qa)"
        ),
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
    from ladder.starter_text import column_lines
    from ladder.task import load_task

    names = [n.strip() for n in label_names.split(",")] if label_names else None
    if names is not None and (len(set(names)) != len(names) or not all(names)):
        raise typer.BadParameter(
            "give distinct, non-empty names: a,b,c", param_hint="--label-names"
        )
    imported = None
    if is_promptfoo_config(data):
        task_file, st, imported = write_task(data, out, name, force)
    else:
        task_file, st = write_starter(
            data,
            out,
            force=force,
            inputs=input,
            output=label,
            id=id,
            kind=kind,
            name=name,
            split=split,
            label_names=names,
            documents=documents,
        )
    task = load_task(task_file)
    ds = load_dataset(task, leakage="report")
    c = ds.counts()
    what = {
        "classify": f"{len(st.labels)} labels",
        "extract": "schema.json inferred",
        "qa": f"documents {st.documents} · gold evidence {', '.join(st.meta or []) or 'none found'}",
    }[st.kind]
    console.print(f"Wrote [bold]{task_file}[/]: {st.kind} · {what} · {len(ds.examples)} examples")
    console.print(
        f"  input {', '.join(st.inputs)} · output {st.output} · id {st.id or '(hash of the input)'}"
    )
    used = {*st.inputs, st.output, st.id, *(st.meta or [])}
    for line in column_lines(st.texts or {}, used):
        console.print(f"  text column {line}", highlight=False)
    left = [c for c in st.texts or {} if c not in used and c != st.id]
    if left:
        more = " ".join(f"--input {c}" for c in [*st.inputs, *left])
        console.print(f"  left out {', '.join(left)}: add with `{more}`", highlight=False)
    if st.split:
        console.print(f"  read the dataset's split {st.split!r}", highlight=False)
    d = st.dropped or {}
    if d.get("duplicate"):
        console.print(
            f"  dropped {d['duplicate']} duplicate input(s) ({d['conflicting']} with a different answer): "
            f"{st.rows + d['duplicate']} rows read, {st.rows} kept",
            highlight=False,
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
