"""Shared fixtures: tiny task folders, an isolated run store, and a CLI runner."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test gets its own run store; the model cache stays shared (it is expensive)."""
    monkeypatch.setenv("LADDER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LADDER_PRICES", str(tmp_path / "no-user-prices.yaml"))  # shipped book only
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


# what `--dtype auto` measures in tests: bf16 slower everywhere, as on a CPU without bf16 units,
# so results do not depend on the machine (tests of the choice give their own figures)
NO_BF16 = {p: {"float32": 40.0, "bfloat16": 10.0} for p in ("score", "generate", "train")}


@pytest.fixture(autouse=True)
def _numerics_measured(tmp_path, monkeypatch):
    from ladder.engines import numerics

    monkeypatch.setattr(numerics, "cache_dir", lambda: tmp_path / "numerics")
    monkeypatch.setattr(numerics, "measure", lambda device="cpu", seconds=0: NO_BF16)


@pytest.fixture
def run_cli(capsys):
    """Run `ladder ARGS...` in-process; return (exit code, stdout, stderr)."""
    from ladder.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


PARTS = {
    "work": (
        [
            "Quarterly roadmap review moved to Thursday afternoon",
            "Please review my pull request before the release",
            "The client signed the contract for the first milestone",
            "Standup is cancelled tomorrow morning",
            "Budget approval needed for the staging servers",
        ],
        [
            "bring the updated revenue numbers and the hiring plan",
            "the deploy window closes at six so be quick",
            "finance wants the invoice out by the end of the month",
            "post your async update in the team channel",
            "procurement needs the signed form before Friday noon",
        ],
    ),
    "personal": (
        [
            "Mum says dinner is at seven on Sunday",
            "Happy birthday from all of us here",
            "Are you still up for hiking the ridge trail",
            "Thanks so much for feeding the cat",
            "Grandpa is finally home from the hospital",
        ],
        [
            "bring the potato salad and your new partner",
            "drinks are on me next week at the usual pub",
            "we could leave early and grab pancakes after",
            "she keeps sitting by the door waiting for you",
            "he keeps asking when you will come and visit",
        ],
    ),
    "spam": (
        [
            "You have won five million dollars in our lottery",
            "Your account is suspended until you verify",
            "Cheap pills without any prescription needed",
            "Double your money with our new crypto coin",
            "Dear beneficiary an inheritance is waiting",
        ],
        [
            "send your bank details and passport copy today",
            "click the secure link and enter your password now",
            "discreet shipping worldwide with no questions asked",
            "guaranteed returns within one week or money back",
            "reply urgently with the processing fee in gift cards",
        ],
    ),
}


def default_rows() -> list[tuple[str, str]]:
    rows = []
    for label, (heads, tails) in PARTS.items():
        for i, head in enumerate(heads):
            for j, tail in enumerate(tails):
                if (i + j) % 5 != 4:  # 20 of 25 combinations per label
                    rows.append((f"{head}, {tail}.", label))
    return rows


def write_classify_task(
    root: Path,
    rows=None,
    extra_yaml: str = "",
    labels=("work", "personal", "spam"),
    fmt: str = "jsonl",
) -> Path:
    """A small classify task folder: repeated, numbered rows of EMAILS (or `rows`)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = rows if rows is not None else default_rows()
    if fmt == "jsonl":
        with (root / "data.jsonl").open("w") as f:
            for i, (text, lab) in enumerate(rows):
                f.write(json.dumps({"id": f"ex-{i:03d}", "text": text, "label": lab}) + "\n")
        data = "data.jsonl"
    else:
        import csv

        with (root / "data.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "text", "label"])
            for i, (text, lab) in enumerate(rows):
                w.writerow([f"ex-{i:03d}", text, lab])
        data = "data.csv"
    (root / "task.yaml").write_text(
        f"""name: tiny
kind: classify
instructions: Classify the email.
labels: [{", ".join(labels)}]
data: {{path: {data}, id: id, input: text, output: label}}
split: {{train: 0.5, dev: 0.2, holdout: 0.3}}
bar: {{metric: accuracy, threshold: 0.9}}
eval: {{bootstrap: 200, repeats: 3, min_holdout: 5}}
{extra_yaml}"""
    )
    return root


SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "technical"]},
        "order_id": {"type": ["string", "null"]},
        "customer": {
            "type": "object",
            "properties": {"name": {"type": ["string", "null"]}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["category", "order_id", "customer"],
    "additionalProperties": False,
}


def write_extract_task(root: Path, n: int = 30, extra_yaml: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "schema.json").write_text(json.dumps(SCHEMA))
    names = ["Ana", "Bo", "Chen", None, "Dara"]
    with (root / "data.jsonl").open("w") as f:
        for i in range(n):
            cat = "billing" if i % 2 else "technical"
            name = names[i % len(names)]
            oid = f"NH-{100000 + i}" if i % 3 else None
            text = f"{'I was charged twice' if cat == 'billing' else 'My hub will not connect'} for order {oid or 'unknown'}. {('Regards, ' + name) if name else ''} #{i}"
            f.write(
                json.dumps(
                    {
                        "id": f"t{i}",
                        "ticket": text,
                        "out": {"category": cat, "order_id": oid, "customer": {"name": name}},
                    }
                )
                + "\n"
            )
    (root / "task.yaml").write_text(
        f"""name: tiny-extract
kind: extract
instructions: Extract the fields.
output_schema: schema.json
data: {{path: data.jsonl, id: id, input: ticket, output: out}}
split: {{train: 0.5, dev: 0.2, holdout: 0.3}}
eval: {{bootstrap: 200, repeats: 2, consistency_sample: 4, min_holdout: 5}}
{extra_yaml}"""
    )
    return root


@pytest.fixture
def classify_task(tmp_path) -> Path:
    return write_classify_task(tmp_path / "task")


@pytest.fixture
def extract_task(tmp_path) -> Path:
    return write_extract_task(tmp_path / "xtask")


def embedded_ready() -> bool:
    from ladder.engines.gguf import embedded_ready as ready

    return ready()


@pytest.fixture(scope="session")
def embedded_model() -> None:
    """The embedded model, prepared: `make test` does it first; this covers a bare pytest run."""
    from ladder.engines.gguf import prepare_embedded

    if not embedded_ready():
        prepare_embedded()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("LADDER_SKIP_INTEGRATION"):
        skip = pytest.mark.skip(reason="LADDER_SKIP_INTEGRATION is set")
        for item in items:
            if "integration" in item.keywords:
                item.add_marker(skip)
