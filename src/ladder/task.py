"""The task: `task.yaml`, validated at the edge with errors that name the line and the fix.

A task folder holds `task.yaml` plus its data (and optionally documents). Example::

    # ladder climb examples/email-triage
    name: email-triage
    kind: classify
    instructions: Sort an incoming email into exactly one category.
    labels: {spam: ..., marketing: ..., personal: ..., work: ..., automated: ...}
    data: {path: emails.jsonl, id: id, input: [from, subject, body], output: label}
    bar: {metric: accuracy, threshold: 0.8}
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ladder.errors import TaskError
from ladder.prices import PricesSpec
from ladder.yamlio import explain, line_of, load_yaml, read_text

TASK_FILE = "task.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class DataSpec(Strict):
    """Where the examples are and which columns hold what."""

    path: str = Field(
        description="JSONL, JSON, CSV, TSV or Parquet file, or a Hugging Face dataset folder, "
        "relative to the task folder"
    )
    format: Literal["auto", "jsonl", "json", "csv", "tsv", "parquet", "arrow", "hf"] = "auto"
    split: str | None = Field(
        None, description="the dataset's split to read (default: its only split, or `train`)"
    )
    label_names: list[str] | None = Field(
        None, description="names of the integer class ids 0, 1, ... in the output column"
    )
    id: str | None = Field(
        None, description="column with a unique id; default: a hash of the input"
    )
    input: str | list[str] = Field("input", description="column(s) that make the model input")
    output: str | None = Field("output", description="column with the gold output")
    meta: list[str] = Field(default_factory=list, description="extra columns kept as metadata")


class SplitSpec(Strict):
    """Deterministic split by a hash of each example id (stable as data grows)."""

    train: float = Field(0.6, ge=0, le=1)
    dev: float = Field(0.15, ge=0, le=1)
    holdout: float = Field(0.25, gt=0, le=1)
    salt: str = "ladder-v1"

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitSpec:
        total = self.train + self.dev + self.holdout
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + dev + holdout must be 1.0 (they sum to {total:g})")
        return self


class LeakageSpec(Strict):
    """What to do with hold-out inputs that also appear (exactly or nearly) in train/dev."""

    mode: Literal["refuse", "report", "drop"] = "refuse"
    near_duplicate: float = Field(0.8, gt=0, le=1, description="word 3-gram Jaccard threshold")


class BarSpec(Strict):
    """The acceptance bar: `climb` stops at the first rung whose hold-out metric reaches it."""

    metric: str
    threshold: float
    confidence: float = Field(
        0.95,
        ge=0.5,
        lt=1,
        description="'bar met' means P(hold-out metric ≥ threshold) ≥ this, by the bootstrap",
    )


class VolumeSpec(Strict):
    # 1 call/month to 1e10 calls/day, as `ladder cost --volume` (ladder.economics)
    calls_per_day: float = Field(ge=1 / 30.44, le=1e10)


class EvalSpec(Strict):
    repeats: int = Field(3, ge=0, le=50, description="sampled repeats for consistency (0 = off)")
    temperature: float = Field(0.7, ge=0, le=2)
    consistency_sample: int = Field(
        16, ge=1, description="items re-generated per repeat (generated answers)"
    )
    bootstrap: int = Field(1000, ge=100, le=100000)
    seed: int = 0
    max_input_chars: int = Field(1500, ge=50, description="longer inputs are truncated in prompts")
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    min_holdout: int = Field(
        30, ge=1, le=1_000_000, description="fewest hold-out examples a decision may stand on"
    )


class ModelSpec(Strict):
    """A model a task can name, beyond the built-in registry."""

    engine: str = Field(description="hf | openai | vllm | fake | a plugin's engine")
    path: str | None = Field(None, description="hf: a local model folder")
    model: str | None = Field(None, description="openai: the model name the endpoint expects")
    base_url: str | None = None
    api: Literal["completions", "chat"] = "chat"
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    concurrency: int = Field(8, ge=1, le=256)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    options: dict[str, Any] = Field(default_factory=dict)


class PromptSpec(Strict):
    """How prompts name things, and extra templates to try as variants."""

    input_name: str = Field("Input", description="what the input is called in prompts, e.g. Email")
    output_name: str = Field("Answer", description="the answer cue, e.g. Label")
    templates: dict[str, str] = Field(
        default_factory=dict, description="extra Jinja2 templates tried as variants"
    )


class ForgettingSpec(Strict):
    """The text gate 4 measures forgetting on: next-token loss with the adapter off and on."""

    text: str | None = Field(
        None,
        description="plain-text file relative to the task folder, close to what else the model "
        "must keep doing; default: a bundled general-English text",
    )


class TaskSpec(Strict):
    name: str
    kind: str
    description: str = ""
    instructions: str = ""
    labels: list[str] | dict[str, str] | None = None
    output_schema: dict[str, Any] | str | None = Field(
        None, description="extract: JSON Schema of the output, inline or a .json file"
    )
    data: DataSpec
    unlabeled: DataSpec | None = Field(None, description="inputs without gold outputs (distill)")
    documents: str | None = Field(None, description="folder of documents (rag, long-context)")
    split: SplitSpec = Field(default_factory=SplitSpec)
    leakage: LeakageSpec = Field(default_factory=LeakageSpec)
    bar: BarSpec | None = None
    volume: VolumeSpec | None = None
    knowledge: Literal["stable", "volatile"] = "stable"
    scope: Literal["single-task", "shared"] = Field(
        "single-task",
        description="single-task: the adapter is served only for this task, so forgetting is "
        "reported, not a criterion; shared: the tuned (or merged) model also serves other tasks",
    )
    forgetting: ForgettingSpec | None = None
    model: str = "gemma-3-270m"
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    rungs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    prompt: PromptSpec = Field(default_factory=PromptSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    prices: PricesSpec | None = Field(None, description="price-book overrides (ladder.prices)")

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", v):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 64), e.g. email-triage")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v):
        if v is None:
            return v
        names = list(v)
        if len(names) < 2:
            raise ValueError("a classify task needs at least 2 labels")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate labels: {', '.join(dup)}")
        for n in names:
            if not isinstance(n, str) or not n.strip():
                raise ValueError("labels must be non-empty strings")
        return v


def judged_metric(spec: TaskSpec, primary: str) -> str:
    """The one metric a task is judged on: its bar's, else `primary` (its kind's primary metric)."""
    return spec.bar.metric if spec.bar is not None else primary


class Task:
    """A validated task, resolved once at the edge: the spec, its paths, its Kind object and its
    rungs' validated settings, which downstream code reads instead of looking them up by name."""

    def __init__(
        self,
        spec: TaskSpec,
        dir: Path,
        file: Path,
        schema: dict[str, Any] | None,
        kind_impl: Any,
    ):
        self.spec = spec
        self.dir = dir
        self.file = file
        self.schema = schema
        self.kind_impl = kind_impl  # the registered Kind (ladder.kinds): parsing, metrics, prompts
        self._rung_settings: dict[str, Any] = {}  # rung -> its validated Config (rung_settings)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def metric(self) -> str:
        """The metric the task is judged on: the bar's, else the kind's primary metric."""
        return judged_metric(self.spec, self.kind_impl.primary_metric)

    @property
    def labels(self) -> list[str]:
        return list(self.spec.labels or [])

    @property
    def label_descriptions(self) -> dict[str, str]:
        labels = self.spec.labels
        return dict(labels) if isinstance(labels, dict) else {}

    @cached_property
    def schema_validator(self):
        """A jsonschema validator for `output_schema` (extract tasks), built once."""
        from jsonschema.validators import validator_for

        return validator_for(self.schema)(self.schema) if self.schema is not None else None

    def resolve(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else (self.dir / p)

    def rung_config(self, rung: str) -> dict[str, Any]:
        """task.yaml's raw `rungs.<rung>` mapping (what was written, no defaults)."""
        return dict(self.spec.rungs.get(rung, {}) or {})

    def rung_settings(self, rung: str) -> Any:
        """The rung's validated settings (its `Config`, defaults filled in), built once.

        Rungs named in task.yaml were validated by `load_task`, which names the line of a bad
        value; others get their defaults on first use. A rung without a `Config` (a plugin's)
        gets its raw mapping.
        """
        if rung not in self._rung_settings:
            from ladder.registry import registries

            regs = registries()
            config_cls = (
                getattr(regs.rungs.get(rung), "Config", None) if rung in regs.rungs else None
            )
            raw = self.rung_config(rung)
            self._rung_settings[rung] = (
                config_cls.model_validate(raw) if config_cls is not None else raw
            )
        return self._rung_settings[rung]

    # what the economics, the decision and the forgetting check read: editing these never
    # invalidates predictions (a resumed run keeps the forgetting it measured, which names its text)
    NOT_PREDICTIVE = frozenset(
        {"description", "bar", "volume", "knowledge", "scope", "forgetting", "prices"}
    )

    def config_hash(self) -> str:
        """Hash of the config that predictions depend on: a resumed run must match it."""
        spec = self.spec.model_dump(mode="json", exclude=set(self.NOT_PREDICTIVE))
        blob = json.dumps(spec, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def find_task_file(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        f = p / TASK_FILE
        if not f.exists():
            raise TaskError(
                f"no {TASK_FILE} in this folder.",
                where=p,
                fix=f"create one with `ladder init DATA.csv`, or point at the folder that has {TASK_FILE}.",
            )
        return f
    if not p.exists():
        raise TaskError(
            "task not found.",
            where=p,
            fix=f"give a task folder (with {TASK_FILE}) or the YAML file itself.",
        )
    return p


def load_task(path: str | Path) -> Task:
    """Load and validate a task folder or task.yaml."""
    from ladder.registry import registries

    file = find_task_file(path)
    data, node = load_yaml(file, TaskError)
    if data is None:
        raise TaskError(
            "the file is empty.",
            where=file,
            fix="start from `ladder init DATA.csv` or an example under examples/.",
        )
    if not isinstance(data, dict):
        raise TaskError(
            "expected a mapping of keys (name:, kind:, data: ...) at the top.", where=file
        )
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise TaskError(explain(exc, node, TaskSpec), where=file) from None

    def fail(loc: tuple, msg: str, fix: str | None = None) -> TaskError:
        line = line_of(node, loc)
        at = f"line {line}, " if line else ""
        return TaskError(f"{at}field `{'.'.join(map(str, loc))}`: {msg}", where=file, fix=fix)

    regs = registries()
    if spec.kind not in regs.kinds:
        raise fail(
            ("kind",),
            f"unknown kind {spec.kind!r}.",
            f"use one of: {', '.join(regs.kinds.names())}.",
        )
    kind = regs.kinds.get(spec.kind)
    schema = None
    if spec.output_schema is not None:
        schema = _load_schema(spec.output_schema, file, fail)
    task = Task(spec, file.parent.resolve(), file.resolve(), schema, kind)
    problem = kind.check_task(task)
    if problem:
        loc, msg, fix = problem
        raise fail(loc, msg, fix)
    if spec.bar is not None:
        _check_bar(spec, kind, fail)
    if spec.documents is not None and not task.resolve(spec.documents).is_dir():
        raise fail(
            ("documents",),
            f"the documents folder {spec.documents!r} does not exist (looked in {task.resolve(spec.documents)}).",
            "create the folder, fix the path (relative to the task folder), or remove `documents:`.",
        )
    _check_templates(spec, fail)
    task._rung_settings.update(_rung_settings(spec, regs, node, file, fail))
    _check_forgetting_text(task, fail)
    return task


def _rung_settings(spec: TaskSpec, regs, node, file: Path, fail) -> dict[str, Any]:
    """Validate each `rungs.<name>` section once, against that rung's `Config`."""
    settings: dict[str, Any] = {}
    for rung_name, cfg in spec.rungs.items():
        if rung_name not in regs.rungs:
            raise fail(("rungs", rung_name), regs.rungs.unknown_message(rung_name))
        config_cls = getattr(regs.rungs.get(rung_name), "Config", None)
        if config_cls is None:
            settings[rung_name] = dict(cfg or {})
            continue
        try:
            settings[rung_name] = config_cls.model_validate(cfg or {})
        except ValidationError as exc:
            raise TaskError(
                explain(exc, node, config_cls, prefix=("rungs", rung_name)), where=file
            ) from None
    return settings


def _check_bar(spec: TaskSpec, kind, fail) -> None:
    bar = spec.bar
    if bar is None:
        return
    metrics = kind.metric_names()
    if bar.metric not in metrics:
        raise fail(
            ("bar", "metric"),
            f"{bar.metric!r} is not a metric of {spec.kind} tasks.",
            f"use one of: {', '.join(metrics)}.",
        )
    t = bar.threshold
    if not 0 < t <= 1:  # every built-in metric is a share of items or pairs
        why = "can never be met" if t > 1 else "is met by any answer, however bad"
        raise fail(
            ("bar", "threshold"),
            f"{bar.metric} is a share between 0 and 1, so a threshold of {t:g} {why}.",
            "give a threshold in (0, 1], e.g. 0.8.",
        )


def _check_forgetting_text(task: Task, fail) -> None:
    """The forgetting text must exist before any run does (it is read only after training)."""
    spec = task.spec
    texts: list[tuple[tuple[str, ...], Any]] = [
        (("forgetting", "text"), spec.forgetting.text if spec.forgetting else None)
    ]
    texts += [(("rungs", r, "adjacent"), (c or {}).get("adjacent")) for r, c in spec.rungs.items()]
    for loc, text in texts:
        if isinstance(text, str) and not task.resolve(text).is_file():
            raise fail(
                loc,
                f"no text file {text!r} (looked in {task.resolve(text)}).",
                "fix the path (relative to the task folder), or remove it to measure forgetting "
                "on the bundled general-English text.",
            )


def _check_templates(spec: TaskSpec, fail) -> None:
    """Parse every extra prompt template at load, in the sandbox, before any run exists."""
    from ladder.sandbox import check_template

    for name, source in spec.prompt.templates.items():
        try:
            check_template(source, name)
        except TaskError as exc:
            raise fail(
                ("prompt", "templates", name), str(exc).split(" Fix: ")[0], exc.fix
            ) from None


def _load_schema(value, file: Path, fail) -> dict[str, Any]:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if isinstance(value, str):
        path = (file.parent / value) if not Path(value).is_absolute() else Path(value)
        text = read_text(path, "JSON Schema file", TaskError)
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskError(f"line {exc.lineno}: not valid JSON ({exc.msg}).", where=path) from None
        where = str(path)
    else:
        schema, where = value, None
    if not isinstance(schema, dict):
        raise fail(("output_schema",), "a JSON Schema must be an object.")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        msg = f"not a valid JSON Schema at {at}: {exc.message}."
        if where:
            raise TaskError(
                msg, where=where, fix="see https://json-schema.org/understanding-json-schema/."
            ) from None
        raise fail(
            ("output_schema", *exc.absolute_path),
            msg,
            "see https://json-schema.org/understanding-json-schema/.",
        ) from None
    if schema.get("type") not in ("object", None) or "properties" not in schema:
        raise fail(
            ("output_schema",), "the output schema must describe an object with `properties`."
        )
    return schema
