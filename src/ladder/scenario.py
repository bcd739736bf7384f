"""Cost scenarios: a prompted option against a fine-tuned one, with everything either costs.

Pure arithmetic (no I/O), shown step by step by `ladder cost`. Each option is served by an API
(tokens x list price) or self-hosted (seconds x $/hour) and may carry one-time costs that recur
at every retraining: training compute (hardware hours x $/hour, the hours measured or estimated
from 6 x parameters x training tokens FLOPs at a stated MFU), labelling, engineering hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ladder.economics import DAYS_PER_MONTH, Option, break_even, monthly_cost
from ladder.prices import HardwarePrice

FLOPS_PER_PARAM_TOKEN = 6  # forward 2 + backward 4 (full fine-tune; LoRA skips ~1/3 of it)
DEFAULT_MFU = 0.35  # model FLOPs utilisation a tuned trainer reaches on datacentre GPUs


@dataclass(frozen=True)
class TrainingCost:
    """Hardware time for one training: how many hours on how many units at what rate."""

    kind: str
    units: int  # GPUs, or vCPUs for a kind priced per vCPU-hour
    hours: float
    per_unit_hour: float
    basis: str  # "measured" or the FLOPs estimate, spelled out

    @property
    def cost(self) -> float:
        return self.hours * self.units * self.per_unit_hour


def unit_rate(hw: HardwarePrice) -> float:
    """$ per hour of one unit: a GPU, or one vCPU of a CPU machine."""
    if hw.per_hour is not None:
        return hw.per_hour
    assert hw.per_vcpu_hour is not None  # HardwarePrice holds exactly one of the two rates
    return hw.per_vcpu_hour


def estimated_hours(params: float, tokens: float, units: int, peak_tflops: float, mfu: float):
    """Hours for 6·N·T FLOPs on `units` devices of `peak_tflops` each at `mfu` utilisation."""
    flops = FLOPS_PER_PARAM_TOKEN * params * tokens
    return flops / (units * peak_tflops * 1e12 * mfu) / 3600


def training_cost(kind: str, hw: HardwarePrice, units: int, hours=None, estimate=None):
    """A `TrainingCost` from measured hours, or from an estimate (params, tokens, mfu)."""
    if hours is not None:
        return TrainingCost(kind, units, hours, unit_rate(hw), "measured")
    params, tokens, mfu = estimate
    assert hw.peak_tflops is not None  # callers refuse an estimate without it (`ladder cost`)
    h = estimated_hours(params, tokens, units, hw.peak_tflops, mfu)
    basis = (
        f"estimated: 6 × {params:.3g} params × {tokens:.3g} tokens = "
        f"{FLOPS_PER_PARAM_TOKEN * params * tokens:.3g} FLOP ÷ ({units} × "
        f"{hw.peak_tflops:g} TFLOP/s × {100 * mfu:.0f}% MFU)"
    )
    return TrainingCost(kind, units, h, unit_rate(hw), basis)


def payback_days(tuned: Option, prompted: Option, calls_per_day: float) -> float | None:
    """Days until the fine-tune's extra one-time cost is repaid by its daily saving.

    0.0 when there is nothing extra to repay and it saves from the first call; None when it
    never repays (it does not save per day at this volume).
    """
    upfront = tuned.one_time - prompted.one_time
    daily = (prompted.per_call - tuned.per_call) * calls_per_day - (
        tuned.monthly_fixed - prompted.monthly_fixed
    ) / DAYS_PER_MONTH
    if daily <= 0:
        return 0.0 if upfront < 0 and daily == 0 else None
    return max(0.0, upfront / daily)


def compare(tuned: Option, prompted: Option, calls_per_day: float, months: float) -> dict:
    """Monthly cost of both, the saving, the payback and the crossover volume."""
    n = calls_per_day * DAYS_PER_MONTH
    before, after = monthly_cost(prompted, n, months), monthly_cost(tuned, n, months)
    be = break_even(tuned, prompted, months)
    return {
        "calls_per_month": n,
        "monthly_before": before,
        "monthly_after": after,
        "saving_per_month": before - after,
        "saving_per_year": 12 * (before - after),
        "payback_days": payback_days(tuned, prompted, calls_per_day),
        "break_even_per_month": be,
        "break_even_per_day": None if be is None else be / DAYS_PER_MONTH,
    }


def saving_words(saving_per_month: float, money) -> str:
    """'$42,500/month ($510,000/year)' or 'costs $242/month more ($2,904/year)', never '$-242'."""
    s = abs(saving_per_month)
    if saving_per_month >= 0:
        return f"{money(s)}/month ({money(12 * s)}/year)"
    return f"costs {money(s)}/month more ({money(12 * s)}/year)"


def payback_words(days: float | None, calls_per_day: float, human, months: float) -> str:
    """'in 6.0 days at 500k calls/day', and whether that is within one retraining cadence."""
    at = f"at {human(calls_per_day)} calls/day"
    if days is not None and days > months * DAYS_PER_MONTH:
        return (
            f"in {days:,.0f} days {at}: longer than the {months:g}-month retraining cadence, "
            "so it never pays back"
        )
    if days is None:
        return f"never {at} (the fine-tune does not save per day)"
    if days == 0:
        return f"from the first call {at} (nothing extra to repay)"
    if days < 1 / 24:
        return f"in {max(1, round(24 * 60 * days))} minutes {at}"
    if days < 1:
        return f"in {24 * days:.1f} hours {at}"
    return f"in {days:,.0f} days {at}" if days >= 10 else f"in {days:.1f} days {at}"


def crossover_words(r: dict[str, Any], human) -> str:
    be = r["break_even_per_day"]
    if be is None:
        return "never (the fine-tuned call is not cheaper)"
    if be == 0:
        return "from the first call (nothing one-time or fixed to repay)"
    return f"{human(be)} calls/day ({human(r['break_even_per_month'])}/month)"
