"""`ladder keys`, `ladder serve` and `ladder curate` from the command line, and closing the loop:
logged traffic -> curated JSONL -> `ladder climb --add-data`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from ladder.serve.catalog import ServeOptions
from serve_util import climb_fake, gateway

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
ROOT = Path(__file__).resolve().parents[2]


def test_keys_create_list_revoke(run_cli):
    code, out, err = run_cli("keys", "create", "alice")
    assert code == 0, err
    key = out.strip().splitlines()[-1]
    assert key.startswith("ldr-") and len(key) > 30
    code, out, _ = run_cli("keys", "list")
    assert code == 0 and "alice" in out and key[:8] in out and key[8:] not in out
    assert run_cli("keys", "revoke", "alice")[0] == 0
    code, _, err = run_cli("keys", "revoke", "alice")
    assert code == 2 and "no active key" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "nope-run"], "no run 'nope-run'"),
        (["serve", "--model", "fake"], "no API key exists"),
        (["serve", "--model", "fake", "--no-auth", "--host", "0.0.0.0"], "would let anyone"),
        (
            [
                "serve",
                "--model",
                "fake",
                "--no-auth",
                "--target-quality",
                "0.9",
                "--target-share",
                "0.1",
            ],
            "give one of",
        ),
        (["serve", "--model", "fake", "--no-auth", "--adapter", "nofolder"], "NAME=PATH"),
        (["serve", "--model", "fake", "--no-auth", "--large-price", "cheap"], "IN,OUT"),
        (["curate", "--feedback", "maybe"], "not-bad"),
        (["curate", "--since", "last tuesday"], "7d"),
        (["curate"], "no requests to a task model"),
        (["climb", ROOT / "examples/email-triage", "--leakage", "bogus"], "refuse, report or drop"),
    ],
)
def test_bad_serve_and_curate_input_is_one_clear_error(run_cli, args, message):
    code, out, err = run_cli(*args)
    assert code == 2 and "Traceback" not in out + err
    assert message in " ".join((out + err).split()), out + err


def test_ladder_serve_runs_a_real_server_and_flushes_the_log_on_ctrl_c(tmp_path):
    served = climb_fake(tmp_path, rungs=["zero-shot"])
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LADDER_RUNS": os.environ["LADDER_RUNS"]}
    code = "import sys; from ladder.cli import main; main(sys.argv[1:])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", served.run_id, "--port", str(port), "--no-auth"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/health", proc)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0) as c:
            r = c.chat.completions.create(
                model="tiny",
                messages=[{"role": "user", "content": "Happy birthday from all of us"}],
            )
        assert r.choices[0].message.content in ("work", "personal", "spam")
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "tiny: zero-shot (the run's winner)" in out and f"http://127.0.0.1:{port}/v1" in out
    from ladder.serve.logs import open_db

    db = open_db()
    assert [row["id"] for row in db.query()] == [r.id]
    db.close()


def _free_port() -> int:
    from ladder.serve.server import free_port

    return free_port()


def _wait(url: str, proc, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ladder serve exited: {proc.stdout.read()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail("ladder serve did not start")


def test_curated_log_becomes_train_data_and_never_touches_the_holdout(tmp_path, run_cli):
    from ladder.curate import load_extra_examples
    from ladder.dataset import load_dataset, normalize
    from ladder.task import load_task

    served = climb_fake(tmp_path)
    task = load_task(served.task_dir)
    ds = load_dataset(task)
    holdout_text = ds.holdout[0].input
    new = [
        f"Quarterly offsite number {i} needs a venue booked, reply with options" for i in range(6)
    ]
    with gateway(ServeOptions(run=served.run_id)) as g:
        c = g.client()

        def ask(text, model="tiny"):
            return c.chat.completions.create(
                model=model, messages=[{"role": "user", "content": text}]
            )

        ids = [ask(t).id for t in new]
        ask(new[0])  # a duplicate input
        ask(new[1].upper() + "!")  # the same input after normalisation
        bad = ask("Mum says the cat misses you, come visit on Sunday")
        c.post("/feedback", body={"id": bad.id, "rating": "bad"}, cast_to=httpx.Response)
        ask(holdout_text)  # exactly a hold-out input
        ask(holdout_text.replace(".", " !") + " thanks")  # nearly one
        c.completions.create(model="fake", prompt="raw text is not a task answer")
        g.gw.writer.flush()
    code, out, err = run_cli("curate", "--since", "1h", "--out", tmp_path / "next.jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "next.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {normalize(r["input"]) for r in rows} == {normalize(t) for t in new}
    assert {r["meta"]["request_id"] for r in rows} & set(ids) and all(
        r["id"].startswith("log-") for r in rows
    )
    text = " ".join(out.split())
    assert (
        "2 overlapping the hold-out" in text
        and "1 feedback" in text
        and "2 duplicate" in text
        and "Wrote 6 examples" in text
    )
    # the curated file trains: it loads as train data, and a climb takes it
    extra = load_extra_examples(task, tmp_path / "next.jsonl")
    grown = load_dataset(task, extra=extra)
    assert len(grown.train) == len(ds.train) + 6 and grown.holdout == ds.holdout and not grown.leaks
    code, out, err = run_cli(
        "climb",
        served.task_dir,
        "--model",
        "fake",
        "--rungs",
        "few-shot",
        "--add-data",
        tmp_path / "next.jsonl",
    )
    assert code == 0, err
    assert "6 extra train example(s) from next.jsonl" in " ".join(out.split())
    from ladder.store.db import Store

    run = Store().list_runs("tiny")[0]
    split = json.loads((Path(run["run_dir"]) / "run.json").read_text())["split"]
    assert split["train"] == len(ds.train) + 6 and run["config"]["options"]["add_data"]
    code, _, err = run_cli("curate", "--route", "nothing", "--out", tmp_path / "none.jsonl")
    assert code == 0 and (tmp_path / "none.jsonl").read_text() == ""


def test_add_data_rejects_bad_rows_clearly(tmp_path, run_cli):
    served = climb_fake(tmp_path, rungs=["zero-shot"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "hello there", "output": "ham"}\n')
    code, _, err = run_cli("climb", served.task_dir, "--model", "fake", "--add-data", bad)
    assert code == 2 and "line 1" in err and "'ham'" in err
    bad.write_text('{"output": "work"}\n')
    code, _, err = run_cli("climb", served.task_dir, "--model", "fake", "--add-data", bad)
    assert code == 2 and "no `input` text" in err
    from ladder.dataset import load_dataset
    from ladder.task import load_task

    dup = tmp_path / "dup.jsonl"
    holdout = load_dataset(load_task(served.task_dir)).holdout[0]
    dup.write_text(json.dumps({"input": holdout.input, "output": holdout.output}) + "\n")
    code, _, err = run_cli("climb", served.task_dir, "--model", "fake", "--add-data", dup)
    assert code == 2 and "hold-out input(s) also appear" in err  # the leakage check still guards
