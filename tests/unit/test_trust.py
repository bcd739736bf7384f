"""Trust: templates in the sandbox, and runs under concurrency (two real processes each)."""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import queue
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_classify_task
from ladder.climb import ClimbOptions, climb
from ladder.errors import TaskError
from ladder.rungs.prompts import PromptBuilder
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
    lc = importlib.import_module("ladder.climb")  # the module (ladder.climb names the API function)

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
    ids = []
    for _ in procs:  # generous: two spawned interpreters on 2 busy cores
        try:
            ids.append(out.get(timeout=900))
        except queue.Empty:
            pytest.fail(
                f"a climb never reported its run id; exit codes {[p.exitcode for p in procs]}"
            )
    ids.sort()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert ids == ["tiny-20261201-120000", "tiny-20261201-120000-2"]
    assert {r["status"] for r in Store().list_runs("tiny")} == {"finished"}


def _rows(task: Path, rows: list[tuple[str, str]]) -> None:
    import json

    (task / "data.jsonl").write_text(
        "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows)
    )
    cfg = task / "task.yaml"
    cfg.write_text(cfg.read_text().replace("id: id, ", ""))


def test_duplicate_rows_are_counted_reported_and_stored(classify_task):
    from conftest import default_rows

    rows = default_rows()
    _rows(
        classify_task, [*rows, (rows[0][0], rows[0][1]), (rows[1][0], "spam"), (rows[2][0], "spam")]
    )
    res = climb(classify_task, ClimbOptions(model="fake", rungs=["zero-shot"]))
    note = next(w for w in res.dataset.warnings if "duplicate input" in w)
    assert note.startswith(
        "3 duplicate input row(s) not used (2 with a different output, dropped; 1 merged)"
    )
    assert "line/row 62: same input as line/row 2 but output 'spam' (kept 'work'): dropped" in note
    import json

    stored = json.loads((res.run_dir / "run.json").read_text())
    assert stored["duplicates"]["count"] == 3 and note in stored["warnings"]


def test_degenerate_label_distributions_are_warned(classify_task):
    from ladder.dataset import load_dataset

    _rows(classify_task, [(f"note {i}", "work") for i in range(40)])
    ds = load_dataset(load_task(classify_task))
    assert any("every example has the label 'work'" in w for w in ds.warnings)
    assert any("personal, spam have no example" in w for w in ds.warnings)


def test_a_label_only_in_the_holdout_is_warned(classify_task):
    from conftest import default_rows
    from ladder.dataset import load_dataset

    rows = default_rows()
    _rows(classify_task, rows)  # ids derive from the text: the split is fixed by the inputs
    one = load_dataset(load_task(classify_task)).holdout[0].input
    _rows(
        classify_task, [(t, "spam" if t == one else lab.replace("spam", "work")) for t, lab in rows]
    )
    ds = load_dataset(load_task(classify_task))
    assert [e.output for e in ds.examples].count("spam") == 1
    assert any(w.startswith("label(s) spam occur only in the hold-out") for w in ds.warnings)


def test_an_empty_gold_object_scores_over_extraction_as_an_error():
    import numpy as np

    from ladder.evaluation.metrics import field_f1
    from ladder.kinds import Extract, Parsed

    kind = Extract()
    golds = [{}, {}, {"a": 1}]
    preds = [Parsed({}, True), Parsed({"a": 1}, True), Parsed({}, True)]
    t = kind.table(golds, preds, None)
    assert list(t["exact"]) == [1.0, 0.0, 0.0]
    assert field_f1(t, np.arange(3)) == 0.0  # 1 false positive, 1 miss, no hit
    assert field_f1(t, np.arange(1)) == 1.0  # {} predicted for {}: right
    assert kind.error_categories({}, preds[1], None) == ["a: extracted, gold is {}"]
    assert kind.error_categories({"a": 1}, preds[0], None) == [
        "whole object: missing (nothing extracted)"
    ]


def test_a_small_holdout_still_decides_but_says_it_is_tentative(classify_task):
    res = climb(classify_task, ClimbOptions(model="fake", rungs=["zero-shot"]))
    assert any("decision is tentative" in w for w in res.dataset.warnings)
    assert any(
        r.startswith("tentative: the hold-out has n=")
        for r in res.outcome.data["decision"]["reasons"]
    )
