"""task.yaml validation: every bad input names the file, the line and the fix."""

from __future__ import annotations

import json

import pytest

from ladder.errors import LadderError, TaskError
from ladder.task import load_task


def _task(tmp_path, body: str):
    (tmp_path / "data.jsonl").write_text(
        json.dumps({"id": "1", "input": "hello", "output": "a"}) + "\n"
    )
    (tmp_path / "task.yaml").write_text(body)
    return tmp_path


GOOD = "name: t\nkind: classify\nlabels: [a, b]\ndata: {path: data.jsonl}\n"


def test_valid_task_loads(tmp_path):
    task = load_task(_task(tmp_path, GOOD))
    assert task.name == "t" and task.labels == ["a", "b"]
    assert task.spec.split.holdout == 0.25  # defaults filled in
    assert len(task.config_hash()) == 16
    assert task.spec.scope == "single-task" and task.spec.forgetting is None


def test_a_loaded_task_is_resolved_once(tmp_path, monkeypatch):
    """Its Kind object, its judged metric and its rungs' validated settings come with it."""
    from ladder.registry import registries
    from ladder.rungs.prompting import FewShotConfig

    body = GOOD + "rungs: {few-shot: {k: [2]}}\n"
    task = load_task(_task(tmp_path, body))
    assert task.kind_impl is registries().kinds.get("classify")
    assert task.metric == "accuracy"  # no bar: the kind's primary metric
    few = task.rung_settings("few-shot")
    assert isinstance(few, FewShotConfig) and few.k == [2]
    assert task.rung_settings("few-shot") is few  # validated once, at load
    assert task.rung_settings("zero-shot").model_fields_set == set()  # defaults, on first use

    def no_validation(*args, **kwargs):
        raise AssertionError("a rung's settings were validated again")

    monkeypatch.setattr(FewShotConfig, "model_validate", no_validation)
    assert task.rung_settings("few-shot").k == [2]

    barred = load_task(_task(tmp_path, GOOD + "bar: {metric: macro_f1, threshold: 0.7}\n"))
    assert barred.metric == "macro_f1"  # the bar's metric wins


def test_scope_and_forgetting_text_leave_the_config_hash_alone(tmp_path):
    """They are read by gate 4 and the forgetting check, not by predictions: resume survives."""
    before = load_task(_task(tmp_path, GOOD)).config_hash()
    (tmp_path / "notes.txt").write_text("Some other text the model must keep serving.\n")
    edited = GOOD + "scope: shared\nforgetting: {text: notes.txt}\n"
    task = load_task(_task(tmp_path, edited))
    assert task.spec.scope == "shared" and task.spec.forgetting.text == "notes.txt"
    assert task.config_hash() == before


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD + "labls: [x]\n", ["line 5", "unknown key `labls`", "did you mean `labels`"]),
        (
            GOOD.replace("name: t", "name: t\nbar: {metric: accuracy, threshold: high}"),
            ["line 2", "bar.threshold", "number"],
        ),
        (
            "kind: classify\nlabels: [a, b]\ndata: {path: data.jsonl}\n",
            ["required field `name` is missing"],
        ),
        (
            GOOD.replace("kind: classify", "kind: clasify"),
            ["line 2", "unknown kind 'clasify'", "classify, extract"],
        ),
        (
            GOOD + "bar: {metric: field_f1, threshold: 0.9}\n",
            ["bar.metric", "not a metric of classify", "accuracy"],
        ),
        (GOOD.replace("labels: [a, b]", "labels: [a, a]"), ["line 3", "duplicate labels: a"]),
        (GOOD.replace("labels: [a, b]\n", ""), ["needs `labels`"]),
        (GOOD + "split: {train: 0.9, dev: 0.2, holdout: 0.2}\n", ["must be 1.0"]),
        (GOOD + "data: [\n", ["invalid YAML", "line"]),
        (
            GOOD + "data: {path: other.jsonl}\n",
            ["line 5: key `data` appears twice (first on line 4)"],
        ),
        (GOOD + "rungs: {few-shot: {k: four}}\n", ["rungs.few-shot.k", "line 5"]),
        (GOOD + "rungs: {few-shot: {kk: 4}}\n", ["unknown key `rungs.few-shot.kk`"]),
        (GOOD + "rungs: {fewshot: {}}\n", ["Unknown rung 'fewshot'", "few-shot"]),
        ("- just\n- a list\n", ["expected a mapping"]),
        ("", ["the file is empty"]),
    ],
)
def test_bad_task_files(tmp_path, body, expected):
    with pytest.raises(TaskError) as info:
        load_task(_task(tmp_path, body))
    msg = str(info.value)
    assert "task.yaml" in msg
    for part in expected:
        assert part in msg, msg


def test_extract_schema_must_be_valid_json_schema(tmp_path):
    body = "name: t\nkind: extract\noutput_schema: {type: object, properties: {a: {type: strin}}}\ndata: {path: data.jsonl}\n"
    with pytest.raises(TaskError, match=r"not a valid JSON Schema at properties/a/type"):
        load_task(_task(tmp_path, body))


def test_extract_schema_file_errors_name_that_file(tmp_path):
    (tmp_path / "schema.json").write_text('{"type": "object", "properties": {')
    body = "name: t\nkind: extract\noutput_schema: schema.json\ndata: {path: data.jsonl}\n"
    with pytest.raises(TaskError, match=r"schema.json: line 1: not valid JSON"):
        load_task(_task(tmp_path, body))


def test_missing_task_folder(tmp_path):
    with pytest.raises(LadderError, match=r"no task\.yaml in this folder"):
        load_task(tmp_path)
    with pytest.raises(LadderError, match="task not found"):
        load_task(tmp_path / "nope")
