"""A climb ends priced, decided and reported; `ladder report` and `ladder cost` on stored runs;
bad input (unknown run, empty run, missing price, bad volume) is one clear paragraph, exit 2."""

from __future__ import annotations

import json
import re

from ladder.evaluation.scorecard import Scorecard
from ladder.store.db import Store
from report_run import demo_climb


def test_climb_ends_with_priced_scorecards_a_decision_and_a_report(tmp_path):
    res = demo_climb(tmp_path / "task")
    out = res.outcome
    assert out is not None and out.html_path.exists() and out.json_path.exists()
    data = json.loads(out.json_path.read_text())
    cards = {c["rung"]: c for c in data["scorecards"]}
    assert cards["few-shot"]["cost"]["basis"] == "api"
    assert cards["few-shot"]["cost"]["price"] == "gpt-4o-mini"
    assert (
        cards["tuned"]["cost"]["basis"] == "self-hosted" and cards["tuned"]["cost"]["one_time"] > 0
    )
    # API cost = measured tokens x list price
    fs = cards["few-shot"]
    assert fs["cost"]["per_call"] == (fs["tokens_in"] * 0.15 + fs["tokens_out"] * 0.60) / 1e6
    assert data["decision"]["recommendation"] == "tuned" and data["decision"]["kind"] == "fine-tune"
    assert [g["n"] for g in data["decision"]["gates"]] == [1, 2, 3, 4, 5]
    assert len(data["comparisons"]) == 3 and data["headline"]
    assert data["latency_ms"]["tuned"] and data["worst_errors"]["rung"] == "tuned"
    assert data["decision"]["hybrid"]["small"] == "tuned"
    # the store and run.json hold the priced scorecards too
    stored = [Scorecard.model_validate(c) for c in Store().scorecards(res.run_id)]
    assert all(c.cost and c.cost["per_1k_calls"] >= 0 for c in stored)
    assert all(c.cost for c in res.scorecards)
    run_json = json.loads((res.run_dir / "run.json").read_text())
    assert run_json["decision"]["recommendation"] == "tuned"
    assert all("cost" in c and c["cost"] for c in run_json["scorecards"])


def test_report_html_is_self_contained(tmp_path):
    html = demo_climb(tmp_path / "task").outcome.html_path.read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert html.count("<svg") >= 5 and 'id="gates"' in html and "Worst errors" in html
    assert "<li>tuned meets the bar" in html


def test_ladder_report_rerenders_a_stored_run_with_other_prices(tmp_path, run_cli):
    res = demo_climb(tmp_path / "task")
    before = json.loads(res.outcome.json_path.read_text())
    res.outcome.html_path.unlink()
    cheap = tmp_path / "cheap.yaml"
    cheap.write_text("models:\n  gpt-4o-mini: {input: 0.0001, output: 0.0001, source: test}\n")
    code, out, err = run_cli("report", res.run_id, "--prices", cheap, "--volume", "2M/day")
    assert code == 0, err
    assert "Decision:" in out and "Gates:" in out and "report.html" in out
    after = json.loads(res.outcome.json_path.read_text())
    assert res.outcome.html_path.exists()
    assert after["task"]["calls_per_day"] == 2e6
    few = {c["rung"]: c for c in after["scorecards"]}["few-shot"]["cost"]
    assert (
        few["per_call"]
        < {c["rung"]: c for c in before["scorecards"]}["few-shot"]["cost"]["per_call"]
    )
    assert after["prices"]["layers"][-1] == str(cheap)
    code, out, _ = run_cli("report", res.run_id, "--out", tmp_path / "elsewhere")
    assert code == 0 and (tmp_path / "elsewhere" / "report.html").exists()


def test_ladder_cost_on_a_task_and_from_flags(tmp_path, run_cli):
    res = demo_climb(tmp_path / "task")
    code, out, err = run_cli("cost", tmp_path / "task", "--volume", "1e6/day")
    assert code == 0, err
    assert "tuned vs few-shot: break-even" in out and "Decision at this volume" in out
    code, out, _ = run_cli("cost", res.run_id, "--volume", "10/day")
    assert code == 0 and "10 calls/day" in out
    code, out, err = run_cli(
        "cost",
        "--volume",
        "10M/month",
        "--prompt-tokens",
        "2000",
        "--tuned-prompt-tokens",
        "300",
        "--model",
        "gpt-4o",
    )
    assert code == 0, err
    text = " ".join(out.split())
    assert "10,000,000 × 2,000 tokens = 20B input tokens × $2.5/M = $50,000/month" in text
    assert "10,000,000 × 300 tokens = 3B input tokens × $2.5/M = $7,500/month" in text
    assert "Saving $42,500/month ($510,000/year), 85% of the bill" in text


def _clean_error(code, out, err, *parts):
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    text = " ".join(err.split())
    for p in parts:
        assert p in text, text


