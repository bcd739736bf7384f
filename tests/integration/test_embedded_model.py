"""The real embedded Gemma 3 270M, end to end through the CLI (slow; CI runs these)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ladder.store.db import Store

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("embedded_model")]
ROOT = Path(__file__).resolve().parents[2]


def test_climb_email_triage_slice(run_cli):
    code, out, err = run_cli(
        "climb",
        ROOT / "examples/email-triage",
        "--rungs",
        "zero-shot,few-shot",  # the prompting slice; lora has its own test
        "--limit",
        "12",
        "--all",
    )
    assert code == 0, err
    assert "zero-shot" in out and "few-shot" in out
    run = Store().list_runs("email-triage")[0]
    assert run["status"] == "finished"
    data = json.loads((Path(run["run_dir"]) / "run.json").read_text())
    cards = {c["rung"]: c for c in data["scorecards"]}
    assert set(cards) == {"zero-shot", "few-shot"}
    for card in cards.values():
        assert card["n"] == 12 and card["validity"] == 1.0  # label scoring always answers a label
        assert 0.0 <= card["metrics"]["accuracy"]["value"] <= 1.0
        assert card["engine"]["engine"] == "hf" and card["engine"]["dtype"] == "float32"
        assert card["tokens_in"] > 50 and card["latency_ms"]["p50"] > 0
        assert sum(map(sum, card["confusion"]["matrix"])) == 12
    assert cards["few-shot"]["tokens_in"] > cards["zero-shot"]["tokens_in"]
    assert data["provenance"]["packages"]["transformers"].startswith("5.")


def test_extract_by_generation_slice(run_cli):
    code, out, err = run_cli(
        "eval",
        ROOT / "examples/ticket-extract",
        "--rung",
        "few-shot",
        "--variant",
        "knn-3",
        "--limit",
        "3",
    )
    assert code == 0, err
    run = Store().list_runs("ticket-extract")[0]
    card = Store().scorecards(run["id"])[0]
    assert card["variant"] == "knn-3" and card["n"] == 3
    assert card["tokens_out"] > 5  # it generated JSON text
    preds = Store().predictions(run["id"], "few-shot", "knn-3", "holdout")
    assert all(p.raw for p in preds.values())
    assert 0.0 <= card["metrics"]["field_f1"]["value"] <= 1.0


def test_a_budgeted_climb_plans_finishes_and_records_its_phase_times(run_cli):
    """`--budget` on the real model: the plan is shown before starting and stored, the climb
    finishes, every rung's phases are timed in the store and printed at the end."""
    code, out, err = run_cli(
        "climb",
        ROOT / "examples/email-triage",
        "--rungs",
        "zero-shot",  # the prompting rung every climb starts with; CI time is precious
        "--budget",
        "2m",
        "--limit",
        "30",
        "--all",
    )
    assert code == 0, err
    assert "plan" in out.lower()
    store = Store()
    run = store.list_runs("email-triage")[0]
    assert run["status"] == "finished"
    plan = json.loads((Path(run["run_dir"]) / "plan.json").read_text())
    assert plan["budget_s"] == 120 and plan["speed"]["items"] > 0 and plan["eta_s"] > 0
    phases = {(r["rung"], r["phase"]): r["seconds"] for r in store.phase_times(run["id"])}
    for rung in ("zero-shot",):
        assert phases.get((rung, "dev selection"), 0) > 0, phases
        assert phases.get((rung, "hold-out"), 0) > 0, phases
    assert "dev selection" in out  # the phase table printed at the end
