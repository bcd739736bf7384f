"""Guards a climb passes before any run exists: evidence enough to decide, a resume that matches
the command, and one climber per run (a lock naming its holder)."""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.errors import DataError, LadderError, StoreError

WIDE_CI = 0.15  # a 95% CI half-width above this makes a decision tentative
# gate 3's rule of thumb when no data-sufficiency curve was measured (the fine-tune checks skip
# the curve when it already holds and the bar is met)
MIN_TRAIN, MIN_HOLDOUT = 100, 50


def ci_half_width(n: int) -> float:
    """Worst-case (p = 0.5) half-width of a 95% normal CI on a share measured on n items."""
    return 1.96 * math.sqrt(0.25 / n) if n else 1.0


def check_evidence(task, ds, limit: int | None) -> list[str]:
    """Refuse a hold-out too small to decide on; return notes when its CI is wide."""
    n, need = len(ds.holdout), task.spec.eval.min_holdout
    if n < need:
        raise DataError(
            f"the hold-out has {n} example(s) ({len(ds.examples)} in the data, split "
            f"holdout {task.spec.split.holdout:g}); a decision needs at least {need} "
            f"(`eval.min_holdout`): at n={max(n, 1)} a score's 95% CI is ±{ci_half_width(max(n, 1)):.2f} wide, "
            f"at n={need} ±{ci_half_width(need):.2f}.",
            where=task.file,
            fix=f"add labelled rows (about {math.ceil(need / task.spec.split.holdout)} in all), raise `split.holdout`, or lower `eval.min_holdout` knowingly.",
        )
    shown = min(n, limit) if limit else n
    if ci_half_width(shown) > WIDE_CI:
        return [
            f"hold-out n={shown}: a score's 95% CI is up to ±{ci_half_width(shown):.2f} wide, "
            "so the decision is tentative (more hold-out rows narrow it)"
        ]
    return []


# what must match between a resume command and the run it continues; None = not given
COMPARED = ("rungs", "limit", "seed", "variant", "leakage", "add_data", "dtype")


def resume_differences(task, cmd, stored) -> dict[str, tuple[Any, Any]]:
    """Fields where the command asks for something other than what the run was started with."""
    diff = {}
    model_cmd, model_run = cmd.model or task.spec.model, stored.model or task.spec.model
    if model_cmd != model_run:  # never reach an endpoint this command did not name
        diff["model"] = (model_cmd, model_run)
    for name in COMPARED:
        mine, theirs = getattr(cmd, name), getattr(stored, name)
        if name == "add_data" and mine:
            mine = [str(Path(p).expanduser().resolve()) for p in mine]
        if mine is not None and mine != theirs:
            diff[name] = (mine, theirs)
    return diff


def resume_command(task, run_id: str, stored) -> str:
    """The command that continues a run exactly as it was started."""
    parts = ["ladder climb", str(task.dir), f"--run {run_id}"]
    parts.append(f"--model {stored.model or task.spec.model}")
    if stored.rungs:
        parts.append(f"--rungs {','.join(stored.rungs)}")
    for flag in ("limit", "seed", "variant", "leakage", "dtype"):
        if getattr(stored, flag) is not None:
            parts.append(f"--{flag} {getattr(stored, flag)}")
    return " ".join(parts)


def refuse_mismatch(task, run_id: str, cmd, stored) -> None:
    diff = resume_differences(task, cmd, stored)
    if diff:
        shown = "; ".join(f"{k}: this command {a!r}, the run {b!r}" for k, (a, b) in diff.items())
        raise StoreError(
            f"run {run_id} was started with other settings, so it cannot be resumed by this command ({shown}).",
            fix=f"resume it as it was: `{resume_command(task, run_id, stored)}`, or start a new climb without --resume/--run.",
        )


@dataclass
class RunLock:
    """An exclusive lock on a run folder, held while the run is climbed (released on exit)."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock; the file stays, naming the last holder
            self.fd = -1


def lock_run(run_dir: Path, run_id: str) -> RunLock:
    """Lock a run or say who holds it; the lock dies with its process (kill -9 included)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"run {run_id} is being climbed by {_holder(path)}.",
            fix="wait for it to finish (or stop that process), then resume.",
        ) from None
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(holder).encode())
    return RunLock(path, fd)


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    return f"pid {h.get('pid')} on host {h.get('host')} since {h.get('since')}"


def check_prices(files: list[str]) -> None:
    """A --prices file that does not exist is found before any run is created."""
    for f in files:
        if not Path(f).expanduser().is_file():
            raise LadderError(
                "price file not found.",
                where=f,
                fix="give an existing YAML price file to --prices, or drop the flag.",
            )
