"""Training data out: `ladder export dataset RUN` and `ladder curate --format`, each format
loaded back with `datasets` and checked by TRL's own data utilities when they are installed."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import write_classify_task, write_extract_task
from ladder.dataset import Example
from ladder.task import load_task
from ladder.trainsets import render_card, to_record


def _climb(tmp_path, run_cli, root):
    code, out, err = run_cli("climb", root, "--model", "fake", "--rungs", "zero-shot")
    assert code == 0, err
    code, out, _ = run_cli("runs")
    return next(w for w in out.split() if w.startswith(load_task(root).name + "-"))


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _card_header(path):
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


@pytest.mark.parametrize(
    ("fmt", "keys"),
    [
        ("ladder", {"id", "input", "output", "meta"}),
        ("messages", {"messages"}),
        ("prompt-completion", {"prompt", "completion"}),
    ],
)
def test_export_dataset_writes_each_format_and_a_card(tmp_path, run_cli, fmt, keys):
    root = write_classify_task(tmp_path / "t")
    run_id = _climb(tmp_path, run_cli, root)
    out = tmp_path / "export"
    code, stdout, err = run_cli("export", "dataset", run_id, "--format", fmt, "--out", out)
    assert code == 0, err
    head, text = _card_header(out / "README.md")
    splits = {s["name"]: s["num_examples"] for s in head["dataset_info"]["splits"]}
    files = {f["split"]: f["path"] for f in head["configs"][0]["data_files"]}
    task = load_task(root)
    for split, name in files.items():
        rows = _rows(out / name)
        assert len(rows) == splits[split] and rows and all(set(r) == keys for r in rows)
    train = _rows(out / files["train"])
    if fmt == "messages":
        roles = [m["role"] for m in train[0]["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert train[0]["messages"][2]["content"] in task.labels
    if fmt == "prompt-completion":
        assert train[0]["completion"] in task.labels and task.labels[0] in train[0]["prompt"]
    assert f"run `{run_id}`" in text and "Hold-out decontamination" in text
    assert "hold-out" in stdout


def test_export_leaves_out_train_examples_that_leak_into_the_holdout(tmp_path, run_cli):
    from conftest import default_rows

    rows = default_rows()
    rows = rows + [(rows[i][0] + "!", rows[i][1]) for i in range(0, len(rows), 3)]
    root = write_classify_task(tmp_path / "t", rows=rows, extra_yaml="leakage: {mode: report}\n")
    run_id = _climb(tmp_path, run_cli, root)
    code, out, err = run_cli("export", "dataset", run_id, "--out", tmp_path / "e")
    assert code == 0, err
    from ladder.dataset import load_dataset

    ds = load_dataset(load_task(root), "report")
    assert ds.leaks, "the test data must contain near-duplicates across splits"
    exported = {r["messages"][1]["content"] for r in _rows(tmp_path / "e" / "train.messages.jsonl")}
    exported |= {
        r["messages"][1]["content"] for r in _rows(tmp_path / "e" / "validation.messages.jsonl")
    }
    by_id = {e.id: e for e in ds.examples}
    assert not any(by_id[p.other_id].input in exported for p in ds.leaks)
    text = (tmp_path / "e" / "README.md").read_text()
    n = len({p.other_id for p in ds.leaks})
    assert f"{n} train/dev example(s) left out" in text


def test_bad_export_format_is_one_clear_error(tmp_path, run_cli):
    code, out, err = run_cli("export", "dataset", "nope", "--format", "alpaca")
    assert code == 2 and "messages" in err and "Traceback" not in err + out


def test_extract_outputs_are_json_text(tmp_path):
    task = load_task(write_extract_task(tmp_path / "x"))
    ex = Example("a", "Order 12 from ACME", {"customer": "ACME", "n": 12}, {})
    rec = to_record(ex, task, "messages")
    assert json.loads(rec["messages"][2]["content"]) == {"customer": "ACME", "n": 12}
    assert "JSON Schema" in rec["messages"][0]["content"]


def test_files_load_with_datasets_and_trl(tmp_path, run_cli):
    datasets = pytest.importorskip("datasets")
    trl_utils = pytest.importorskip("trl.data_utils")
    root = write_classify_task(tmp_path / "t")
    run_id = _climb(tmp_path, run_cli, root)
    for fmt, name in (
        ("messages", "train.messages.jsonl"),
        ("prompt-completion", "train.pc.jsonl"),
    ):
        out = tmp_path / fmt
        assert run_cli("export", "dataset", run_id, "--format", fmt, "--out", out)[0] == 0
        dd = datasets.load_dataset(str(out))  # reads README.md's configs: the card is right
        assert set(dd) == {"train", "validation"}
        ds = datasets.load_dataset("json", data_files=str(out / name), split="train")
        assert trl_utils.is_conversational(ds[0]) == (fmt == "messages")
        if fmt == "messages":
            assert trl_utils.is_conversational(ds[0])
        else:
            assert set(ds.column_names) == {"prompt", "completion"}


def test_card_header_is_yaml_even_with_odd_names(tmp_path):
    task = load_task(write_classify_task(tmp_path / "t"))
    card = render_card(
        task,
        "messages",
        {"train": ('we"ird: name.jsonl', 3)},
        provenance=["p"],
        decontamination=["d"],
    )
    head = yaml.safe_load(card.split("---\n")[1])
    assert head["configs"][0]["data_files"][0]["path"] == 'we"ird: name.jsonl'


def test_curated_card_counts_what_was_dropped_and_decontaminated(tmp_path):
    from ladder.curate import Curated, write_card
    from ladder.trainsets import write_trainset

    task = load_task(write_classify_task(tmp_path / "t"))
    kept = [Example("log-1", "Lunch on Sunday?", "personal", {})]
    counts = dict(
        logged=9,
        unusable=1,
        route=0,
        feedback=2,
        invalid=1,
        duplicate=2,
        known=1,
        holdout=1,
        kept=1,
    )
    out = tmp_path / "next.jsonl"
    write_trainset(out, kept, task, "prompt-completion")
    card = write_card(out, task, Curated(kept, counts), "prompt-completion", since="7d")
    head, text = _card_header(card)
    assert card.name == "next.README.md" and head["dataset_info"]["splits"][0]["num_examples"] == 1
    assert "9 logged requests; filters: since 7d" in text and "2 duplicate input" in text
    assert "1 equal or nearly equal to a hold-out input" in text
    assert _rows(out) == [
        {
            "prompt": to_record(kept[0], task, "prompt-completion")["prompt"],
            "completion": "personal",
        }
    ]
