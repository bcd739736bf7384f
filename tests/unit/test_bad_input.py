"""Bad input, as a table: every case exits 2 with one paragraph naming the file, row, field or
flag and the fix; no traceback; and no run left in the store. Fake engine throughout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_classify_task
from ladder.store.db import Store

T = "{task}"  # replaced by the task folder in each argv
CLIMB = ("climb", T, "--model", "fake")


def yaml_edit(old: str, new: str):
    def edit(task: Path) -> None:
        cfg = task / "task.yaml"
        text = cfg.read_text()
        assert old in text, old
        cfg.write_text(text.replace(old, new))

    return edit


def yaml_add(extra: str):
    def edit(task: Path) -> None:
        cfg = task / "task.yaml"
        cfg.write_text(cfg.read_text() + extra + "\n")

    return edit


def template(source: str):
    return yaml_add("prompt:\n  templates:\n    mine: " + json.dumps(source))


def data_rows(rows: list[dict] | str, name: str = "data.jsonl"):
    """Replace the data file: a list of JSON rows, or raw text."""

    def edit(task: Path) -> None:
        body = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
        (task / name).write_text(body)
        if name != "data.jsonl":
            yaml_edit("path: data.jsonl", f"path: {name}")(task)

    return edit


def few(n: int, extra_yaml: str = ""):
    rows = [{"id": f"r{i}", "text": f"email number {i}", "label": "work"} for i in range(n)]

    def edit(task: Path) -> None:
        data_rows(rows)(task)
        yaml_edit(", min_holdout: 5", extra_yaml)(task)

    return edit


def same_label_rows(task: Path) -> None:
    data_rows([{"id": "a", "text": "x", "label": "work"}])(task)


CSV_HEAD = "id,text,text,label\n1,hello there,general kenobi,work\n2,buy now,cheap,spam\n"

CASES: list[tuple[str, object, tuple, tuple]] = []


def case(name, edit, argv, *needles):
    CASES.append((name, edit, argv, needles))


# ------------------------------------------------------------------ task.yaml: the bar
for metric in ("accuracy", "macro_f1"):
    for t in ("-0.2", "-1", "0", "1.5", "2", "100", "1.0001", "-1e-9"):
        case(
            f"bar-{metric}-{t}",
            yaml_edit(
                "bar: {metric: accuracy, threshold: 0.9}",
                f"bar: {{metric: {metric}, threshold: {t}}}",
            ),
            CLIMB,
            "bar.threshold",
            "task.yaml",
            "Fix",
        )
case("bar-unknown-metric", yaml_edit("metric: accuracy", "metric: bleu"), CLIMB, "bar.metric")
case("bar-threshold-text", yaml_edit("threshold: 0.9", "threshold: high"), CLIMB, "bar.threshold")
case("bar-no-metric", yaml_edit("metric: accuracy, ", ""), CLIMB, "bar.metric")
# ------------------------------------------------------------------ task.yaml: labels
for a, b in (
    ("alpha", "Alpha"),
    ("work", "Work"),
    ("spam", "SPAM"),
    ("work", "work!"),
    ("personal", "Personal."),
    ("spam", " spam"),
    ("work-item", "work item"),
    ("a_b", "a-b"),
):
    case(
        f"labels-collide-{a}-{b}",
        yaml_edit(
            "labels: [work, personal, spam]", f"labels: [other, {json.dumps(a)}, {json.dumps(b)}]"
        ),
        CLIMB,
        "labels",
        "same answer",
        "Fix",
    )
case("labels-one", yaml_edit("labels: [work, personal, spam]", "labels: [work]"), CLIMB, "labels")
case(
    "labels-duplicate",
    yaml_edit("labels: [work, personal, spam]", "labels: [work, work, spam]"),
    CLIMB,
    "labels",
)
case(
    "labels-empty-string",
    yaml_edit("labels: [work, personal, spam]", 'labels: [work, ""]'),
    CLIMB,
    "labels",
)
case("labels-missing", yaml_edit("labels: [work, personal, spam]\n", ""), CLIMB, "labels")
# ------------------------------------------------------------------ task.yaml: templates
for i, src in enumerate(
    [
        "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__['os'].system('touch MARKER') }}",
        "{{ input.__class__ }}",
        "{{ demos.__len__() }}",
        "{{ self._TemplateReference__context }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__ }}",
        "{{ input['__class__'] }}",
        "{{ (demos|attr('__class__')) }}",
        "{{ labels.append('x') }}",
        "{{ demos.pop() }}",
    ]
):
    case(f"template-sandbox-{i}", template(src), CLIMB, "mine", "prompt.templates", "Fix")
for i, src in enumerate(
    [
        "{{ input ",
        "{% for d in demos %}{{ d.input }}",
        "{% endfor %}",
        "{{ }}",
        "{% if %}x{% endif %}",
        "{{ input | nosuchfilter }}",
    ]
):
    case(f"template-syntax-{i}", template(src), CLIMB, "mine", "line", "Fix")
for i, src in enumerate(["{{ nonsense }}", "{{ demo.input }}", "{{ input.missing.deeper }}"]):
    case(f"template-unknown-{i}", template(src), CLIMB, "mine", "unknown variable", "Fix")
# ------------------------------------------------------------------ task.yaml: other fields
YAML = [
    ("documents-missing", yaml_add("documents: no-such-folder"), "documents", "does not exist"),
    ("split-sum", yaml_edit("holdout: 0.3", "holdout: 0.4"), "split", "sum"),
    (
        "split-holdout-zero",
        yaml_edit("dev: 0.2, holdout: 0.3", "dev: 0.5, holdout: 0"),
        "split.holdout",
        "greater",
    ),
    ("split-negative", yaml_edit("train: 0.5", "train: -0.5"), "split.train", "greater"),
    ("leakage-near-2", yaml_add("leakage: {near_duplicate: 2}"), "leakage.near_duplicate", "less"),
    ("leakage-mode", yaml_add("leakage: {mode: ignore}"), "leakage.mode", "refuse"),
    ("eval-repeats", yaml_edit("repeats: 3", "repeats: -1"), "eval.repeats", "greater"),
    ("eval-repeats-big", yaml_edit("repeats: 3", "repeats: 1000"), "eval.repeats", "less"),
    ("eval-bootstrap", yaml_edit("bootstrap: 200", "bootstrap: 10"), "eval.bootstrap", "greater"),
    (
        "eval-temperature",
        yaml_edit("repeats: 3", "repeats: 3, temperature: 9"),
        "eval.temperature",
        "less",
    ),
    (
        "eval-max-chars",
        yaml_edit("repeats: 3", "repeats: 3, max_input_chars: 1"),
        "eval.max_input_chars",
        "greater",
    ),
    (
        "eval-max-new",
        yaml_edit("repeats: 3", "repeats: 3, max_new_tokens: 0"),
        "eval.max_new_tokens",
        "greater",
    ),
    (
        "eval-min-holdout-0",
        yaml_edit("min_holdout: 5", "min_holdout: 0"),
        "eval.min_holdout",
        "greater",
    ),
    (
        "eval-min-holdout-big",
        yaml_edit("min_holdout: 5", "min_holdout: 1000"),
        "eval.min_holdout",
        "at least 1000",
    ),
    ("volume-huge", yaml_add("volume: {calls_per_day: 1e300}"), "volume.calls_per_day", "less"),
    ("volume-tiny", yaml_add("volume: {calls_per_day: 1e-300}"), "volume.calls_per_day", "greater"),
    ("volume-zero", yaml_add("volume: {calls_per_day: 0}"), "volume.calls_per_day", "greater"),
    ("volume-text", yaml_add("volume: {calls_per_day: lots}"), "volume.calls_per_day", "number"),
    ("unknown-key", yaml_add("labelz: [a, b]"), "labelz", "known keys"),
    ("unknown-kind", yaml_edit("kind: classify", "kind: sorting"), "kind", "classify"),
    ("bad-name", yaml_edit("name: tiny", "name: 'tiny task!'"), "name", "letters"),
    (
        "no-data",
        yaml_edit("data: {path: data.jsonl, id: id, input: text, output: label}\n", ""),
        "data",
        "missing",
    ),
    ("data-file-missing", yaml_edit("path: data.jsonl", "path: nope.jsonl"), "nope.jsonl", "Fix"),
    (
        "data-format",
        yaml_edit("path: data.jsonl", "path: data.jsonl, format: xml"),
        "data.format",
        "jsonl",
    ),
    ("rung-unknown", yaml_add("rungs: {zero-shoot: {}}"), "zero-shoot", "zero-shot"),
    (
        "rung-config-key",
        yaml_add("rungs: {few-shot: {kk: [2]}}"),
        "rungs.few-shot.kk",
        "known keys",
    ),
    (
        "lora-layers",
        yaml_add("rungs: {lora: {layers: bottom-half}}"),
        "rungs.lora.layers",
        "top-half",
    ),
    ("lora-layers-empty", yaml_add("rungs: {lora: {layers: []}}"), "rungs.lora.layers", "least 1"),
    (
        "lora-layers-negative",
        yaml_add("rungs: {lora: {layers: [3, -1]}}"),
        "rungs.lora.layers",
        "greater than or equal to 0",
    ),
    (
        "model-concurrency",
        yaml_add("models: {m: {engine: fake, concurrency: 0}}"),
        "models.m.concurrency",
        "greater",
    ),
    (
        "model-timeout",
        yaml_add("models: {m: {engine: fake, timeout: -1}}"),
        "models.m.timeout",
        "greater",
    ),
    (
        "model-retries",
        yaml_add("models: {m: {engine: fake, max_retries: 99}}"),
        "models.m.max_retries",
        "less",
    ),
    ("model-api", yaml_add("models: {m: {engine: fake, api: grpc}}"), "models.m.api", "chat"),
    ("knowledge", yaml_add("knowledge: sometimes"), "knowledge", "stable"),
    ("scope", yaml_add("scope: everything"), "field `scope`", "'single-task' or 'shared'"),
    (
        "forgetting-text-missing",
        yaml_add("forgetting: {text: notes.txt}"),
        "field `forgetting.text`",
        "notes.txt",
        "bundled",
    ),
    (
        "forgetting-key",
        yaml_add("forgetting: {file: notes.txt}"),
        "forgetting.file",
        "known keys here: text",
    ),
    (
        "adjacent-missing",
        yaml_add("rungs: {lora: {adjacent: gone.txt}}"),
        "field `rungs.lora.adjacent`",
        "gone.txt",
    ),
    ("yaml-syntax", yaml_add("bar: [unclosed"), "task.yaml", "line"),
    (
        "yaml-not-mapping",
        lambda t: (t / "task.yaml").write_text("- a\n- b\n"),
        "task.yaml",
        "mapping",
    ),
    ("yaml-empty", lambda t: (t / "task.yaml").write_text(""), "task.yaml", "empty"),
    (
        "schema-on-classify-bad",
        yaml_add("output_schema: {type: string}"),
        "output_schema",
        "object",
    ),
]
for name, edit, *needles in YAML:
    case(f"yaml-{name}", edit, CLIMB, *needles)
# ------------------------------------------------------------------ data files
ROW = {"id": "x", "text": "hello", "label": "work"}
DATA = [
    ("holdout-1-row", few(1), "holdout", "eval.min_holdout", "±"),
    ("holdout-3-rows", few(3), "holdout", "eval.min_holdout", "±"),
    ("holdout-10-rows", few(10), "holdout", "eval.min_holdout", "Fix"),
    (
        "csv-dup-header",
        data_rows(CSV_HEAD, "data.csv"),
        "data.csv",
        "'text' in columns 2, 3",
        "Fix",
    ),
    (
        "csv-dup-header-label",
        data_rows("id,text,label,label\n1,a,work,spam\n", "data.csv"),
        "'label' in columns 3, 4",
    ),
    ("csv-no-header", data_rows("", "data.csv"), "data.csv"),
    (
        "csv-extra-field",
        data_rows("id,text,label\n1,a,work,extra\n", "data.csv"),
        "row 2",
        "more fields",
    ),
    ("jsonl-bad-line", data_rows(json.dumps(ROW) + "\n{not json\n"), "line 2", "data.jsonl"),
    (
        "jsonl-unknown-label",
        data_rows([ROW, {**ROW, "id": "y", "label": "wrok"}]),
        "wrok",
        "labels",
    ),
    (
        "jsonl-empty-input",
        data_rows([ROW, {**ROW, "id": "y", "text": "  "}]),
        "line/row 2",
        "empty",
    ),
    ("jsonl-dup-id", data_rows([ROW, ROW]), "duplicate id", "line/row 2"),
    ("jsonl-no-label-col", data_rows([{"id": "x", "text": "t"}]), "label", "line"),
    ("jsonl-no-input-col", data_rows([{"id": "x", "body": "t", "label": "work"}]), "text", "line"),
    ("jsonl-no-id-col", data_rows([{"text": "t", "label": "work"}]), "id", "line"),
    ("jsonl-empty-id", data_rows([{**ROW, "id": " "}]), "empty id"),
    ("jsonl-empty-label", data_rows([{**ROW, "label": ""}]), "line/row 1"),
    ("json-not-list", data_rows('{"a": 1}', "data.json"), "data.json"),
    ("jsonl-empty-file", data_rows(""), "data.jsonl"),
    (
        "jsonl-binary",
        lambda t: (t / "data.jsonl").write_bytes(b"\xff\xfe\x00garbage\x81"),
        "data.jsonl",
    ),
]
for name, edit, *needles in DATA:
    case(f"data-{name}", edit, CLIMB, *needles)
# ------------------------------------------------------------------ climb / eval flags
FLAGS = [
    ("rungs-comma", ("climb", T, "--model", "fake", "--rungs", ","), "--rungs", "names no rung"),
    (
        "rungs-commas",
        ("climb", T, "--model", "fake", "--rungs", " , ,"),
        "--rungs",
        "names no rung",
    ),
    ("rungs-empty", ("climb", T, "--model", "fake", "--rungs", ""), "--rungs", "names no rung"),
    (
        "rungs-unknown",
        ("climb", T, "--model", "fake", "--rungs", "zero-shot,nope"),
        "nope",
        "zero-shot",
    ),
    (
        "variant-unknown",
        ("eval", T, "--model", "fake", "--rung", "zero-shot", "--variant", "nope"),
        "nope",
        "instructions",
    ),
    (
        "eval-variant-unknown",
        ("eval", T, "--model", "fake", "--rung", "few-shot", "--variant", "knn-99"),
        "knn-99",
        "use one of",
    ),
    ("limit-zero", ("climb", T, "--model", "fake", "--limit", "0"), "--limit"),
    ("limit-negative", ("climb", T, "--model", "fake", "--limit", "-3"), "--limit"),
    ("limit-text", ("climb", T, "--model", "fake", "--limit", "ten"), "--limit"),
    ("seed-text", ("climb", T, "--model", "fake", "--seed", "x"), "--seed"),
    ("leakage-bad", ("climb", T, "--model", "fake", "--leakage", "ignore"), "--leakage", "refuse"),
    ("model-unknown", ("climb", T, "--model", "gpt-17"), "gpt-17", "Known"),
    (
        "model-hf-missing",
        ("climb", T, "--model", "hf:/no/such/folder"),
        "/no/such/folder",
        "config.json",
    ),
    ("model-openai-empty", ("climb", T, "--model", "openai:"), "openai:", "Known"),
    (
        "prices-missing",
        ("climb", T, "--model", "fake", "--prices", "nope.yaml"),
        "nope.yaml",
        "--prices",
    ),
    ("resume-nothing", ("climb", T, "--model", "fake", "--resume"), "no unfinished run", "Fix"),
    ("run-unknown", ("climb", T, "--model", "fake", "--run", "tiny-1"), "tiny-1", "ladder runs"),
    ("add-data-missing", ("climb", T, "--model", "fake", "--add-data", "nope.jsonl"), "nope.jsonl"),
    ("task-missing", ("climb", "/no/such/task", "--model", "fake"), "/no/such/task", "task.yaml"),
    ("eval-rung-unknown", ("eval", T, "--model", "fake", "--rung", "bogus"), "bogus", "zero-shot"),
    (
        "eval-limit-zero",
        ("eval", T, "--model", "fake", "--rung", "zero-shot", "--limit", "0"),
        "--limit",
    ),
    (
        "eval-model-unknown",
        ("eval", T, "--model", "nope-model", "--rung", "zero-shot"),
        "nope-model",
        "Known",
    ),
]
for name, argv, *needles in FLAGS:
    case(f"flag-{name}", None, argv, *needles)
# ------------------------------------------------------------------ ladder cost
COST = ("cost", "--prompt-tokens", "1000", "--tuned-prompt-tokens", "100", "--model", "gpt-4o-mini")
for vol in (
    "1e300/day",
    "1e-300/day",
    "0",
    "-5/day",
    "abc",
    "5/fortnight",
    "nan",
    "inf",
    "1e11/day",
    "1/year",
    "0.5/month",
    "1e12/month",
):
    case(f"cost-volume-{vol}", None, (*COST, "--volume", vol), "--volume", "Fix")
for flag, value in (
    ("--prompt-tokens", "1e300"),
    ("--prompt-tokens", "-1"),
    ("--output-tokens", "1e300"),
    ("--price-in", "-2"),
    ("--price-in", "1e300"),
    ("--training-cost", "1e300"),
    ("--maintenance", "-1"),
):
    case(f"cost-{flag}-{value}", None, (*COST, "--volume", "1000/day", flag, value), flag)
case("cost-missing-flags", None, ("cost", "--volume", "1000/day"), "--prompt-tokens")
case("cost-no-task", None, ("cost", "/no/such/task", "--volume", "10/day"), "/no/such/task")
case("cost-unknown-model", None, (*COST[:-1], "gpt-99", "--volume", "10/day"), "gpt-99")
# ------------------------------------------------------------------ ladder init
INIT = [
    ("missing", lambda t: None, ("init", "/no/such.csv"), "/no/such.csv"),
    (
        "dup-header",
        data_rows(CSV_HEAD, "data.csv"),
        ("init", f"{T}/data.csv", "--out", f"{T}/o"),
        "'text' in columns 2, 3",
    ),
    ("empty", data_rows("", "data.csv"), ("init", f"{T}/data.csv", "--out", f"{T}/o"), "data.csv"),
    ("bad-jsonl", data_rows("{nope\n"), ("init", f"{T}/data.jsonl", "--out", f"{T}/o"), "line 1"),
    (
        "no-such-label",
        None,
        ("init", f"{T}/data.jsonl", "--label", "nope", "--out", f"{T}/o"),
        "nope",
    ),
    (
        "no-such-input",
        None,
        ("init", f"{T}/data.jsonl", "--input", "nope", "--out", f"{T}/o"),
        "nope",
    ),
    (
        "bad-kind",
        None,
        ("init", f"{T}/data.jsonl", "--kind", "sorting", "--out", f"{T}/o"),
        "sorting",
    ),
    ("exists", None, ("init", f"{T}/data.jsonl", "--out", f"{T}"), "task.yaml", "--force"),
]
for name, edit, argv, *needles in INIT:
    case(f"init-{name}", edit, argv, *needles)


def test_the_table_is_large_enough():
    assert len(CASES) >= 120, len(CASES)
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "edit", "argv", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, edit, argv, needles, tmp_path, run_cli, monkeypatch):
    task = write_classify_task(tmp_path / "task")
    monkeypatch.chdir(tmp_path)
    if edit is not None:
        edit(task)
    before = len(Store().list_runs())
    code, out, err = run_cli(*[a.replace(T, str(task)) for a in argv])
    text = " ".join((out + err).split())
    assert code == 2, text
    assert "Traceback" not in text and 'File "' not in text, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"
    assert len(Store().list_runs()) == before, "a run was left in the store"
    assert not (tmp_path / "MARKER").exists() and not (task / "MARKER").exists()
