"""The command line: bad input always ends in one paragraph, exit code 2, no traceback."""

from __future__ import annotations

import json
import socket

import pytest

from conftest import SHARED, write_classify_task


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_clean_error(code, out, err, *parts):
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    text = " ".join(err.split())
    for p in parts:
        assert p in text, text


@pytest.mark.parametrize(
    ("mutate", "parts"),
    [
        (lambda root: (root / "data.jsonl").unlink(), ["data.jsonl", "data file not found"]),
        (
            lambda root: (root / "data.jsonl").write_text(""),
            ["data.jsonl", "the data file is empty"],
        ),
        (
            lambda root: (root / "data.jsonl").write_bytes(
                b'{"id": "1", "text": "\xff", "label": "work"}\n'
            ),
            ["not UTF-8", "line 1"],
        ),
        (
            lambda root: (root / "data.jsonl").write_text(
                '{"id": "1", "text": "x", "label": "work"}\n{oops}\n'
            ),
            ["line 2: not valid JSON"],
        ),
        (
            lambda root: (root / "data.jsonl").write_text(
                '{"id": "1", "text": "x", "label": "ham"}\n'
            ),
            ["unknown label", "'ham'", "line/row 1"],
        ),
        (
            lambda root: (root / "data.jsonl").write_text(
                '{"id": "1", "text": "x", "label": "work"}\n' * 2
            ),
            ["duplicate id '1'", "line/row 2"],
        ),
        (
            lambda root: (root / "task.yaml").write_text(
                (root / "task.yaml").read_text() + "colour: blue\n"
            ),
            ["unknown key `colour`", "task.yaml"],
        ),
        (
            lambda root: (root / "task.yaml").write_text(
                (root / "task.yaml").read_text().replace("threshold: 0.9", "threshold: [1]")
            ),
            ["bar.threshold", "valid number"],
        ),
        (
            lambda root: (root / "task.yaml").write_text(
                (root / "task.yaml").read_text() + "model: no-such-model\n"
            ),
            ["model 'no-such-model' is not registered", "openai:<model>"],
        ),
    ],
)
def test_bad_input_is_one_clear_paragraph(tmp_path, run_cli, mutate, parts):
    root = write_classify_task(tmp_path / "t")
    mutate(root)
    _assert_clean_error(*run_cli("climb", root), *parts)


def test_csv_missing_mapped_column(tmp_path, run_cli):
    root = write_classify_task(tmp_path / "t", fmt="csv")
    (root / "data.csv").write_text("id,body,label\n1,hi,work\n")
    _assert_clean_error(*run_cli("climb", root), "data.csv", "no column 'text'", "data.input")


def test_invalid_json_schema(tmp_path, run_cli):
    from conftest import write_extract_task

    root = write_extract_task(tmp_path / "x")
    (root / "schema.json").write_text(
        json.dumps({"type": "object", "properties": {"a": {"type": "strng"}}})
    )
    _assert_clean_error(*run_cli("climb", root), "schema.json", "not a valid JSON Schema")


def test_unreachable_openai_endpoint(tmp_path, run_cli, monkeypatch):
    root = write_classify_task(tmp_path / "t")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port()}/v1")
    _assert_clean_error(
        *run_cli("climb", root, "--model", "openai:some-model"),
        "cannot reach the OpenAI-compatible endpoint",
        "OPENAI_BASE_URL",
    )


def test_no_half_written_run_on_bad_input(tmp_path, run_cli):
    root = write_classify_task(tmp_path / "t")
    (root / "data.jsonl").write_text('{"id": "1", "text": "x", "label": "ham"}\n')
    run_cli("climb", root)
    code, out, _ = run_cli("runs")
    assert code == 0 and "No runs" in out


