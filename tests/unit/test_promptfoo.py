"""`ladder export promptfoo RUN`: the gateway's model, tested on the hold-out as the metric scores."""

from __future__ import annotations

import json

import pytest
import yaml

from ladder.promptfoo import PromptfooError, assertions
from serve_util import climb_fake


@pytest.mark.parametrize(
    ("kind", "gold", "want"),
    [
        ("classify", "work", [{"type": "equals", "value": "work"}]),
        ("qa", "42 days", [{"type": "icontains-any", "value": ["42 days"]}]),
        ("qa", ["a", "b"], [{"type": "icontains-any", "value": ["a", "b"]}]),
        ("qa", None, [{"type": "icontains-any", "value": ["unanswerable"]}]),
    ],
)
def test_assertions_match_the_metric(kind, gold, want):
    assert assertions(kind, gold) == want


def test_extract_checks_json_and_each_field_regardless_of_key_order():
    got = assertions("extract", {"name": "Ann", "items": [{"sku": 1, "qty": 2}]})
    assert got[0] == {"type": "is-json"}
    assert [a["metric"] for a in got[1:]] == ["name", "items"]
    assert all(a["type"] == "javascript" and "JSON.parse(output)" in a["value"] for a in got[1:])
    assert json.dumps([{"sku": 1, "qty": 2}]) in got[2]["value"]


def test_a_kind_without_a_matching_assertion_is_refused():
    with pytest.raises(PromptfooError, match="no promptfoo assertion"):
        assertions("generate", "text")


def test_export_writes_the_holdout_against_the_gateway(tmp_path, run_cli):
    served = climb_fake(tmp_path)
    out = tmp_path / "promptfooconfig.yaml"
    url = "http://127.0.0.1:9999/v1"
    code, stdout, err = run_cli(
        "export", "promptfoo", served.run_id, "--out", out, "--base-url", url, "--limit", "5"
    )
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# promptfoo eval -c promptfooconfig.yaml")
    cfg = yaml.safe_load(text)
    provider = cfg["providers"][0]
    assert provider["id"] == "openai:chat:tiny"
    assert provider["config"]["apiBaseUrl"] == url
    assert provider["config"]["apiKeyEnvar"] == "LADDER_API_KEY"
    assert len(cfg["tests"]) == 5 and "5 hold-out tests" in " ".join(stdout.split())
    for t in cfg["tests"]:
        assert set(t["vars"]) == {"input"} and t["assert"][0]["type"] == "equals"


def test_export_of_an_unknown_run_exits_2(tmp_path, run_cli):
    code, out, err = run_cli("export", "promptfoo", "no-such-run", "--out", tmp_path / "x.yaml")
    assert code == 2 and "Traceback" not in out + err and "no-such-run" in err
    assert not (tmp_path / "x.yaml").exists()


PROMPTFOO_CLASSIFY = """\
prompts:
  - "Classify this email as work, personal or spam.\\nEmail: {{email}}\\nLabel:"
  - raw: "Email: {{ email }}\\nOne word (work, personal, spam):"
providers: [openai:gpt-4o-mini]
tests:
"""


def _tests(n: int) -> str:
    labels = ["work", "personal", "spam"]
    words = ["meeting agenda", "birthday party", "win a prize", "quarterly report", "dinner"]
    return "".join(
        f'  - description: t{i}\n    vars: {{email: "{words[i % 5]} number {i} here"}}\n'
        f"    assert: [{{type: equals, value: {labels[i % 3]}}}]\n"
        for i in range(n)
    )


def test_init_turns_a_promptfoo_config_into_a_task_with_variants(tmp_path, run_cli):
    from ladder.task import load_task

    cfg = tmp_path / "promptfooconfig.yaml"
    cfg.write_text(PROMPTFOO_CLASSIFY + _tests(30), encoding="utf-8")
    code, out, err = run_cli("init", cfg, "--out", tmp_path / "t", "--name", "mail")
    assert code == 0, err
    task = load_task(tmp_path / "t")
    assert task.spec.kind == "classify" and sorted(task.labels) == ["personal", "spam", "work"]
    assert task.spec.prompt.templates == {
        "promptfoo-1": "Classify this email as work, personal or spam.\nEmail: {{ input }}\nLabel:",
        "promptfoo-2": "Email: {{ input }}\nOne word (work, personal, spam):",
    }
    assert "30 tests, 2 prompt(s) as zero-shot variants" in " ".join(out.split())


def test_init_reads_is_json_tests_as_an_extract_task(tmp_path, run_cli):
    from ladder.task import load_task

    rows = "".join(
        f'  - vars: {{text: "order {i} of {i + 1} pens"}}\n'
        f"    assert: [{{type: is-json}}, {{type: equals, value: '{{\"qty\": {i + 1}}}'}}]\n"
        for i in range(20)
    )
    cfg = tmp_path / "pf.yaml"
    cfg.write_text("prompts: ['Extract JSON: {{text}}']\ntests:\n" + rows, encoding="utf-8")
    code, out, err = run_cli("init", cfg, "--out", tmp_path / "x")
    assert code == 0, err
    assert load_task(tmp_path / "x").spec.kind == "extract"


@pytest.mark.parametrize(
    ("tests", "parts"),
    [
        ("tests: file://tests.csv\n", ["tests:", "file references"]),
        (
            "tests:\n  - vars: {q: hi}\n    assert: [{type: contains, value: hi}]\n",
            ["tests[1]", "contains", "equals"],
        ),
        ("tests:\n  - assert: [{type: equals, value: a}]\n", ["tests[1]", "vars"]),
    ],
)
def test_init_refuses_what_it_cannot_read_naming_the_test(tmp_path, run_cli, tests, parts):
    cfg = tmp_path / "promptfooconfig.yaml"
    cfg.write_text("prompts: ['{{q}}']\n" + tests, encoding="utf-8")
    code, out, err = run_cli("init", cfg, "--out", tmp_path / "t")
    assert code == 2 and "Traceback" not in out + err, (out, err)
    text = " ".join(err.split())
    for p in parts:
        assert p in text, text
    assert not (tmp_path / "t" / "task.yaml").exists()


def test_export_then_init_round_trips_the_holdout(tmp_path, run_cli):
    served = climb_fake(tmp_path)
    cfg = tmp_path / "promptfooconfig.yaml"
    assert run_cli("export", "promptfoo", served.run_id, "--out", cfg)[0] == 0
    exported = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    code, out, err = run_cli("init", cfg, "--out", tmp_path / "back")
    assert code == 0, err
    back = [json.loads(x) for x in (tmp_path / "back" / "data.jsonl").read_text().splitlines()]
    assert [r["input"] for r in back] == [t["vars"]["input"] for t in exported["tests"]]
    assert [r["output"] for r in back] == [t["assert"][0]["value"] for t in exported["tests"]]
