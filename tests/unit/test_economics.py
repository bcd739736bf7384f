"""Economics: volumes, $ per call, monthly cost, break-even (properties), pricing scorecards."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ladder.economics import (
    DAYS_PER_MONTH,
    Option,
    VolumeError,
    api_cost_per_call,
    break_even,
    human,
    money,
    monthly_cost,
    parse_volume,
    price_card,
    prompt_shrink,
    self_hosted_cost_per_call,
)
from ladder.evaluation.scorecard import MetricValue, Scorecard
from ladder.prices import ModelPrice, PriceError, load_price_book

CPU_2 = {"cpu": "Xeon", "cores": 2, "torch_threads": 2}


@pytest.mark.parametrize(
    ("text", "per_day"),
    [
        ("50000", 50000),
        ("1e6/day", 1e6),
        ("10M/month", 1e7 / DAYS_PER_MONTH),
        ("2.5k/hour", 2500 * 24),
        ("70k/week", 10000),
        (" 3 b / d ", 3e9),
        (1234.5, 1234.5),
    ],
)
def test_parse_volume(text, per_day):
    assert parse_volume(text) == pytest.approx(per_day)


@pytest.mark.parametrize("text", ["0", "-5/day", "0/month", "ten", "5/fortnight", "1e400", ""])
def test_bad_volume_is_a_clear_error(text):
    with pytest.raises(VolumeError) as err:
        parse_volume(text)
    assert "--volume" in str(err.value) and "Fix:" in str(err.value)


def test_api_cost_counts_cached_tokens_at_the_cached_price():
    p = ModelPrice(input=2.5, output=10.0, cached_input=1.25)
    assert api_cost_per_call(2000, 100, p) == pytest.approx((2000 * 2.5 + 100 * 10) / 1e6)
    assert api_cost_per_call(2000, 0, p, cached_in=1000) == pytest.approx(
        (1000 * 2.5 + 1000 * 1.25) / 1e6
    )
    # no cached price: cached tokens cost the full input price; more cached than sent is capped
    q = ModelPrice(input=1.0, output=0.0)
    assert api_cost_per_call(10, 0, q, cached_in=50) == pytest.approx(10 / 1e6)


def test_self_hosted_cost_is_seconds_times_hourly_rate():
    assert self_hosted_cost_per_call(0.2, 0.0892) == pytest.approx(0.2 * 0.0892 / 3600)
    assert self_hosted_cost_per_call(0.0, 4.0) == 0.0


def test_the_frameworks_worked_example():
    """10M calls a month, a 2,000-token prompt shrinking to 300: $42,500 a month at $2.50/M."""
    gpt4o = ModelPrice(input=2.5, output=10.0)
    r = prompt_shrink(1e7, 2000, 300, 0, gpt4o, gpt4o)
    assert r["input_tokens_before"] == 2e10 and r["input_tokens_after"] == 3e9
    assert r["monthly_before"] == pytest.approx(50_000)
    assert r["monthly_after"] == pytest.approx(7_500)
    assert r["saving_per_month"] == pytest.approx(42_500)
    assert r["saving_per_year"] == pytest.approx(510_000)
    assert r["break_even_per_month"] == 0.0


@pytest.mark.parametrize(
    ("tuned", "prompted", "expected"),
    [
        (Option("t", 1e-5, 30.0, 10.0), Option("p", 3e-5), (30 / 3 + 10) / 2e-5),
        (Option("t", 3e-5, 30.0), Option("p", 1e-5), None),  # dearer per call: never pays
        (Option("t", 1e-5), Option("p", 3e-5), 0.0),  # nothing to repay
        (
            Option("t", 1e-5, 0.0, 0.0),
            Option("p", 1e-5, 0.0, 5.0),
            0.0,
        ),  # same per call, less fixed
        (Option("t", 1e-5, 0.0, 5.0), Option("p", 1e-5), None),
    ],
)
def test_break_even_cases(tuned, prompted, expected):
    got = break_even(tuned, prompted, 3.0)
    assert got == (None if expected is None else pytest.approx(expected))


money_st = st.floats(min_value=0, max_value=1e4, allow_nan=False)
# $ per call: zero, or at least a nano-dollar (smaller figures are rounding noise, not prices)
per_call_st = st.one_of(st.just(0.0), st.floats(min_value=1e-9, max_value=1.0))
volume_st = st.floats(min_value=0, max_value=1e10, allow_nan=False)
months_st = st.floats(min_value=0.5, max_value=60, allow_nan=False)


@given(per_call_st, money_st, money_st, volume_st, volume_st, months_st)
def test_more_volume_never_lowers_monthly_cost(per_call, once, fixed, v1, v2, months):
    o = Option("x", per_call, once, fixed)
    lo, hi = sorted((v1, v2))
    assert monthly_cost(o, lo, months) <= monthly_cost(o, hi, months)


@given(per_call_st, per_call_st, money_st, money_st, months_st)
def test_break_even_is_where_the_cost_lines_cross(p_tuned, p_prompt, once, fixed, months):
    tuned, prompted = Option("t", p_tuned, once, fixed), Option("p", p_prompt)
    v = break_even(tuned, prompted, months)
    if v is None:  # never cheaper: at any volume the fine-tune costs at least as much
        for vol in (0.0, 1e3, 1e9):
            assert monthly_cost(tuned, vol, months) >= monthly_cost(prompted, vol, months) - 1e-9
        return
    at = (monthly_cost(tuned, v, months), monthly_cost(prompted, v, months))
    if v > 0:
        assert at[0] == pytest.approx(at[1], rel=1e-9, abs=1e-9)
        assert monthly_cost(tuned, v / 2, months) > monthly_cost(prompted, v / 2, months) - 1e-9
    above = v * 2 + 1e6
    assert monthly_cost(tuned, above, months) <= monthly_cost(prompted, above, months) + 1e-9


def test_human_and_money_formats():
    assert human(12_400) == "12.4k" and human(3.2e6) == "3.2M" and human(950) == "950"
    assert money(42_500) == "$42,500" and money(12.3) == "$12.30" and money(0.0049) == "$0.0049"
    assert money(None) == "-" and money(0) == "$0"


# ---------------------------------------------------------------- pricing scorecards


def card(rung="few-shot", model="gemma-3-270m", engine=None, **kw) -> Scorecard:
    base = dict(
        rung=rung,
        variant="v",
        model=model,
        n=100,
        primary_metric="accuracy",
        metrics={"accuracy": MetricValue(value=0.8, ci_low=0.7, ci_high=0.9)},
        validity=1.0,
        seconds_per_call=0.25,
        tokens_in=400,
        tokens_out=2,
        engine=engine if engine is not None else {"engine": "hf", "device": "cpu", "threads": 2},
    )
    base.update(kw)
    return Scorecard(**base)


def test_api_model_is_priced_by_tokens():
    book = load_price_book()
    c = card(model="openai:gpt-4o-mini", engine={"engine": "openai", "base_url": None})
    cost = price_card(c, book, CPU_2, 50_000)
    assert cost["basis"] == "api" and cost["price"] == "gpt-4o-mini"
    assert cost["per_call"] == pytest.approx((400 * 0.15 + 2 * 0.60) / 1e6)
    assert cost["monthly"] == pytest.approx(cost["per_call"] * 50_000 * DAYS_PER_MONTH)
    assert cost["one_time"] == 0 and cost["monthly_fixed"] == 0


def test_local_model_is_priced_by_seconds_on_the_machine_that_ran():
    book = load_price_book()
    cost = price_card(card(), book, CPU_2, None)
    rate = book.hardware["cpu"].per_vcpu_hour * 2
    assert cost["basis"] == "self-hosted" and cost["hardware"]["vcpus"] == 2
    assert cost["per_call"] == pytest.approx(0.25 * rate / 3600)
    assert cost["monthly"] is None
    gpu = {"gpu": "NVIDIA H100 80GB HBM3", "cores": 16}
    c = card(engine={"engine": "hf", "device": "cuda:0"})
    cost = price_card(c, book, gpu, 1000)
    assert cost["hardware"]["kind"] == "nvidia-h100"
    assert cost["per_call"] == pytest.approx(0.25 * book.hardware["nvidia-h100"].per_hour / 3600)


def test_a_server_on_loopback_is_self_hosted_but_a_remote_one_needs_a_price():
    book = load_price_book()
    local = card(model="llama", engine={"engine": "openai", "base_url": "http://127.0.0.1:8080/v1"})
    assert price_card(local, book, CPU_2, 1)["basis"] == "self-hosted"
    remote = card(
        model="big",
        engine={"engine": "openai", "remote_model": "acme-9", "base_url": "https://api.acme/v1"},
    )
    with pytest.raises(PriceError) as err:
        price_card(remote, book, CPU_2, 1)
    msg = str(err.value)
    assert "'acme-9'" in msg and "models:" in msg and "task.yaml" in msg and "--prices" in msg


def test_training_labelling_teacher_and_maintenance_costs():
    book = load_price_book(
        {"assumptions": {"maintenance_per_month": 40, "labelling_per_example": 0.1}}
    )
    tuned = card(
        rung="lora",
        extras={"training": {"seconds": 3600, "device": "cpu", "examples": 300}},
    )
    cost = price_card(tuned, book, CPU_2, 10_000)
    cpu_h = book.hardware["cpu"].per_vcpu_hour * 2
    assert cost["training"]["compute"] == pytest.approx(cpu_h)
    assert cost["training"]["labelling"] == pytest.approx(30.0)
    assert cost["one_time"] == pytest.approx(cpu_h + 30.0)
    assert cost["monthly_fixed"] == 40
    months = book.assumptions.amortize_months
    assert cost["monthly"] == pytest.approx(
        cost["one_time"] / months + 40 + cost["per_call"] * 10_000 * DAYS_PER_MONTH
    )
    distilled = card(
        rung="distill",
        extras={
            "training": {"seconds": 0, "device": "cpu", "examples": 300},
            "teacher": {
                "model": "openai:gpt-4o",
                "calls": 300,
                "tokens_in": 1e6,
                "tokens_out": 1e4,
            },
        },
    )
    cost = price_card(distilled, book, CPU_2, None)
    assert cost["training"]["teacher"] == pytest.approx(2.5 + 0.1)
    assert cost["training"]["labelling"] == 0  # the teacher labelled, not people


def test_unknown_gpu_names_the_fix():
    book = load_price_book()
    c = card(engine={"engine": "hf", "device": "cuda"})
    with pytest.raises(PriceError, match=r"Quantum 9000.*match"):
        price_card(c, book, {"gpu": "Quantum 9000"}, None)
    book = load_price_book({"machine": "nvidia-l4"})
    assert price_card(c, book, {"gpu": "Quantum 9000"}, None)["hardware"]["kind"] == "nvidia-l4"
    assert math.isclose(
        price_card(c, book, {"gpu": "x"}, None)["hardware"]["per_hour"],
        book.hardware["nvidia-l4"].per_hour,
    )


def test_the_engine_declares_its_price_basis_and_economics_and_the_gateway_ask_it():
    """One rule, declared by the engine: the gateway's cost log and the report price alike."""
    from ladder.engines.base import capability, price_basis
    from ladder.engines.fake import FakeEngine
    from ladder.engines.openai_compat import OpenAIEngine
    from ladder.serve.catalog import in_process, is_local

    here = OpenAIEngine("llama", base_url="http://127.0.0.1:9/v1", check=False)
    away = OpenAIEngine("big", base_url="https://api.acme/v1", check=False)
    assert here.info()["price_basis"] == "hour" and away.info()["price_basis"] == "tokens"
    assert is_local(here) and not is_local(away)  # the gateway prices llama.cpp by the hour
    assert not in_process(here) and not capability(here, "supports_adapters")
    fake = FakeEngine()
    assert price_basis(fake.info()) == "hour" and is_local(fake) and in_process(fake)
    # a stored card declares it; economics follows the declaration, not the engine's name
    book = load_price_book()
    declared = card(model="llama", engine={"engine": "my-plugin", "price_basis": "tokens"})
    with pytest.raises(PriceError):
        price_card(declared, book, CPU_2, 1)

    class PluginEngine:  # says nothing: the defaults (an in-process model of your own)
        model, supports_scoring = "p", False

    assert is_local(PluginEngine()) and in_process(PluginEngine())
    assert capability(PluginEngine(), "supports_adapters") is False
