"""Economics: $ per call from measured tokens and seconds, monthly cost, break-even volume.

Pure functions of numbers (and of a `PriceBook` for pricing scorecards): no I/O.

The cost model is linear. An option costs, per month at V calls a month::

    one_time / amortize_months + monthly_fixed + per_call * V

A prompted option has only `per_call`; a fine-tuned one adds its training (+ labelling + teacher)
cost as `one_time` and `maintenance_per_month` as `monthly_fixed`. Self-hosted compute is paid
for the seconds it runs (per-second billing, or a shared machine); an always-on machine that
idles is a fixed monthly cost: add it to `maintenance_per_month`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ladder.errors import LadderError
from ladder.prices import ModelPrice, PriceBook, PriceError

DAYS_PER_MONTH = 365.25 / 12  # calendar average: 12 months are exactly one year
PER_MILLION = 1e6
SECONDS_PER_HOUR = 3600.0


class VolumeError(LadderError):
    """A call volume that is not a positive number of calls per period."""


# ---------------------------------------------------------------- volumes

_UNITS = {"hour": 24.0, "day": 1.0, "week": 1 / 7, "month": 1 / DAYS_PER_MONTH}
_UNITS.update({"h": 24.0, "d": 1.0, "w": 1 / 7, "mo": 1 / DAYS_PER_MONTH})
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9}


# the volumes a real system can see: one call a month up to 10 billion a day (web-search scale)
MIN_CALLS_PER_DAY = 1 / DAYS_PER_MONTH
MAX_CALLS_PER_DAY = 1e10


def parse_volume(text: str | float, where: str = "--volume") -> float:
    """Calls per day from '50000', '1e6/day', '10M/month', '2.5k/hour'."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(
            r"\s*([-+]?[0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*([kmb]?)\s*(?:/\s*([a-z]+))?\s*",
            str(text).lower(),
        )
        if not m or (m.group(3) and m.group(3) not in _UNITS):
            raise VolumeError(
                f"cannot read the volume {text!r}.",
                where=where,
                fix="write calls per period, e.g. 50000/day, 1e6/day, 10M/month or 2k/hour.",
            )
        value = float(m.group(1)) * _SCALE[m.group(2)] * _UNITS[m.group(3) or "day"]
    if not math.isfinite(value) or value <= 0:
        raise VolumeError(
            f"the volume must be a positive number of calls (got {text!r}).",
            where=where,
            fix="give the calls you expect, e.g. 50000/day.",
        )
    if not MIN_CALLS_PER_DAY <= value <= MAX_CALLS_PER_DAY:
        raise VolumeError(
            f"the volume {text!r} is {value:.3g} calls/day, outside what a real system sees "
            f"(1 call/month to {MAX_CALLS_PER_DAY:.0e} calls/day).",
            where=where,
            fix="give the calls you expect, e.g. 50000/day or 10M/month.",
        )
    return value


def per_month(calls_per_day: float) -> float:
    return calls_per_day * DAYS_PER_MONTH


def human(n: float) -> str:
    """12,400 -> '12.4k'; 3.2e6 -> '3.2M'."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.3g}"


def money(x: float | None) -> str:
    """Dollars at a precision that shows the figure: $42,500 / $12.30 / $0.0049."""
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    return f"${x:.2g}" if x else "$0"


# ---------------------------------------------------------------- $ per call


def api_cost_per_call(
    tokens_in: float, tokens_out: float, price: ModelPrice, cached_in: float = 0.0
) -> float:
    """$ for one call: uncached and cached prompt tokens and generated tokens at list price."""
    cached_in = min(cached_in, tokens_in)
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    return (
        (tokens_in - cached_in) * price.input + cached_in * cached_rate + tokens_out * price.output
    ) / PER_MILLION


def self_hosted_cost_per_call(seconds_per_call: float, per_hour: float) -> float:
    """$ for one call: measured engine seconds per call x the machine's $ per hour."""
    return seconds_per_call * per_hour / SECONDS_PER_HOUR


# ---------------------------------------------------------------- options and break-even


@dataclass(frozen=True)
class Option:
    """A way to serve the task, as costs: per call, one-time, fixed per month."""

    name: str
    per_call: float
    one_time: float = 0.0
    monthly_fixed: float = 0.0


def monthly_cost(option: Option, calls_per_month: float, amortize_months: float) -> float:
    """$ per month at a volume: amortised one-time cost + fixed + per-call."""
    return (
        option.one_time / amortize_months + option.monthly_fixed + option.per_call * calls_per_month
    )


def fixed_per_month(option: Option, amortize_months: float) -> float:
    return option.one_time / amortize_months + option.monthly_fixed


