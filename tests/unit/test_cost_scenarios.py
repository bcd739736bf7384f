"""Cost scenarios: payback, crossover, training hours, and `ladder cost` from flags, by hand."""

from __future__ import annotations

import pytest

import cost_docs
from ladder.economics import DAYS_PER_MONTH, Option, human, money
from ladder.prices import HardwarePrice
from ladder.scenario import (
    compare,
    estimated_hours,
    payback_words,
    saving_words,
    training_cost,
)

# (name, tuned, prompted, calls/day, months, saving/month, payback days, break-even calls/day),
# every figure worked by hand in the comment above its row.
SCENARIOS = [
    # 2,000 -> 300 tokens at $2.50/M: $0.005 vs $0.00075 a call; 10M/month saves $42,500
    (
        "shorter prompt",
        Option("t", 0.00075),
        Option("p", 0.005),
        1e7 / DAYS_PER_MONTH,
        3,
        42_500.0,
        0.0,
        0.0,
    ),
    # $500 training, $0.00009 vs $0.0003 a call: saves $0.21 a day at 1k/day -> 500 / 0.21 days;
    # monthly 0.0003 x 30,437.5 = 9.13 vs 500/3 + 0.00009 x 30,437.5 = 169.41;
    # crossover (500/3) / 0.00021 = 793,651/month = 26,075/day
    (
        "switch to ft:gpt-4o-mini at low volume",
        Option("t", 0.00009, 500),
        Option("p", 0.0003),
        1000,
        3,
        9.13125 - (500 / 3 + 2.739375),
        500 / 0.21,
        (500 / 3) / 0.00021 / DAYS_PER_MONTH,
    ),
    # $1,000 one-time + $300/month upkeep, $0.001 vs $0.003: at 10k/day saves
    # 20 - 300/30.4375 = 10.1437 $/day -> 98.6 days; crossover (1000/3 + 300) / 0.002 per month
    (
        "self-hosted with maintenance",
        Option("t", 0.001, 1000, 300),
        Option("p", 0.003),
        10_000,
        3,
        913.125 - (1000 / 3 + 300 + 304.375),
        1000 / (20 - 300 / DAYS_PER_MONTH),
        (1000 / 3 + 300) / 0.002 / DAYS_PER_MONTH,
    ),
    # the prompted option's engineering ($2,400) exceeds the fine-tune's ($900): nothing to repay
    (
        "more prompt engineering than tuning",
        Option("t", 0.001, 900),
        Option("p", 0.002, 2400),
        100,
        1,
        (2400 + 0.002 * 3043.75) - (900 + 0.001 * 3043.75),
        0.0,
        0.0,
    ),
    # a dearer call never pays back nor crosses
    ("dearer call", Option("t", 0.002, 10), Option("p", 0.001), 1e6, 3, None, None, None),
]


@pytest.mark.parametrize(
    ("name", "tuned", "prompted", "cpd", "months", "saving", "payback", "crossover"), SCENARIOS
)
def test_cost_scenarios(name, tuned, prompted, cpd, months, saving, payback, crossover):
    r = compare(tuned, prompted, cpd, months)
    if saving is not None:
        assert r["saving_per_month"] == pytest.approx(saving), name
    else:
        assert r["saving_per_month"] < 0
    assert r["payback_days"] == (None if payback is None else pytest.approx(payback)), name
    assert r["break_even_per_day"] == (None if crossover is None else pytest.approx(crossover))


def test_payback_beyond_the_retraining_cadence_never_pays_back():
    assert payback_words(98.6, 10_000, human, 3) == (
        "in 99 days at 10k calls/day: longer than the 3-month retraining cadence, "
        "so it never pays back"
    )
    assert payback_words(6.0, 5e5, human, 3) == "in 6.0 days at 500k calls/day"
    assert payback_words(0.0, 5e5, human, 3).startswith("from the first call")
    assert payback_words(None, 5e5, human, 3).startswith("never at 500k calls/day")


def test_a_loss_reads_as_costs_more_never_a_negative_dollar():
    assert saving_words(-242.0, money) == "costs $242/month more ($2,904/year)"
    assert saving_words(42_500, money) == "$42,500/month ($510,000/year)"


