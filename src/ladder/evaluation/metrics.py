"""Metrics: plain functions of a kind's per-item table, registered by name.

A table is a dict of equal-length numpy columns (plus constants such as `n_labels`) built by the
task kind. Every metric takes `(table, idx)` where `idx` selects items, which is all bootstrap
resampling needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ladder.kinds import confusion

Table = dict[str, np.ndarray]


@dataclass(frozen=True)
class Metric:
    name: str
    kinds: tuple[str, ...]
    fn: Callable[[Table, np.ndarray], float]
    description: str = ""


def _sel(table: Table, key: str, idx: np.ndarray) -> np.ndarray:
    return table[key][idx]


def accuracy(t: Table, idx: np.ndarray) -> float:
    return float(np.mean(_sel(t, "gold", idx) == _sel(t, "pred", idx))) if len(idx) else 0.0


def label_validity(t: Table, idx: np.ndarray) -> float:
    return float(np.mean(_sel(t, "pred", idx) >= 0)) if len(idx) else 0.0


def per_label_prf(t: Table, idx: np.ndarray | None = None) -> np.ndarray:
    """(k, 4) array: precision, recall, f1, support per label; invalid answers count as misses."""
    cm = confusion(t, idx)
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm[:, :k].sum(0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(predicted > 0, tp / predicted, 0.0)
        r = np.where(support > 0, tp / support, 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return np.stack([p, r, f, support], axis=1)


def macro_f1(t: Table, idx: np.ndarray) -> float:
    """Mean F1 over labels that occur as gold or prediction in the selected items."""
    cm = confusion(t, idx)
    k = cm.shape[0]
    present = (cm.sum(1) > 0) | (cm[:, :k].sum(0) > 0)
    if not present.any():
        return 0.0
    return float(per_label_prf(t, idx)[present, 2].mean())


def field_f1(t: Table, idx: np.ndarray) -> float:
    """Micro F1 over (field path, value) pairs of nested outputs."""
    tp = _sel(t, "tp", idx).sum()
    denom = _sel(t, "npred", idx).sum() + _sel(t, "ngold", idx).sum()
    if not denom:  # every gold is {} and nothing was extracted: right, not 0
        return 1.0 if len(idx) else 0.0
    return float(2 * tp / denom)


def exact_match(t: Table, idx: np.ndarray) -> float:
    return float(np.mean(_sel(t, "exact", idx))) if len(idx) else 0.0


def token_f1(t: Table, idx: np.ndarray) -> float:
    """Mean SQuAD token F1 of free-text answers."""
    return float(np.mean(_sel(t, "f1", idx))) if len(idx) else 0.0


def json_validity(t: Table, idx: np.ndarray) -> float:
    return float(np.mean(_sel(t, "valid", idx))) if len(idx) else 0.0


BUILTIN_METRICS = [
    Metric("accuracy", ("classify",), accuracy, "share of items whose label is right"),
    Metric("macro_f1", ("classify",), macro_f1, "mean per-label F1"),
    Metric("validity", ("classify",), label_validity, "share of answers that are a label"),
    Metric("field_f1", ("extract",), field_f1, "micro F1 over (field, value) pairs"),
    Metric("exact_match", ("extract",), exact_match, "share of outputs equal to the gold object"),
    Metric(
        "validity", ("extract",), json_validity, "share of outputs that parse and match the schema"
    ),
    Metric("token_f1", ("qa",), token_f1, "mean token F1 against the gold answer (SQuAD)"),
    Metric(
        "exact_match", ("qa",), exact_match, "share of answers equal to the gold after normalising"
    ),
    Metric("validity", ("qa",), json_validity, "share of non-empty answers"),
]


def metric_for(kind: str, name: str) -> Metric:
    from ladder.registry import registries

    return registries().metrics.get(f"{kind}/{name}")


def n_items(table: Table) -> int:
    return max(len(v) for k, v in table.items() if k != "n_labels")
