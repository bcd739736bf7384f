"""The public Python API gives the same results as the CLI."""

from __future__ import annotations

import json

import pytest

import ladder
from ladder.errors import LadderError


def test_public_names_are_all_exported():
    assert sorted(ladder.__all__) == sorted(
        n for n in ladder.__all__ if hasattr(ladder, n) or n == "__version__"
    )
    assert ladder.ClimbOptions().rungs is None


def test_api_functions_stay_functions_once_their_namesake_modules_load():
    import importlib

    for name in ("ladder.climb", "ladder.decide.gates", "ladder.report.build", "ladder.serve.app"):
        importlib.import_module(name)
    assert all(callable(getattr(ladder, n)) for n in ("climb", "decide", "report", "serve"))
    assert not any(
        isinstance(getattr(ladder, n), type(ladder)) for n in ("climb", "decide", "report", "serve")
    )


def test_api_climb_equals_the_cli(classify_task, run_cli, tmp_path):
    res = ladder.climb(
        classify_task, rungs=["zero-shot"], model="fake", runs_dir=str(tmp_path / "a")
    )
    run_cli(
        "climb",
        str(classify_task),
        "--rungs",
        "zero-shot",
        "--model",
        "fake",
        "--runs",
        str(tmp_path / "b"),
    )
    cli_report = next((tmp_path / "b").rglob("report.json"))
    cli_cards = json.loads(cli_report.read_text())["scorecards"]
    api_card = res.scorecards[0]
    cli_card = next(c for c in cli_cards if c["rung"] == "zero-shot")
    assert api_card.n == cli_card["n"] > 0
    assert api_card.metrics["accuracy"].value == pytest.approx(
        cli_card["metrics"]["accuracy"]["value"]
    )
    assert res.outcome.decision == json.loads(cli_report.read_text())["decision"]


def test_api_evaluate_and_report(classify_task, tmp_path):
    card = ladder.evaluate(classify_task, "zero-shot", model="fake", runs_dir=str(tmp_path))
    assert card.rung == "zero-shot" and card.split == "holdout"
    task = ladder.load_task(classify_task)
    ds = ladder.load_dataset(task)
    assert card.n == len(ds.splits["holdout"])
    with pytest.raises(LadderError):
        ladder.evaluate(classify_task, "rag", model="fake", runs_dir=str(tmp_path))


def test_api_decide_rereads_a_run_as_its_report_did_and_writes_nothing(classify_task, tmp_path):
    res = ladder.climb(classify_task, rungs=["zero-shot"], model="fake", runs_dir=str(tmp_path))
    before = {p: p.stat().st_mtime_ns for p in res.run_dir.rglob("*") if p.is_file()}
    decision = ladder.decide(res.run_id, runs_dir=tmp_path)
    assert decision == res.outcome.decision
    assert decision["basis"] and decision["bar_verdicts"]
    assert {p: p.stat().st_mtime_ns for p in res.run_dir.rglob("*") if p.is_file()} == before
    # another volume re-decides the economics without touching the run
    busier = ladder.decide(res.run_id, runs_dir=tmp_path, calls_per_day=1e6)
    assert busier["recommendation"] == decision["recommendation"]


def test_api_serve_answers_the_official_client_and_stops(tmp_path):
    import openai

    from serve_util import climb_fake

    res = climb_fake(tmp_path)
    with ladder.serve(res.run_id) as gw:
        client = openai.OpenAI(base_url=gw.url, api_key="any")
        assert "tiny" in [m.id for m in client.models.list()]
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Standup moved to Friday"}]
        )
        assert reply.choices[0].message.content in ("work", "personal", "spam")
    assert not gw.thread.is_alive()
    with pytest.raises(LadderError, match="without auth would answer anyone"):
        ladder.serve(res.run_id, host="0.0.0.0")
    with pytest.raises(LadderError, match="no API key"):
        ladder.serve(res.run_id, auth=True)
