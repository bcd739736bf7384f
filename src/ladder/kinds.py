"""Task kinds: what an output is, how it is shown to a model, parsed back and compared.

A kind is a small object registered by name (`classify`, `extract`, `qa`; `generate` plugs in
the same way). It turns gold outputs and predictions into per-item numeric columns; metrics are
plain functions of those columns, so bootstrap resampling works for every metric alike.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections import Counter
from typing import Any, Protocol

import numpy as np

from ladder.dataset import UnknownLabel
from ladder.task import Task

Problem = tuple[tuple, str, str | None] | None


class Parsed:
    """A prediction parsed from model text: `output` is None when nothing usable was found."""

    __slots__ = ("error", "output", "valid")

    def __init__(self, output: Any, valid: bool, error: str | None = None):
        self.output, self.valid, self.error = output, valid, error


class Kind(Protocol):
    name: str
    primary_metric: str

    def check_task(self, task: Task) -> Problem: ...
    def parse_gold(self, raw: Any, task: Task) -> Any: ...
    def metric_names(self) -> list[str]: ...
    def answer_format(self, task: Task) -> str: ...
    def render_output(self, output: Any, task: Task) -> str: ...
    def parse_prediction(self, text: str, task: Task) -> Parsed: ...
    def choices(self, task: Task) -> list[str] | None: ...
    def table(self, golds: list[Any], preds: list[Parsed], task: Task) -> dict[str, np.ndarray]: ...
    def error_categories(self, gold: Any, pred: Parsed, task: Task) -> list[str]: ...


def metrics_of(kind: str, primary: str) -> list[str]:
    """A kind's metrics: those registered under `KIND/NAME` (the built-ins by `ladder.builtins`,
    more by any plugin), in registration order with the primary first. The kind owns them: its
    metric list is what the registry holds for it, not a second copy of the names."""
    from ladder.registry import registries

    names = [key.split("/", 1)[1] for key in registries().metrics if key.startswith(f"{kind}/")]
    return sorted(names, key=lambda n: n != primary)


# ---------------------------------------------------------------- classify


def _norm_label(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


class Classify:
    name = "classify"
    primary_metric = "accuracy"

    def check_task(self, task: Task) -> Problem:
        if not task.labels:
            return (
                ("labels",),
                "a classify task needs `labels` (a list, or label: description pairs).",
                "add e.g. `labels: [spam, work, personal]`.",
            )
        seen: dict[str, str] = {}
        for lab in task.labels:
            other = seen.setdefault(_norm_label(lab), lab)
            if other != lab:
                return (
                    ("labels",),
                    f"labels {other!r} and {lab!r} are the same answer once case and punctuation are ignored, so one could never be scored right.",
                    "merge them into one label, or rename one so they differ in letters or digits.",
                )
        return None

    def parse_gold(self, raw: Any, task: Task) -> str:
        if raw is None or str(raw).strip() == "":
            raise ValueError("the output (label) is empty; fill it in or remove the row.")
        value = str(raw).strip()
        if value in task.labels:
            return value
        by_norm = {_norm_label(lab): lab for lab in task.labels}
        if _norm_label(value) in by_norm:
            return by_norm[_norm_label(value)]
        raise UnknownLabel(value)

    def metric_names(self) -> list[str]:
        return metrics_of(self.name, self.primary_metric)

    def answer_format(self, task: Task) -> str:
        return "Answer with exactly one label from this list: " + ", ".join(task.labels) + "."

    def render_output(self, output: Any, task: Task) -> str:
        return str(output)

    def choices(self, task: Task) -> list[str]:
        return task.labels

    def parse_prediction(self, text: str, task: Task) -> Parsed:
        first = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
        cand = _norm_label(first)
        if not cand:
            return Parsed(None, False, "empty answer")
        by_norm = {_norm_label(lab): lab for lab in task.labels}
        if cand in by_norm:
            return Parsed(by_norm[cand], True)
        # the label as the leading words ("work. This is a meeting request")
        for norm, lab in sorted(by_norm.items(), key=lambda kv: -len(kv[0])):
            if cand.startswith(norm + " ") or cand == norm:
                return Parsed(lab, True)
        close = difflib.get_close_matches(cand.split(" ")[0], list(by_norm), n=1, cutoff=0.8)
        if close:
            return Parsed(by_norm[close[0]], True)
        return Parsed(None, False, f"not a label: {first.strip()[:60]!r}")

    def table(self, golds, preds, task) -> dict[str, np.ndarray]:
        index = {lab: i for i, lab in enumerate(task.labels)}
        return {
            "gold": np.array([index[g] for g in golds], dtype=np.int64),
            "pred": np.array(
                [index.get(p.output, -1) if p.valid else -1 for p in preds], dtype=np.int64
            ),
            "n_labels": np.array([len(task.labels)]),
        }

    def error_categories(self, gold, pred: Parsed, task) -> list[str]:
        if not pred.valid:
            return [f"{gold} → (invalid answer)"]
        return [] if pred.output == gold else [f"{gold} → {pred.output}"]


def confusion(table: dict[str, np.ndarray], idx: np.ndarray | None = None) -> np.ndarray:
    """Rows gold, columns predicted; the last column counts invalid answers."""
    k = int(table["n_labels"][0])
    gold, pred = table["gold"], table["pred"]
    if idx is not None:
        gold, pred = gold[idx], pred[idx]
    pred = np.where(pred < 0, k, pred)
    return np.bincount(gold * (k + 1) + pred, minlength=k * (k + 1)).reshape(k, k + 1)


# ---------------------------------------------------------------- extract


def find_json_object(text: str) -> str | None:
    """The first balanced {...} in text, skipping braces inside strings."""
    start = text.find("{")
    while start != -1:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of nested JSON: {"customer": {"name": "A"}} -> {"customer.name": "A"}."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def leaves(obj: Any) -> dict[str, Any]:
    """The (field path, value) pairs scored: an empty object has none, so extracting anything
    from an input whose gold is `{}` is over-extraction (a false positive), never a free pass."""
    return flatten(obj) if isinstance(obj, dict) and obj else {}


def _norm_value(v: Any) -> Any:
    if isinstance(v, str):
        return " ".join(v.lower().split())
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, list):
        return json.dumps([_norm_value(x) for x in v], sort_keys=True)
    if isinstance(v, dict):
        return json.dumps({k: _norm_value(x) for k, x in v.items()}, sort_keys=True)
    return v


class Extract:
    name = "extract"
    primary_metric = "field_f1"

    def _validator(self, task: Task):
        return task.schema_validator

    def check_task(self, task: Task) -> Problem:
        if task.schema is None:
            return (
                ("output_schema",),
                "an extract task needs `output_schema` (a JSON Schema object, inline or a .json file).",
                "add `output_schema: schema.json`.",
            )
        return None

    def parse_gold(self, raw: Any, task: Task) -> dict:
        value = raw
        if isinstance(raw, str):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"the output is not valid JSON ({exc.msg}); write the gold object as JSON."
                ) from None
        if not isinstance(value, dict):
            raise ValueError(f"the output must be a JSON object, got {type(value).__name__}.")
        err = next(iter(self._validator(task).iter_errors(value)), None)
        if err is not None:
            at = "/".join(map(str, err.absolute_path)) or "(root)"
            raise ValueError(
                f"the gold output does not match output_schema at {at}: {err.message}. Fix the row or the schema."
            )
        return value

    def metric_names(self) -> list[str]:
        return metrics_of(self.name, self.primary_metric)

    def answer_format(self, task: Task) -> str:
        return (
            "Answer with one JSON object on a single line that matches this JSON Schema:\n"
            + json.dumps(task.schema, ensure_ascii=False)
        )

    def render_output(self, output: Any, task: Task) -> str:
        return json.dumps(output, ensure_ascii=False)

    def choices(self, task: Task) -> None:
        return None

    def parse_prediction(self, text: str, task: Task) -> Parsed:
        blob = find_json_object(text)
        if blob is None:
            return Parsed(None, False, "no JSON object in the answer")
        try:
            obj = json.loads(blob)
        except json.JSONDecodeError as exc:
            return Parsed(None, False, f"invalid JSON ({exc.msg})")
        err = next(iter(self._validator(task).iter_errors(obj)), None)
        if err is not None:
            at = "/".join(map(str, err.absolute_path)) or "(root)"
            return Parsed(obj, False, f"schema violation at {at}: {err.message[:80]}")
        return Parsed(obj, True)

    def table(self, golds, preds, task) -> dict[str, np.ndarray]:
        tp, npred, ngold, exact, valid = [], [], [], [], []
        for gold, pred in zip(golds, preds):
            g = {k: _norm_value(v) for k, v in leaves(gold).items()}
            p = {k: _norm_value(v) for k, v in leaves(pred.output).items()}
            tp.append(sum(1 for k, v in p.items() if k in g and g[k] == v))
            npred.append(len(p))
            ngold.append(len(g))
            exact.append(pred.valid and p == g)
            valid.append(pred.valid)
        return {
            "tp": np.array(tp, dtype=np.float64),
            "npred": np.array(npred, dtype=np.float64),
            "ngold": np.array(ngold, dtype=np.float64),
            "exact": np.array(exact, dtype=np.float64),
            "valid": np.array(valid, dtype=np.float64),
        }

    def error_categories(self, gold, pred: Parsed, task) -> list[str]:
        if pred.output is None:
            return [pred.error or "invalid output"]
        cats = []
        if not pred.valid and pred.error:
            cats.append(pred.error.split(":")[0])  # "schema violation at priority"
        g, p = leaves(gold), leaves(pred.output)
        if not g and p:
            return cats + [f"{k}: extracted, gold is {{}}" for k in p]
        if g and not p:
            return [*cats, "whole object: missing (nothing extracted)"]
        for k, v in g.items():
            if k not in p:
                cats.append(f"{k}: missing")
            elif _norm_value(p[k]) != _norm_value(v):
                cats.append(f"{k}: wrong")
        return cats

    def field_scores(self, golds, preds) -> dict[str, dict[str, float]]:
        """Per-field accuracy over the items (a field absent from the prediction counts wrong)."""
        fields: dict[str, list[int]] = {}
        for gold, pred in zip(golds, preds):
            p = leaves(pred.output)
            for k, v in leaves(gold).items():
                fields.setdefault(k, []).append(int(k in p and _norm_value(p[k]) == _norm_value(v)))
        return {k: {"accuracy": float(np.mean(v)), "n": len(v)} for k, v in fields.items()}


# ---------------------------------------------------------------- qa

UNANSWERABLE = "unanswerable"  # the answer to a question the documents do not answer
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ABSTAIN = re.compile(
    r"^(unanswerable|unknown|no answer|cannot be answered|not (stated|mentioned|specified|given|"
    r"covered|in the (passages?|documents?|documentation|context))|(i )?(do not|dont|cannot) "
    r"(know|say|answer))\b"
)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation or symbols, no articles, single spaces."""
    kept = "".join(c for c in str(text).lower() if unicodedata.category(c)[0] not in "PS")
    return " ".join(_ARTICLES.sub(" ", kept).split())


