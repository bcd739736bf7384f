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