@pytest.mark.parametrize(
    ("hw", "units", "params", "tokens", "mfu", "hours", "cost"),
    [
        # QLoRA of a 7B on one 24 GB A10: 6 x 7e9 x 2e7 = 8.4e17 FLOP / (125e12 x 0.3) = 22,400 s
        (HardwarePrice(per_hour=0.86, peak_tflops=125), 1, 7e9, 2e7, 0.3, 22_400 / 3600, 5.3511),
        # full fine-tune of an 8B on 8 H100s: 2.4e19 / (8 x 989e12 x 0.4) = 7,583 s, x 8 x $4.25
        (HardwarePrice(per_hour=4.25, peak_tflops=989), 8, 8e9, 5e8, 0.4, 2.1065, 71.62),
    ],
)
def test_training_hours_estimated_from_model_size_and_tokens(
    hw, units, params, tokens, mfu, hours, cost
):
    assert estimated_hours(params, tokens, units, hw.peak_tflops, mfu) == pytest.approx(hours, 1e-4)
    t = training_cost("gpu", hw, units, estimate=(params, tokens, mfu))
    assert t.cost == pytest.approx(cost, 1e-3) and t.basis.startswith("estimated: 6 ×")


def test_measured_training_hours_on_a_cpu_are_priced_per_vcpu():
    t = training_cost("cpu", HardwarePrice(per_vcpu_hour=0.0446), 2, hours=0.5)
    assert t.cost == pytest.approx(0.5 * 2 * 0.0446) and t.basis == "measured"


def test_the_docs_table_and_readme_sample_are_the_commands_output():
    assert cost_docs.DOC.read_text(encoding="utf-8") == cost_docs.economics_md(), (
        "docs/economics.md differs from `ladder cost`: run `PYTHONPATH=src python tests/cost_docs.py`"
    )
    assert cost_docs.readme_block() in cost_docs.README.read_text(encoding="utf-8")


def _flags():
    return ("cost", "--volume", "1k/day", "--prompt-tokens", "2000", "--tuned-prompt-tokens", "300")


def test_price_in_prices_the_prompted_side_and_says_so(run_cli):
    code, out, err = run_cli(*_flags(), "--price-in", "2.5", "--tuned-model", "ft:gpt-4o-mini")
    assert code == 0, err
    text = " ".join(out.split())
    assert "prompted: --price-in/--price-out; fine-tuned: ft:gpt-4o-mini (price book)" in text
    assert "× $2.5/M = $152/month" in text and "× $0.3/M = $2.74/month" in text


@pytest.mark.parametrize(
    ("extra", "parts"),
    [
        (["--model", "gpt-4o", "--price-in", "3"], ["--price-in", "not both"]),
        (["--model", "gpt-4o", "--prompt-hours", "5"], ["--engineer-rate"]),
        (["--model", "gpt-4o", "--train-params", "7B"], ["--train-hardware"]),
        (
            [
                "--model",
                "gpt-4o",
                "--train-hardware",
                "cpu",
                "--train-params",
                "1B",
                "--train-tokens",
                "1M",
            ],
            ["peak_tflops", "--train-hours"],
        ),
        (
            ["--model", "gpt-4o", "--train-hardware", "nvidia-zz", "--train-hours", "1"],
            ["nvidia-zz"],
        ),
        (["--model", "gpt-4o", "--tuned-hardware", "nvidia-l4"], ["--tuned-seconds"]),
        (["--model", "gpt-4o", "--labelling", "0.5"], ["--examples"]),
        (
            ["--model", "gpt-4o", "--train-hardware", "nvidia-l4", "--train-params", "seven"],
            ["seven"],
        ),
    ],
)
def test_bad_cost_flags_exit_2_naming_the_flag(run_cli, extra, parts):
    code, out, err = run_cli(*_flags(), *extra)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    text = " ".join(err.split())
    for p in parts:
        assert p in text, text


def test_a_losing_fine_tune_prints_costs_more(run_cli):
    code, out, err = run_cli(
        *_flags(),
        "--model",
        "gpt-4o-mini",
        "--tuned-model",
        "ft:gpt-4o-mini",
        "--training-cost",
        "500",
    )
    assert code == 0, err
    assert "costs $160/month more ($1,923/year)" in out and "$-" not in out
    assert "Break-even  26.1k calls/day (794k/month)" in out
