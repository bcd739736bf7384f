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
