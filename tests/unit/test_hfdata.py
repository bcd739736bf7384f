"""Datasets in: Parquet files and Hugging Face `datasets` folders (written by the test), a split
chosen by name, ClassLabel ids as names, and tasks named after the dataset, not the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ladder.task import load_task

datasets = pytest.importorskip("datasets")
LABELS = ["billing", "outage", "refund"]
# beside the checkout (main) or two levels up (a worktree under wt/)
_UP = Path(__file__).resolve().parents
SHARED = next(
    (p / "shared" / "datasets" for p in _UP[3:5] if (p / "shared" / "datasets").is_dir()), _UP[3]
)


def _dataset(n: int = 60, offset: int = 0):
    feats = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=LABELS)}
    )
    rows = {
        "text": [f"ticket {i + offset} about {LABELS[i % 3]} number {i * 37}" for i in range(n)],
        "label": [i % 3 for i in range(n)],
    }
    return datasets.Dataset.from_dict(rows, features=feats)


def _init(run_cli, data, out, *args):
    code, stdout, err = run_cli("init", data, "--out", out, *args)
    assert code == 0, err
    text = (out / "task.yaml").read_text()
    return yaml.safe_load(text), " ".join(stdout.split()), text  # rich wraps lines


def test_save_to_disk_folder_with_splits_and_class_names(tmp_path, run_cli):
    dd = datasets.DatasetDict({"train": _dataset(), "test": _dataset(30, offset=1000)})
    dd.save_to_disk(tmp_path / "tickets")
    spec, out, _ = _init(run_cli, tmp_path / "tickets", tmp_path / "t1", "--split", "test")
    assert spec["name"] == "tickets" and spec["data"]["split"] == "test"
    assert sorted(spec["labels"]) == LABELS  # names, not "0", "1", "2"
    assert "split 'test'" in out and "30 examples" in out
    from ladder.dataset import load_dataset

    ds = load_dataset(load_task(tmp_path / "t1"), "report")
    assert len(ds.examples) == 30 and {e.output for e in ds.examples} == set(LABELS)
    # no --split: train is taken
    spec, out, _ = _init(run_cli, tmp_path / "tickets", tmp_path / "t2")
    assert spec["data"]["split"] == "train" and "60 examples" in out


def test_unknown_split_names_the_ones_there(tmp_path, run_cli):
    datasets.DatasetDict({"train": _dataset(), "test": _dataset(9)}).save_to_disk(tmp_path / "d")
    code, out, err = run_cli(
        "init", tmp_path / "d", "--split", "validation", "--out", tmp_path / "t"
    )
    assert code == 2 and "no split 'validation'" in err and "train, test" in err
    assert "Traceback" not in err + out


def test_parquet_file_keeps_class_names_from_its_schema(tmp_path, run_cli):
    (tmp_path / "support").mkdir()
    _dataset().to_parquet(tmp_path / "support" / "train.parquet")
    spec, _, _ = _init(run_cli, tmp_path / "support" / "train.parquet", tmp_path / "t")
    assert spec["name"] == "support" and sorted(spec["labels"]) == LABELS


def test_repository_layout_with_card_class_labels(tmp_path, run_cli):
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = tmp_path / "acme-tickets"
    (repo / "data").mkdir(parents=True)
    for split, n in (("train", 60), ("test", 24)):  # plain Parquet: the names live in the card
        table = pa.table(
            {
                "text": [f"{split} ticket {i} of kind {i % 3}" for i in range(n)],
                "label": [i % 3 for i in range(n)],
            }
        )
        pq.write_table(table, repo / "data" / f"{split}-00000-of-00001.parquet")
    names = "".join(f"          '{i}': {lab}\n" for i, lab in enumerate(LABELS))
    (repo / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: text\n    dtype: string\n  - name: label\n"
        f"    dtype:\n      class_label:\n        names:\n{names}"
        "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
        "  - split: test\n    path: data/test-*\n---\n# Acme tickets\n"
    )
    spec, out, _ = _init(run_cli, repo, tmp_path / "t", "--split", "test")
    assert spec["name"] == "acme-tickets" and sorted(spec["labels"]) == LABELS
    assert "24 examples" in out
    # without a card: files named by split still work; ids stay ids, then --label-names names them
    (repo / "README.md").unlink()
    spec, _, _ = _init(run_cli, repo, tmp_path / "t2", "--label-names", ",".join(LABELS))
    assert sorted(spec["labels"]) == LABELS and spec["data"]["label_names"] == LABELS


def test_label_names_for_a_csv_and_a_clear_error_when_too_few(tmp_path, run_cli):
    data = tmp_path / "reviews" / "train.csv"
    data.parent.mkdir()
    data.write_text(
        "text,label\n" + "".join(f"review {i} of this thing,{i % 2}\n" for i in range(40))
    )
    spec, _, _ = _init(run_cli, data, tmp_path / "t", "--label-names", "neg,pos")
    assert spec["labels"] == ["neg", "pos"] or sorted(spec["labels"]) == ["neg", "pos"]
    code, out, err = run_cli("init", data, "--out", tmp_path / "u", "--label-names", "neg")
    assert code == 2 and "class id 1" in err and "Traceback" not in err + out


def test_two_train_csv_in_different_folders_get_different_names(tmp_path, run_cli):
    for folder in ("alpha", "beta"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "train.csv").write_text(
            "text,label\n" + "".join(f"{folder} row {i} here,{'ab'[i % 2]}\n" for i in range(30))
        )
    a, _, _ = _init(run_cli, tmp_path / "alpha" / "train.csv", tmp_path / "a")
    b, _, _ = _init(run_cli, tmp_path / "beta" / "train.csv", tmp_path / "b")
    assert (a["name"], b["name"]) == ("alpha", "beta")


def test_dropped_duplicates_are_counted_in_summary_and_comments(tmp_path, run_cli):
    rows = [{"text": f"message {i} about things", "label": "ab"[i % 2]} for i in range(40)]
    rows += [dict(rows[i]) for i in range(5)]  # 5 exact duplicates
    rows += [
        {"text": rows[i]["text"], "label": "b" if rows[i]["label"] == "a" else "a"}
        for i in range(5, 7)
    ]
    (tmp_path / "msgs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec, out, text = _init(run_cli, tmp_path / "msgs.jsonl", tmp_path / "t")
    assert "dropped 7 duplicate input(s) (2 with a different answer): 47 rows read, 40 kept" in out
    assert "47 rows read; 7 dropped" in text
    counts = [int(line.rsplit("#", 1)[1]) for line in text.splitlines() if line.startswith("  - ")]
    assert sum(counts) == 40 and "40 examples" in out


def test_missing_pyarrow_gives_the_install_command(tmp_path, monkeypatch):
    import builtins

    from ladder.dataset import read_table_rows
    from ladder.errors import DataError

    _dataset().to_parquet(tmp_path / "x.parquet")
    real = builtins.__import__

    def no_arrow(name, *a, **k):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_arrow)
    with pytest.raises(DataError, match=r"ladder-llm\[datasets\]"):
        read_table_rows(tmp_path / "x.parquet")


@pytest.mark.skipif(not (SHARED / "banking77").is_dir(), reason="shared datasets absent")
def test_real_banking77_folder_is_named_after_it(tmp_path, run_cli):
    spec, out, _ = _init(run_cli, SHARED / "banking77" / "train.csv", tmp_path / "t")
    assert spec["name"] == "banking77" and len(spec["labels"]) == 77


def test_qa_init_with_documents_detects_gold_evidence(tmp_path, run_cli):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "plans.md").write_text("# Plans\nThe Plus plan costs $5.99 per month.\n")
    rows = [
        {
            "id": f"q{i}",
            "question": f"What does plan {i} cost per month?",
            "answer": "$5.99",
            "evidence": ["plans.md"],
            "kind": "fact",
        }
        for i in range(30)
    ]
    (tmp_path / "helpdesk").mkdir()
    data = tmp_path / "helpdesk" / "questions.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec, out, _ = _init(run_cli, data, tmp_path / "t", "--documents", docs)
    assert spec["kind"] == "qa" and spec["name"] == "helpdesk"
    assert spec["data"]["meta"] == ["evidence"] and spec["bar"]["metric"] == "token_f1"
    task = load_task(tmp_path / "t")
    assert task.resolve(task.spec.documents).resolve() == docs.resolve()
    assert "left out kind" in out
    code, _, err = run_cli("init", data, "--out", tmp_path / "u", "--kind", "qa")
    assert code == 2 and "--documents FOLDER" in err


def test_short_question_and_long_context_are_both_taken(tmp_path, run_cli):
    rows = [
        {
            "question": f"Does drug {i} lower blood pressure?",
            "context": f"In a trial of {i * 10} patients, drug {i} "
            + "was compared with placebo. " * 12,
            "final_decision": ["yes", "no", "maybe"][i % 3],
        }
        for i in range(45)
    ]
    (tmp_path / "pubmedqa").mkdir()
    (tmp_path / "pubmedqa" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec, out, _ = _init(
        run_cli, tmp_path / "pubmedqa" / "train.jsonl", tmp_path / "t", "--label", "final_decision"
    )
    assert spec["data"]["input"] == ["question", "context"] and spec["name"] == "pubmedqa"
    assert "text column context: mean" in out and "(left out)" not in out