def test_climb_runs_and_show(tmp_path, run_cli):
    root = write_classify_task(tmp_path / "t")
    code, out, err = run_cli("climb", root, "--model", "fake", "--all")
    assert code == 0, err
    assert "zero-shot" in out and "few-shot" in out and "accuracy [95% CI]" in out
    code, out, _ = run_cli("runs")
    assert code == 0 and "tiny-" in out and "finished" in out
    run_id = next(w for w in out.split() if w.startswith("tiny-"))
    code, out, _ = run_cli("runs", "show", run_id)
    assert code == 0 and "Hardware" in out and "few-shot" in out
    _assert_clean_error(*run_cli("runs", "show", "tiny-nope"), "no run 'tiny-nope'")


def test_unknown_rung_flag(tmp_path, run_cli):
    root = write_classify_task(tmp_path / "t")
    _assert_clean_error(
        *run_cli("climb", root, "--model", "fake", "--rungs", "zero-shot,lorra"),
        "unknown rung(s): lorra",
    )


def test_models_list(run_cli):
    code, out, _ = run_cli("models")
    assert code == 0 and "gemma-3-270m" in out and "openai:<model>" in out


def test_init_guesses_columns_and_writes_a_task_that_climbs(tmp_path, run_cli):
    data = tmp_path / "tickets.csv"
    rows = ["ticket_id,queue,body"] + [
        f'T{i},{"billing" if i % 2 else "tech"},"message {i} about {"an invoice" if i % 2 else "a crash"} number {i * 31}"'
        for i in range(160)
    ]
    data.write_text("\n".join(rows) + "\n")
    code, out, err = run_cli("init", data, "--out", tmp_path / "tickets")
    assert code == 0, err
    text = (tmp_path / "tickets" / "task.yaml").read_text()
    assert (
        text.startswith("# ladder climb")
        and 'id: "ticket_id"' in text
        and 'output: "queue"' in text
        and 'input: "body"' in text
        and "\nscope: single-task   # shared if" in text
    )
    assert "split train" in out
    code, out, err = run_cli(
        "climb", tmp_path / "tickets", "--model", "fake", "--rungs", "zero-shot"
    )
    assert code == 0, err
    _assert_clean_error(*run_cli("init", data, "--out", tmp_path / "tickets"), "already exists")


def test_init_extract_from_nested_json(tmp_path, run_cli):
    data = tmp_path / "orders.jsonl"
    with data.open("w") as f:
        for i in range(30):
            f.write(
                json.dumps(
                    {
                        "text": f"order {i} for {i * 7} widgets to Paris, rush {i % 2}",
                        "output": {
                            "qty": i * 7,
                            "city": "Paris",
                            "rush": bool(i % 2),
                            "meta": {"ref": None if i % 3 else f"R{i}"},
                        },
                    }
                )
                + "\n"
            )
    code, out, err = run_cli("init", data, "--out", tmp_path / "orders")
    assert code == 0, err
    schema = json.loads((tmp_path / "orders" / "schema.json").read_text())
    assert schema["properties"]["qty"]["type"] == "integer"
    assert schema["properties"]["meta"]["properties"]["ref"]["type"] == ["string", "null"]
    assert "kind: extract" in (tmp_path / "orders" / "task.yaml").read_text()


@pytest.mark.skipif(not (SHARED / "banking77").exists(), reason="../shared/datasets not present")
def test_init_on_banking77_subset(tmp_path, run_cli):
    """A real dataset nobody here wrote: its own column names, 77 labels."""
    src = (SHARED / "banking77" / "test.csv").read_text().splitlines()
    data = tmp_path / "banking.csv"
    data.write_text(
        "\n".join(src[:1] + src[1::10]) + "\n"
    )  # every 10th row: ~300 rows, all intents
    code, out, err = run_cli("init", data, "--out", tmp_path / "banking")
    assert code == 0, err
    text = (tmp_path / "banking" / "task.yaml").read_text()
    assert 'input: "text"' in text and 'output: "category"' in text
    assert "labels:   # 77 labels" in text
