"""Trust: templates in the sandbox, and runs under concurrency (two real processes each)."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_classify_task
from ladder.climb import ClimbOptions, climb
from ladder.errors import TaskError
from ladder.prompts import PromptBuilder
from ladder.store.db import Store
from ladder.task import load_task

SRC = str(Path(__file__).resolve().parents[2] / "src")


def ladder(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-c", "from ladder.cli import main; main()", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_template_reaching_os_is_refused_and_runs_nothing(classify_task, tmp_path):
    marker = tmp_path / "MARKER"
    evil = "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"
    builder = PromptBuilder(load_task(classify_task), template=evil, name="evil")
    with pytest.raises(TaskError, match=r"prompt template 'evil' was refused by the sandbox"):
        builder.render("an email")
    assert not marker.exists()


def test_the_stored_template_a_server_rebuilds_is_sandboxed(classify_task, tmp_path):
    marker = tmp_path / "MARKER"
    evil = "{{ lipsum.__globals__['os'].system('touch " + str(marker) + "') }}"
    with pytest.raises(TaskError, match="sandbox"):
        PromptBuilder(load_task(classify_task), template=evil, name="stored").render("x")
    assert not marker.exists()


def _interrupted_run(task: Path, model: str) -> str:
    """A run left unfinished (as by kill -9): created, then stopped before any rung."""

    def stop(ctx):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        climb(task, ClimbOptions(model=model, rungs=["zero-shot"]), ctx_hook=stop)
    return Store().list_runs("tiny")[0]["id"]


@pytest.mark.parametrize("flags", [["--model", "fake"], []])
def test_resume_refuses_a_run_started_with_another_model(classify_task, flags):
    run_id = _interrupted_run(classify_task, "openai:gpt-4o-mini")
    res = ladder("climb", str(classify_task), "--resume", *flags, cwd=classify_task)
    assert res.returncode == 2, res.stderr
    err = " ".join(res.stderr.split())
    assert "Traceback" not in err and "model: this command" in err
    assert f"--run {run_id} --model openai:gpt-4o-mini --rungs zero-shot" in err
    assert Store().get_run(run_id)["status"] == "running"  # untouched, nothing contacted


def test_resume_refuses_other_rungs_or_limit(classify_task):
    run_id = _interrupted_run(classify_task, "fake")
    res = ladder(
        "climb",
        str(classify_task),
        "--model",
        "fake",
        "--resume",
        "--rungs",
        "few-shot",
        "--limit",
        "3",
        cwd=classify_task,
    )
    err = " ".join(res.stderr.split())
    assert res.returncode == 2 and "rungs: this command ['few-shot']" in err and "limit" in err
    res = ladder("climb", str(classify_task), "--model", "fake", "--run", run_id, cwd=classify_task)
    assert res.returncode == 0, res.stderr
    assert Store().get_run(run_id)["status"] == "finished"


def _hold(task: str, runs: str, locked, go) -> None:
    os.environ["LADDER_RUNS"] = runs

    def wait(ctx):
        locked.set()
        go.wait(120)

    climb(task, ClimbOptions(model="fake", resume=True), ctx_hook=wait)


def test_a_run_being_climbed_is_locked_against_a_second_resume(classify_task):
    run_id = _interrupted_run(classify_task, "fake")
    mpc = mp.get_context("spawn")
    locked, go = mpc.Event(), mpc.Event()
    holder = mpc.Process(
        target=_hold, args=(str(classify_task), os.environ["LADDER_RUNS"], locked, go)
    )
    holder.start()
    try:
        assert locked.wait(120)
        res = ladder("climb", str(classify_task), "--model", "fake", "--resume", cwd=classify_task)
        err = " ".join(res.stderr.split())
        assert res.returncode == 2 and "Traceback" not in err
        assert (
            f"run {run_id} is being climbed by pid {holder.pid} on host" in err and "since" in err
        )
    finally:
        go.set()
        holder.join(120)
    assert holder.exitcode == 0
    assert Store().get_run(run_id)["status"] == "finished"


def _climb_at_a_fixed_second(task: str, runs: str, start, out) -> None:
    import ladder.climb as lc

    os.environ["LADDER_RUNS"] = runs
    lc.time.strftime = lambda fmt, *a: "20261201-120000"  # both processes in the same second
    start.wait(60)
    out.put(climb(task, ClimbOptions(model="fake", rungs=["zero-shot"])).run_id)


def test_two_climbs_started_in_the_same_second_get_distinct_runs(tmp_path):
    task = write_classify_task(tmp_path / "task")
    mpc = mp.get_context("spawn")
    start, out = mpc.Event(), mpc.Queue()
    args = (str(task), os.environ["LADDER_RUNS"], start, out)
    procs = [mpc.Process(target=_climb_at_a_fixed_second, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    ids = sorted(out.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert ids == ["tiny-20261201-120000", "tiny-20261201-120000-2"]
    assert {r["status"] for r in Store().list_runs("tiny")} == {"finished"}