def token_f1(gold: str, pred: str) -> float:
    g, p = normalize_answer(gold).split(), normalize_answer(pred).split()
    if UNANSWERABLE in (" ".join(g), " ".join(p)) or not g or not p:
        return float(" ".join(g) == " ".join(p))  # SQuAD 2.0: no-answer is all or nothing
    common = sum((Counter(g) & Counter(p)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


class QA:
    """Questions with short free-text answers, scored by exact match and token F1 (SQuAD-style).

    A gold answer is a string, a list of acceptable strings, or null (or "unanswerable") for a
    question the documents do not answer: the expected behaviour there is to answer
    "unanswerable", and any other answer scores 0.
    """

    name = "qa"
    primary_metric = "token_f1"

    def check_task(self, task: Task) -> Problem:
        return None

    def parse_gold(self, raw: Any, task: Task) -> str | list[str]:
        if raw is None:
            return UNANSWERABLE
        values = raw if isinstance(raw, list) else [raw]
        out = [str(v).strip() for v in values]
        if not out or not all(out):
            raise ValueError(
                "the answer is empty; write it, or null for a question the documents do not answer."
            )
        out = [UNANSWERABLE if normalize_answer(v) == UNANSWERABLE else v for v in out]
        return out[0] if len(out) == 1 else out

    def metric_names(self) -> list[str]:
        return metrics_of(self.name, self.primary_metric)

    def answer_format(self, task: Task) -> str:
        return f"Answer in a few words. If the answer is not known, answer: {UNANSWERABLE}."

    def render_output(self, output: Any, task: Task) -> str:
        return str(output[0] if isinstance(output, list) else output)

    def choices(self, task: Task) -> None:
        return None

    def parse_prediction(self, text: str, task: Task) -> Parsed:
        line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
        line = re.sub(r"^(answer|a)\s*:\s*", "", line, flags=re.IGNORECASE).strip()
        if not normalize_answer(line):
            return Parsed(None, False, "empty answer")
        if _ABSTAIN.match(normalize_answer(line)):
            return Parsed(UNANSWERABLE, True)
        return Parsed(line, True)

    def scores(self, gold: Any, pred: Parsed) -> tuple[float, float]:
        """(exact match, token F1) against the best of the acceptable answers."""
        answer = pred.output if pred.valid and pred.output is not None else ""
        golds = gold if isinstance(gold, list) else [gold]
        em = max(float(normalize_answer(g) == normalize_answer(answer)) for g in golds)
        return em, max(token_f1(g, answer) for g in golds)

    def table(self, golds, preds, task) -> dict[str, np.ndarray]:
        pairs = [self.scores(g, p) for g, p in zip(golds, preds)]
        return {
            "exact": np.array([em for em, _ in pairs], dtype=np.float64),
            "f1": np.array([f1 for _, f1 in pairs], dtype=np.float64),
            "valid": np.array([p.valid for p in preds], dtype=np.float64),
        }

    def error_categories(self, gold, pred: Parsed, task) -> list[str]:
        if not pred.valid:
            return [pred.error or "empty answer"]
        em, f1 = self.scores(gold, pred)
        if em:
            return []
        gold_none = normalize_answer(self.render_output(gold, task)) == UNANSWERABLE
        if gold_none:
            return ["answered an unanswerable question"]
        if pred.output == UNANSWERABLE:
            return ["said unanswerable, but the documents answer it"]
        return ["wrong answer" if f1 == 0 else "partly right answer"]