def break_even(tuned: Option, prompted: Option, amortize_months: float) -> float | None:
    """Calls per month above which `tuned` costs less than `prompted`.

    0.0 when it is cheaper at every volume; None when it never becomes cheaper (its per-call
    cost is not lower). At the returned volume the two monthly cost lines cross.
    """
    extra_fixed = fixed_per_month(tuned, amortize_months) - fixed_per_month(
        prompted, amortize_months
    )
    saving = prompted.per_call - tuned.per_call
    if saving <= 0:
        return 0.0 if extra_fixed < 0 and saving == 0 else None
    return max(0.0, extra_fixed / saving)


def volume_grid(lo: float, hi: float, n: int = 60) -> list[float]:
    """`n` volumes spaced evenly on a log scale from lo to hi (calls per month)."""
    lo, hi = max(lo, 1.0), max(hi, lo * 10)
    step = (math.log10(hi) - math.log10(lo)) / (n - 1)
    return [10 ** (math.log10(lo) + i * step) for i in range(n)]


def cost_curves(
    options: list[Option], volumes: list[float], amortize_months: float
) -> dict[str, list[float]]:
    return {o.name: [monthly_cost(o, v, amortize_months) for v in volumes] for o in options}


# ---------------------------------------------------------------- the prompt-shrink arithmetic


def prompt_shrink(
    calls_per_month: float,
    tokens_before: float,
    tokens_after: float,
    tokens_out: float,
    price_before: ModelPrice,
    price_after: ModelPrice,
    one_time: float = 0.0,
    amortize_months: float = 3.0,
    maintenance: float = 0.0,
) -> dict[str, Any]:
    """A long prompt on one model vs a short prompt on a (fine-tuned) model, shown step by step."""
    before = Option("prompted", api_cost_per_call(tokens_before, tokens_out, price_before))
    after = Option(
        "fine-tuned",
        api_cost_per_call(tokens_after, tokens_out, price_after),
        one_time,
        maintenance,
    )
    m_before = monthly_cost(before, calls_per_month, amortize_months)
    m_after = monthly_cost(after, calls_per_month, amortize_months)
    be = break_even(after, before, amortize_months)
    return {
        "calls_per_month": calls_per_month,
        "input_tokens_before": calls_per_month * tokens_before,
        "input_tokens_after": calls_per_month * tokens_after,
        "input_cost_before": calls_per_month * tokens_before * price_before.input / PER_MILLION,
        "input_cost_after": calls_per_month * tokens_after * price_after.input / PER_MILLION,
        "output_cost_before": calls_per_month * tokens_out * price_before.output / PER_MILLION,
        "output_cost_after": calls_per_month * tokens_out * price_after.output / PER_MILLION,
        "per_call_before": before.per_call,
        "per_call_after": after.per_call,
        "monthly_before": m_before,
        "monthly_after": m_after,
        "saving_per_month": m_before - m_after,
        "saving_per_year": 12 * (m_before - m_after),
        "break_even_per_month": be,
        "break_even_per_day": None if be is None else be / DAYS_PER_MONTH,
    }


# ---------------------------------------------------------------- pricing a scorecard


def is_fine_tuned(card: Any) -> bool:
    """A rung of the fine-tune family (as it declares), or any card that records its training."""
    from ladder.registry import rung_family

    return rung_family(card.rung) == "fine-tune" or "training" in (card.extras or {})


def _runs_locally(engine: dict[str, Any]) -> bool:
    """Priced by the hour of the machine, as the engine declared (`engines.base.price_basis`)."""
    from ladder.engines.base import price_basis

    return price_basis(engine) == "hour"


def machine_rate(
    book: PriceBook, hardware: dict[str, Any], device: str | None, threads: int | None = None
) -> dict[str, Any]:
    """$ per hour of the machine a measurement ran on, and how it was found."""
    on_gpu = bool(device) and str(device).startswith(("cuda", "gpu"))
    if on_gpu and not hardware.get("gpu"):
        raise PriceError(
            "the run used a GPU but its provenance does not name it.",
            fix="set `prices: {machine: KIND}` in task.yaml (a kind under `hardware:` in the price book).",
        )
    kind, hw = book.machine_kind(hardware.get("gpu") if on_gpu else None)
    if hw.per_hour is not None:
        return {"kind": kind, "per_hour": hw.per_hour, "vcpus": None, "source": hw.source}
    vcpus = int(threads or hardware.get("torch_threads") or hardware.get("cores") or 1)
    assert hw.per_vcpu_hour is not None  # HardwarePrice holds exactly one of the two rates
    return {
        "kind": kind,
        "per_hour": hw.per_vcpu_hour * vcpus,
        "vcpus": vcpus,
        "source": hw.source,
    }


