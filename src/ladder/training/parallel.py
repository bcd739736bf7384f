"""Training across processes: the same loop (loop.py), data-parallel under torch.distributed.

`ladder train TASK --processes N` (task.yaml `rungs.lora.processes`) runs N copies of the
loop: this process is rank 0 and keeps the model it already loaded; N-1 workers are spawned
(`torch.multiprocessing`, spawn), each loads the same base model and attaches the same seeded
LoRA. The backend is gloo on CPU and NCCL on CUDA (rank r on GPU r).

What each optimizer step does: all ranks draw the same length-bucketed batch order; a step
takes `grad_accum x N` micro-batches and rank r trains on every N-th of them; the gradients
are summed across ranks (all-reduce) before clipping, so every rank takes the identical step,
and that step is exactly the one a single process takes with `grad_accum x N` (float
summation order aside). Why not `DistributedDataParallel`'s wrapper: the loop calls the model
body and `lm_head` directly (never `model.forward`, where DDP hooks in) and normalises the
loss by the whole step's answer-token count, so the gradient sum is done here, by hand.

Only rank 0 writes checkpoints, the adapter and progress; on a resume every rank reads the
checkpoint from the same folder (one machine, or a shared file system).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from ladder.training.loop import LoopConfig, TrainingError, TrainResult, train
from ladder.training.world import World

# a peer that stops answering for this long fails the collective instead of hanging forever
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Replica:
    """What a worker needs to build the very model rank 0 trains."""

    path: str
    quantize: str
    r: int
    alpha: int
    dropout: float
    targets: tuple[str, ...]
    seed: int
    dtype: str | None = None  # the weights' format on CUDA (load_base)
    hold: str | None = None  # the frozen base's format on a CPU (load_base)
    layers: str | tuple[int, ...] = "all"  # decoder layers with adapters (attach_lora)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, size: int, port: int) -> None:
    import torch
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=size,
        timeout=TIMEOUT,
    )


def _threads(size: int) -> int:
    """CPU threads per rank: the cores shared out, so N ranks do not oversubscribe them."""
    return max(1, (os.cpu_count() or 1) // size)


def _worker(rank: int, size: int, port: int, replica: Replica, job: dict[str, Any]) -> None:
    """A spawned rank: build the replica, join the group, run the loop, exit."""
    import torch

    from ladder.training.adapters import attach_lora, load_base

    torch.set_num_threads(_threads(size))
    lm, _ = load_base(
        replica.path, replica.quantize, gpu=rank, dtype=replica.dtype, hold=replica.hold
    )
    layers = replica.layers if isinstance(replica.layers, str) else list(replica.layers)
    model = attach_lora(
        lm, replica.r, replica.alpha, replica.dropout, list(replica.targets), replica.seed, layers
    )
    _join(rank, size, port)
    try:
        train(model, **job, world=World(rank, size))
    finally:
        torch.distributed.destroy_process_group()


def train_parallel(
    model,
    replica: Replica,
    processes: int,
    records: list,
    dev: list,
    cfg: LoopConfig,
    *,
    pad_id: int,
    folder: Path,
    fingerprint: dict[str, Any],
    progress=None,
    desc: str = "train",
) -> TrainResult:
    """Train `model` as rank 0 of `processes` ranks; the result is rank 0's (global) state."""
    import torch
    import torch.multiprocessing as mp

    if torch.cuda.is_available() and torch.cuda.device_count() < processes:
        raise TrainingError(
            f"--processes {processes} needs {processes} GPUs (one per rank) and "
            f"{torch.cuda.device_count()} are visible.",
            fix=f"use --processes {torch.cuda.device_count()} or fewer.",
        )
    job: dict[str, Any] = {
        "records": records,
        "dev": dev,
        "cfg": cfg,
        "pad_id": pad_id,
        "folder": folder,
        "fingerprint": fingerprint,
    }
    port = _free_port()
    spawn = mp.get_context("spawn")
    workers = [
        spawn.Process(target=_worker, args=(rank, processes, port, replica, job))
        for rank in range(1, processes)
    ]
    for w in workers:
        w.start()
    threads = torch.get_num_threads()
    torch.set_num_threads(_threads(processes))
    try:
        _join(0, processes, port)
        return train(model, **job, progress=progress, desc=desc, world=World(0, processes))
    except (RuntimeError, torch.distributed.DistError) as exc:
        failed = [f"rank {r}: exit code {w.exitcode}" for r, w in enumerate(workers, 1)]
        raise TrainingError(
            f"training across {processes} processes failed: {exc} ({'; '.join(failed)}).",
            fix="the workers' errors are printed above; rerun with --processes 1 to see one "
            "process alone, or --resume to continue from the last finished epoch.",
        ) from None
    finally:
        torch.set_num_threads(threads)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        _reap(workers)


def _reap(workers) -> None:
    """Wait for the workers; one still alive after rank 0 finished is stopped."""
    for w in workers:
        w.join(timeout=60)
        if w.is_alive():
            w.terminate()
            w.join()
