"""Statistics for scorecards: bootstrap confidence intervals, percentiles, consistency."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np


def bootstrap_draws(
    fn: Callable[[dict, np.ndarray], float],
    table: dict,
    n: int,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, np.ndarray]:
    """Point estimate of `fn` over `n` items and its bootstrap resamples (empty when n = 0)."""
    point = fn(table, np.arange(n))
    if n == 0:
        return point, np.empty(0)
    rng = np.random.default_rng(seed)
    draws = np.fromiter(
        (fn(table, rng.integers(0, n, n)) for _ in range(resamples)), dtype=float, count=resamples
    )
    return point, draws


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
    point, draws = bootstrap_draws(fn, table, n, resamples=resamples, seed=seed)
    return (point, *interval(draws, point, level))


def interval(draws: np.ndarray, point: float, level: float = 0.95) -> tuple[float, float]:
    if draws.size == 0:
        return point, point
    alpha = (1 - level) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return float(lo), float(hi)


def share_at_least(draws: np.ndarray, threshold: float) -> float | None:
    """The bootstrap probability that the metric is at least `threshold` (None without draws)."""
    return None if draws.size == 0 else float(np.mean(draws >= threshold - 1e-12))


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


# ---------------------------------------------------------------- paired comparisons


def paired_bootstrap(
    fn: Callable[[dict, np.ndarray], float],
    table_a: dict,
    table_b: dict,
    n: int,
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """`fn(b) - fn(a)` on the same n items, resampled jointly: difference, CI and p-value.

    The two-sided p-value comes from the bootstrap distribution shifted to the null (centred at
    0): the share of resampled differences at least as far from the observed one as 0 is.
    """
    full = np.arange(n)
    diff = fn(table_b, full) - fn(table_a, full)
    if n == 0:
        return {"diff": diff, "ci_low": diff, "ci_high": diff, "p": 1.0}
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, n, n)
        draws[i] = fn(table_b, idx) - fn(table_a, idx)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    extreme = np.sum(np.abs(draws - diff) >= abs(diff) - 1e-12)
    p = 1.0 if diff == 0 else float((extreme + 1) / (resamples + 1))
    return {"diff": float(diff), "ci_low": float(lo), "ci_high": float(hi), "p": min(1.0, p)}


def mcnemar(a_correct: np.ndarray, b_correct: np.ndarray, exact_below: int = 25) -> dict:
    """McNemar's test on paired right/wrong outcomes.

    Exact two-sided binomial test on the discordant pairs when there are fewer than
    `exact_below` of them, else the chi-squared statistic with continuity correction (1 dof).
    """
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        return {"only_a": 0, "only_b": 0, "statistic": 0.0, "p": 1.0, "method": "exact"}
    if n < exact_below:
        k = min(only_a, only_b)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        return {
            "only_a": only_a,
            "only_b": only_b,
            "statistic": float(k),
            "p": min(1.0, 2 * tail),
            "method": "exact",
        }
    chi2 = (abs(only_a - only_b) - 1) ** 2 / n
    return {
        "only_a": only_a,
        "only_b": only_b,
        "statistic": float(chi2),
        "p": math.erfc(math.sqrt(chi2 / 2)),
        "method": "chi2",
    }


def format_p(p: float) -> str:
    for bound in (0.001, 0.01):
        if p < bound:
            return f"p < {bound:g}"
    return f"p = {p:.2f}"


# ---------------------------------------------------------------- how much more evidence


def _z(q: float) -> float:
    """The standard normal quantile."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


def settle_size(
    n: int, diff: float, discordance: float | None, *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Hold-out size at which a paired difference like the observed one would be significant.

    McNemar's test in its normal approximation (Connor 1987): with discordance `pd` (share of
    items the two options answer differently) and difference `d` (share only B gets right minus
    share only A gets right), n = (z_a·√pd + z_b·√(pd − d²))² / d². Without a discordance (not a
    right/wrong task) use `settle_size_from_ci`. None when d = 0: no sample of any size is
    expected to separate two options that differ by nothing.
    """
    d = abs(diff)
    if d <= 0 or discordance is None or discordance <= 0:
        return None
    za, zb = _z(1 - alpha / 2), _z(power)
    pd = max(discordance, d)
    need = (za * math.sqrt(pd) + zb * math.sqrt(max(pd - d * d, 0.0))) ** 2 / (d * d)
    return max(math.ceil(need), n)


def settle_size_from_ci(
    n: int, diff: float, ci_low: float, ci_high: float, *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """The same estimate from a paired bootstrap interval: its width gives the per-item spread."""
    d = abs(diff)
    if d <= 0 or n <= 0 or ci_high <= ci_low:
        return None
    se = (ci_high - ci_low) / (2 * _z(0.975))
    need = n * ((_z(1 - alpha / 2) + _z(power)) * se / d) ** 2
    return max(math.ceil(need), n)
