"""`ladder train`: fine-tune an adapter (lora or distill) and score it on the hold-out."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ladder.cli.climb import DtypeOpt, LimitOpt, RunsOpt, TaskArg, _run
from ladder.climb import ClimbOptions
from ladder.errors import LadderError


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)


def train_cmd(
    task: TaskArg,
    rung: Annotated[str, typer.Option("--rung", help="lora | distill")] = "lora",
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="training epochs")] = None,
    lr: Annotated[float | None, typer.Option("--lr", min=0.0, help="peak learning rate")] = None,
    r: Annotated[int | None, typer.Option("--r", min=1, help="LoRA rank")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    max_examples: Annotated[
        int | None, typer.Option("--max-examples", min=1, help="train on the first N only")
    ] = None,
    max_input_chars: Annotated[
        int | None, typer.Option("--max-input-chars", min=50, help="cut inputs to this length")
    ] = None,
    quantize: Annotated[
        str | None, typer.Option("--quantize", help="4bit = QLoRA (needs CUDA + bitsandbytes)")
    ] = None,
    merge: Annotated[
        bool | None, typer.Option("--merge", help="also write a merged model and re-evaluate it")
    ] = None,
    curve: Annotated[
        bool | None,
        typer.Option("--curve/--no-curve", help="data-sufficiency curve (1/4 and 1/2 of train)"),
    ] = None,
    teacher: Annotated[
        str | None, typer.Option("--teacher", help="distill: a rung, adapter folder or model")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="base model to adapt")] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            help="train data-parallel on N processes (gloo on CPU, NCCL on N GPUs); "
            "the effective batch grows N-fold",
        ),
    ] = None,
    limit: LimitOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the task's latest unfinished run")
    ] = False,
    run_id: Annotated[str | None, typer.Option("--run", help="resume this run id")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    runs: RunsOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """Train a LoRA adapter (or a distilled student) on the task and score it on the hold-out.

    Checkpoints after every epoch: a killed `ladder train` continues with `--resume`.
    `--processes N` runs the same loop on N ranks (one per GPU where there are GPUs).
    """
    if rung not in ("lora", "distill"):
        raise LadderError(f"--rung {rung!r}: use lora or distill.")
    if quantize not in (None, "none", "4bit"):
        raise LadderError(f"--quantize {quantize!r}: use 4bit (QLoRA, on CUDA) or none.")
    if teacher is not None and rung != "distill":
        raise LadderError("--teacher needs --rung distill.")
    given: dict[str, Any] = {
        "epochs": epochs,
        "lr": lr,
        "r": r,
        "batch_size": batch_size,
        "max_examples": max_examples,
        "max_input_chars": max_input_chars,
        "quantize": quantize,
        "merge": merge,
        "teacher": teacher,
        "model": model,
        "processes": processes,
        "data_curve": None if curve is None else ("auto" if curve else None),
    }
    overrides = {
        k: v for k, v in given.items() if v is not None or (k == "data_curve" and curve is False)
    }
    opts = ClimbOptions(
        rungs=[rung],
        all_rungs=True,
        limit=limit,
        resume=resume,
        run_id=run_id,
        runs_dir=runs,
        seed=seed,
        options={rung: overrides},
        dtype=dtype,
    )
    result = _run(task, opts)
    if rung in result.skipped:
        raise LadderError(f"the {rung} rung was skipped, nothing trained: {result.skipped[rung]}.")