def test_bad_input_exits_2_with_one_paragraph(tmp_path, run_cli):
    _clean_error(*run_cli("report", "no-such-run"), "no run 'no-such-run'", "ladder runs")
    _clean_error(
        *run_cli(
            "cost",
            "--volume",
            "0/day",
            "--prompt-tokens",
            "1",
            "--tuned-prompt-tokens",
            "1",
            "--model",
            "gpt-4o",
        ),
        "positive number of calls",
    )
    _clean_error(
        *run_cli(
            "cost",
            "--volume",
            "-3",
            "--prompt-tokens",
            "1",
            "--tuned-prompt-tokens",
            "1",
            "--price-in",
            "1",
        ),
        "--volume",
    )
    _clean_error(
        *run_cli(
            "cost",
            "--volume",
            "5/day",
            "--prompt-tokens",
            "1",
            "--tuned-prompt-tokens",
            "1",
            "--model",
            "gpt-99",
        ),
        "no price for the model 'gpt-99'",
        "--prices",
    )
    res = demo_climb(tmp_path / "task")
    _clean_error(*run_cli("report", res.run_id, "--volume", "0"), "positive number")
    store = Store()
    empty = res.run_id + "-empty"
    run = store.get_run(res.run_id)
    store.create_run(
        empty,
        run["task"],
        run["task_path"],
        run["run_dir"],
        run["config_hash"],
        run["data_hash"],
        run["config"],
        run["provenance"],
    )
    _clean_error(*run_cli("report", empty), f"run {empty} has no scorecards", "--resume")
    _clean_error(*run_cli("cost", empty, "--volume", "5"), "no scorecards")


def test_missing_price_for_an_api_model_names_it_and_where_to_add_it(
    tmp_path, run_cli, monkeypatch
):
    """A model served remotely with no price: the climb's work is stored, the error says how
    to price it, and `ladder report` then re-prices the stored run."""
    task_yaml = "models:\n  acme-large: {engine: openai, model: acme-9, base_url: 'https://api.acme.test/v1'}\n"
    from ladder.errors import LadderError

    try:
        demo_climb(
            tmp_path / "task",
            extra_yaml=task_yaml,
            model="acme-large",
            remote=("acme-9", "https://api.acme.test/v1"),
        )
    except LadderError as exc:
        msg = str(exc)
    else:
        raise AssertionError("expected a missing-price error")
    assert "no price for the API model 'acme-9'" in msg and "task.yaml `prices:`" in msg
    run_id = Store().list_runs("tiny")[0]["id"]
    assert f"`ladder report {run_id}`" in msg
    assert Store().get_run(run_id)["status"] == "finished"
    priced = tmp_path / "acme.yaml"
    priced.write_text("models:\n  acme-9: {input: 1.0, output: 4.0, source: our contract}\n")
    code, out, err = run_cli("report", run_id, "--prices", priced)
    assert code == 0, err
    _clean_error(*run_cli("report", run_id), "'acme-9'", "models:")


def test_report_of_a_run_whose_task_moved_keeps_the_economics(tmp_path, run_cli):
    res = demo_climb(tmp_path / "task")
    (tmp_path / "task").rename(tmp_path / "moved")
    code, out, err = run_cli("report", res.run_id)
    assert code == 0, err
    data = json.loads(res.outcome.json_path.read_text())
    assert data["comparisons"] == [] and data["worst_errors"] is None
    assert "per-item sections left out" in data["notes"][0]
    assert data["decision"]["recommendation"] == "tuned"  # priced from the run's stored task
    assert "per-item sections left out" in res.outcome.html_path.read_text()


def test_the_climb_hands_its_results_to_the_report_without_reading_them_back(tmp_path, monkeypatch):
    """The report prices the climb's own scorecard objects; the task file is not reloaded and
    run.json is written once, already priced and decided."""
    from ladder.fsutil import atomic_write_json as real_write
    from ladder.report import build  # (`import ladder.report.build as` meets the function)

    def no_reload(*a, **k):
        raise AssertionError("the report reloaded something the climb holds")

    monkeypatch.setattr(build, "load_task", no_reload)
    monkeypatch.setattr(build, "load_dataset", no_reload)
    monkeypatch.setattr(build, "load_view", no_reload)  # re-reads the stored scorecards
    writes = []

    def counting(path, data):
        writes.append(path.name)
        return real_write(path, data)

    import sys

    monkeypatch.setattr(sys.modules["ladder.climb"], "atomic_write_json", counting)
    res = demo_climb(tmp_path / "task")
    assert res.outcome is not None and all(c.cost for c in res.scorecards)
    assert writes.count("run.json") == 1
    run_json = json.loads((res.run_dir / "run.json").read_text())
    assert run_json["decision"]["recommendation"] == res.outcome.decision["recommendation"]
    assert all(c["cost"] for c in run_json["scorecards"])
