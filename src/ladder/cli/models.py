"""`ladder models`: what models Ladder knows, and preparing the embedded one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ladder.cli.render import RichProgress, console
from ladder.errors import ModelError


def register(app: typer.Typer) -> None:
    app.command("models")(models_cmd)


def models_cmd(
    action: Annotated[str, typer.Argument(help="list | prepare | verify")] = "list",
    name: Annotated[
        str, typer.Option("--name", help="model to prepare or verify")
    ] = "gemma-3-270m",
) -> None:
    """List registered models; `prepare` converts the embedded model once; `verify` re-checks its checksum."""
    from ladder.engines import gguf as models
    from ladder.registry import registries

    if action == "list":
        t = Table(show_edge=False, header_style="bold")
        for col in ("model", "engine", "status", "description"):
            t.add_column(col)
        for mname, entry in registries().models.items():
            ready = entry.is_prepared() if entry.is_prepared else True
            status = "ready" if ready else "not prepared (`ladder models prepare`)"
            t.add_row(mname, entry.spec.engine, status, entry.description)
        t.add_row(
            "openai:<model>",
            "openai",
            "-",
            "any OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY)",
        )
        t.add_row("hf:<folder>", "hf", "-", "a local transformers model folder")
        console.print(t)
        return
    entry = registries().models.get(name)
    if action == "prepare":
        if entry.prepare is None:
            console.print(f"{name} needs no preparation.")
        else:
            with RichProgress() as progress:
                path = entry.prepare(progress)
            console.print(f"{name} ready at {path}")
        if getattr(registries().engines.get(entry.spec.engine), "takes_dtype", False):
            measure_numerics()
    elif action == "verify":
        if name != models.EMBEDDED:
            raise ModelError(
                f"only the embedded model ({models.EMBEDDED}) carries a checksum to verify."
            )
        with RichProgress() as progress:
            ok, msg = models.verify_embedded(progress)
        console.print(f"{name}: {msg}")
        if not ok:
            raise typer.Exit(1)
    else:
        raise typer.BadParameter("use list, prepare or verify", param_hint="ACTION")


def measure_numerics() -> None:
    """Measure fp32 against bf16 on this machine again (cached for `--dtype auto`) and say so."""
    from ladder.engines import numerics as nx

    with RichProgress() as progress, progress.task("measuring fp32 vs bf16", total=None):
        found = nx.probe("cpu", refresh=True)
    chosen = nx.choose("cpu", "auto", found)
    load = f", load {found['load']}" if found.get("load") is not None else ""
    console.print(
        f"number formats on this CPU (measured in {found['seconds']:.1f} s{load}; "
        f"{nx.cache_dir() / (found['key'] + '.json')}):",
        highlight=False,
    )
    for phase in nx.PHASES:
        console.print(f"  {phase:<9} {chosen.reasons[phase]}", highlight=False)
