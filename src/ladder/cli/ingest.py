"""`ladder ingest`: index a task's documents for the retrieval rungs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ladder.cli.render import RichProgress, console


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)


def ingest_cmd(
    task: Annotated[Path, typer.Argument(help="task folder (with task.yaml) or the YAML file")],
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="re-read and re-embed every document (new embedding model)"),
    ] = False,
    runs: Annotated[
        str | None,
        typer.Option(
            "--runs", help="run store folder holding the index (default ./runs or $LADDER_RUNS)"
        ),
    ] = None,
) -> None:
    """Index the task's documents for rag; only new or changed files are re-embedded.

    After editing documents, run it and the next climb or eval answers from the new text, with no retraining (a climb also ingests before its rag rung).
    """
    from ladder.dataset import load_examples
    from ladder.retrieval import evidence
    from ladder.retrieval.ingest import ingest, open_index, settings_for
    from ladder.store.db import default_runs_dir
    from ladder.task import load_task

    t = load_task(task)
    settings = settings_for(t)
    from ladder.retrieval.embed import Embedder

    store = open_index(t, runs or default_runs_dir(), settings)
    try:
        with RichProgress() as progress:
            report = ingest(t, store, Embedder(), settings, progress, rebuild=rebuild)
        docs, meta = store.documents(), store.meta()
    finally:
        store.close()
    console.print(f"[bold]Index[/]     {report.location}  ({meta['embedder']}, {meta['dim']} dims)")
    skipped = (
        f"   (skipped, unsupported type: {', '.join(report.skipped)})" if report.skipped else ""
    )
    console.print(
        f"[bold]Documents[/] {len(docs)}: {len(report.added)} added · {len(report.changed)} changed"
        f" · {len(report.unchanged)} unchanged · {len(report.removed)} removed{skipped}"
    )
    console.print(
        f"[bold]Chunks[/]    {report.chunks} in the index · {report.embedded} embedded now"
        f" · {report.seconds:.1f} s"
    )
    examples, path, _ = load_examples(t)
    if evidence.has_evidence(examples):
        evidence.resolve_evidence(t, examples, set(docs), path)
        cited = {d for e in examples for d in evidence.gold_docs(e)}
        asking = sum(bool(evidence.gold_docs(e)) for e in examples)
        console.print(
            f"[bold]Evidence[/]  {asking} questions cite {len(cited)} documents: all found"
        )