def _missing_price(model: str) -> PriceError:
    from ladder.prices import _where_to_add

    return PriceError(
        f"no price for the API model {model!r} in the price book.",
        fix=f"add `{model.split(':', 1)[-1]}: {{input: $/M, output: $/M}}` under `models:` in {_where_to_add()}; then `ladder report RUN` re-prices a stored run.",
    )


def call_cost(card: Any, book: PriceBook, hardware: dict[str, Any]) -> dict[str, Any]:
    """$ per call of a scorecard: API list price x measured tokens, or seconds x $/hour."""
    eng = card.engine or {}
    found = book.model(card.model, eng.get("remote_model"))
    if found:
        name, price = found
        cached = float((card.extras or {}).get("tokens_cached", 0.0))
        per_call = api_cost_per_call(card.tokens_in, card.tokens_out, price, cached)
        return {
            "basis": "api",
            "price": name,
            "per_call": per_call,
            "formula": f"{card.tokens_in:.0f} tok in × ${price.input}/M + {card.tokens_out:.0f} tok out × ${price.output}/M",
        }
    if not _runs_locally(eng):
        raise _missing_price(eng.get("remote_model") or card.model)
    rate = machine_rate(book, hardware, eng.get("device"), eng.get("threads"))
    per_call = self_hosted_cost_per_call(card.seconds_per_call, rate["per_hour"])
    return {
        "basis": "self-hosted",
        "hardware": rate,
        "per_call": per_call,
        "formula": f"{card.seconds_per_call:.4f} s/call × ${rate['per_hour']:.4f}/h ÷ 3600",
    }


def one_time_cost(card: Any, book: PriceBook, hardware: dict[str, Any]) -> dict[str, Any] | None:
    """Training compute + human labelling + teacher labelling of a fine-tuned scorecard."""
    extras = card.extras or {}
    train, teacher = extras.get("training"), extras.get("teacher")
    if not train and not teacher:
        return None
    out: dict[str, Any] = {"compute": 0.0, "labelling": 0.0, "teacher": 0.0}
    if train:
        rate = machine_rate(book, hardware, train.get("device"), train.get("threads"))
        out["compute"] = self_hosted_cost_per_call(float(train.get("seconds", 0)), rate["per_hour"])
        out["seconds"], out["hardware"] = float(train.get("seconds", 0)), rate
        if not teacher:  # a distilled student's labels come from its teacher, not from people
            n = int(train.get("examples", 0))
            out["labelling"] = n * book.assumptions.labelling_per_example
    if teacher:
        out["teacher"] = _teacher_cost(teacher, book, hardware)
    out["total"] = out["compute"] + out["labelling"] + out["teacher"]
    return out


def _teacher_cost(teacher: dict[str, Any], book: PriceBook, hardware: dict[str, Any]) -> float:
    """The teacher's labelling bill: its total tokens at list price, or its seconds x $/hour."""
    found = book.model(teacher.get("model"), teacher.get("remote_model"))
    if found:
        price = found[1]
        return api_cost_per_call(
            float(teacher.get("tokens_in", 0)), float(teacher.get("tokens_out", 0)), price
        )
    if not _runs_locally(teacher):
        raise _missing_price(teacher.get("remote_model") or teacher.get("model") or "?")
    rate = machine_rate(book, hardware, teacher.get("device"), teacher.get("threads"))
    return self_hosted_cost_per_call(float(teacher.get("seconds", 0)), rate["per_hour"])


def price_card(
    card: Any, book: PriceBook, hardware: dict[str, Any], calls_per_day: float | None
) -> dict[str, Any]:
    """The `cost` of a scorecard: per call, per 1k calls, one-time, fixed, monthly at volume."""
    cost = call_cost(card, book, hardware)
    cost["per_1k_calls"] = cost["per_call"] * 1000
    once = one_time_cost(card, book, hardware)
    cost["one_time"] = once["total"] if once else 0.0
    cost["training"] = once
    cost["monthly_fixed"] = book.assumptions.maintenance_per_month if is_fine_tuned(card) else 0.0
    cost["calls_per_day"] = calls_per_day
    cost["monthly"] = (
        monthly_cost(
            option_of(card.rung, cost), per_month(calls_per_day), book.assumptions.amortize_months
        )
        if calls_per_day
        else None
    )
    return cost


def option_of(name: str, cost: dict[str, Any]) -> Option:
    return Option(name, cost["per_call"], cost.get("one_time", 0.0), cost.get("monthly_fixed", 0.0))
