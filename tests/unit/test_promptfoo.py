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
