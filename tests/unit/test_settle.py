"""The "how many more examples would settle it" estimate, checked against a simulation."""

from __future__ import annotations

import numpy as np

from ladder.evaluation.stats import mcnemar, settle_size, settle_size_from_ci


def simulated_power(n: int, p_only_a: float, p_only_b: float, trials: int = 400) -> float:
    """Share of simulated hold-outs of size n where McNemar finds the difference (p < 0.05)."""
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(trials):
        u = rng.random(n)
        a = u < p_only_a  # only A right
        b = (u >= p_only_a) & (u < p_only_a + p_only_b)  # only B right
        hits += mcnemar(a, b)["p"] < 0.05
    return hits / trials


def test_the_estimate_gives_about_80_percent_power_in_simulation():
    # observed on 128 items: A alone right on 10, B alone right on 18 (not significant at n=128)
    n, only_a, only_b = 128, 10, 18
    assert (
        mcnemar(np.arange(n) < only_a, (np.arange(n) >= only_a) & (np.arange(n) < 28))["p"] > 0.05
    )
    total = settle_size(n, (only_b - only_a) / n, (only_a + only_b) / n)
    assert total is not None and total > n
    power = simulated_power(total, only_a / n, only_b / n)
    assert 0.72 <= power <= 0.88, (total, power)
    # and a quarter of that sample would rarely settle it
    assert simulated_power(total // 4, only_a / n, only_b / n) < 0.4


def test_nothing_settles_a_zero_difference():
    assert settle_size(100, 0.0, 0.2) is None
    assert settle_size_from_ci(100, 0.0, -0.1, 0.1) is None


def test_bootstrap_version_scales_with_the_interval():
    # diff 0.05 with a ±0.098 interval at n=100 → se 0.05; (2.80 × 0.05 / 0.05)² × 100 ≈ 785
    total = settle_size_from_ci(100, 0.05, 0.05 - 0.098, 0.05 + 0.098)
    assert 770 <= total <= 800
