"""Reading data, the deterministic split and the leakage check."""

from __future__ import annotations

import json

import pytest

from conftest import write_classify_task
from ladder.dataset import Example, assign_splits, find_leaks, load_dataset
from ladder.errors import DataError
from ladder.task import load_task


def _load(root):
    return load_dataset(load_task(root))


def test_jsonl_and_csv_give_the_same_dataset(tmp_path):
    a = _load(write_classify_task(tmp_path / "a"))
    b = _load(write_classify_task(tmp_path / "b", fmt="csv"))
    assert [e.id for e in a.holdout] == [e.id for e in b.holdout]
    assert [e.input for e in a.train] == [e.input for e in b.train]
    assert sum(a.counts().values()) == 60


def test_split_is_deterministic_and_stable_as_data_grows():
    exs = [Example(f"id-{i}", f"text {i}", "a") for i in range(500)]
    first = assign_splits(exs, 0.6, 0.15, "salt")
    more = assign_splits(
        exs + [Example(f"new-{i}", "t", "a") for i in range(200)], 0.6, 0.15, "salt"
    )
    for split in ("train", "dev", "holdout"):
        old = {e.id for e in first[split]}
        assert old <= {e.id for e in more[split]}, "adding data must not move existing examples"
    assert 0.2 < len(first["holdout"]) / 500 < 0.3
    other = assign_splits(exs, 0.6, 0.15, "another-salt")
    assert {e.id for e in other["holdout"]} != {e.id for e in first["holdout"]}


def test_multi_column_input_and_dotted_paths(tmp_path):
    root = write_classify_task(tmp_path / "t")
    rows = [
        json.dumps(
            {"id": str(i), "msg": {"subject": f"s{i}", "body": f"body number {i}"}, "label": "work"}
        )
        for i in range(3)
    ]
    (root / "data.jsonl").write_text("\n".join(rows) + "\n")
    text = (root / "task.yaml").read_text().replace("input: text", "input: [msg.subject, msg.body]")
    (root / "task.yaml").write_text(
        text.replace("holdout: 0.3}", "holdout: 0.3}\nleakage: {mode: report}")
    )
    ds = _load(root)
    assert ds.examples[0].input == "Msg.subject: s0\nMsg.body: body number 0"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the data file is empty"),
        (
            b'{"id": "1", "text": "ok", "label": "work"}\n{"id": "2", "text": "broken\n',
            "line 2: not valid JSON",
        ),
        (b'{"id": "1", "text": "caf\xe9", "label": "work"}\n', "line 1: not UTF-8"),
        (b'{"id": "1", "body": "x", "label": "work"}\n', "no column 'text'"),
        (
            b'{"id": "1", "text": "x", "label": "wrok"}\n',
            "unknown label(s) not listed in task.yaml `labels`: 'wrok' on line/row 1",
        ),
        (
            b'{"id": "1", "text": "x", "label": "work"}\n{"id": "1", "text": "y", "label": "work"}\n',
            "line/row 2: duplicate id '1'",
        ),
        (b"[1, 2]\n", "line 1: expected a JSON object"),
        (b'{"id": "1", "text": "  ", "label": "work"}\n', "line/row 1: the input is empty"),
    ],
)
def test_bad_data_files(tmp_path, content, expected):
    root = write_classify_task(tmp_path / "t")
    (root / "data.jsonl").write_bytes(content)
    with pytest.raises(DataError) as info:
        _load(root)
    assert expected in str(info.value)
    assert "data.jsonl" in str(info.value)


def test_csv_missing_mapped_column_names_row_and_columns(tmp_path):
    root = write_classify_task(tmp_path / "t", fmt="csv")
    (root / "data.csv").write_text("id,txt,label\n1,hello,work\n")
    with pytest.raises(DataError) as info:
        _load(root)
    msg = str(info.value)
    assert (
        "line/row 2: no column 'text'" in msg
        and "Did you mean 'txt'" in msg
        and "data.input" in msg
    )


def test_missing_data_file(tmp_path):
    root = write_classify_task(tmp_path / "t")
    (root / "data.jsonl").unlink()
    with pytest.raises(DataError, match="data file not found"):
        _load(root)


def test_hash_ids_when_no_id_column_and_identical_inputs_collapse(tmp_path):
    root = write_classify_task(tmp_path / "t")
    (root / "data.jsonl").write_text(
        "".join(
            json.dumps({"text": t, "label": "work"}) + "\n" for t in ["a b c", "a b c", "d e f"]
        )
    )
    (root / "task.yaml").write_text((root / "task.yaml").read_text().replace("id: id, ", ""))
    ds = _load(root)
    assert len(ds.examples) == 2 and all(len(e.id) == 12 for e in ds.examples)


def test_leakage_exact_and_near_duplicates_refused_by_default(tmp_path):
    rows = [
        (f"unique message number {i} about topic {i * 7} with words {i * 13}", "work")
        for i in range(60)
    ]
    # the same text with a tiny edit lands wherever its id hashes: some pairs straddle the split
    rows += [(rows[i][0] + " thanks", "work") for i in range(30)]
    rows += [(rows[i][0], "work") for i in range(30, 45)]
    root = write_classify_task(tmp_path / "t", rows=rows)
    with pytest.raises(DataError) as info:
        _load(root)
    msg = str(info.value)
    assert "hold-out input(s) also appear" in msg and "--leakage drop" in msg
    ds = load_dataset(load_task(root), leakage="drop")
    assert ds.dropped and not ({e.id for e in ds.holdout} & set(ds.dropped))
    assert find_leaks(ds.holdout, {"train": ds.train, "dev": ds.dev}, 0.8) == []
    kinds = {p.similarity >= 1 for p in load_dataset(load_task(root), leakage="report").leaks}
    assert kinds == {True, False}, "both exact and near duplicates are found"
