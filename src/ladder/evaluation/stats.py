"""Statistics for scorecards: bootstrap confidence intervals, percentiles, consistency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np


def bootstrap_ci(
    fn: Callable[[dict, np.ndarray], float],
    table: dict,
    n: int,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap interval of `fn` over `n` items."""
    full = np.arange(n)
    point = fn(table, full)
    if n == 0:
        return point, point, point
    rng = np.random.default_rng(seed)
    draws = np.fromiter(
        (fn(table, rng.integers(0, n, n)) for _ in range(resamples)), dtype=float, count=resamples
    )
    alpha = (1 - level) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return point, float(lo), float(hi)


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def consistency(answers_per_item: list[list[object]]) -> float | None:
    """Mean share of an item's repeated answers that agree with its most common answer."""
    shares = []
    for answers in answers_per_item:
        if len(answers) < 2:
            continue
        keys = [repr(a) for a in answers]
        shares.append(Counter(keys).most_common(1)[0][1] / len(keys))
    return float(np.mean(shares)) if shares else None


def sample_labels(
    logprobs: np.ndarray, temperature: float, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw label indices from softmax(logprobs / T): sampling restricted to the label set."""
    z = logprobs / max(temperature, 1e-6)
    p = np.exp(z - z.max())
    p /= p.sum()
    return rng.choice(len(p), size=draws, p=p)
