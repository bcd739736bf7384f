"""`ladder cost` from flags alone: the two options, priced and costed line by line.

Every figure printed is the product of the figures before it on its line, so a reader can check
it with a calculator; which price each side is charged at is printed, never assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import overload

import typer

from ladder.cli.render import console
from ladder.economics import (
    DAYS_PER_MONTH,
    PER_MILLION,
    Option,
    api_cost_per_call,
    human,
    money,
)
from ladder.prices import ModelPrice, PriceBook, PriceError
from ladder.scenario import (
    compare,
    crossover_words,
    payback_words,
    saving_words,
    training_cost,
    unit_rate,
)

_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


@overload
def count(text: str, flag: str) -> float: ...
@overload
def count(text: None, flag: str) -> None: ...
def count(text: str | None, flag: str) -> float | None:
    """'7B' -> 7e9, '20M' -> 2e7, '1500' -> 1500 (for --train-params, --train-tokens)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*([kmbt]?)\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise typer.BadParameter(
            f"cannot read {text!r}: write e.g. 7B, 20M or 1500", param_hint=flag
        )
    return float(m.group(1)) * _SCALE[m.group(2)]


@dataclass
class Side:
    """One option as the lines that cost it."""

    tag: str
    per_call: float = 0.0
    one_time: float = 0.0
    monthly_fixed: float = 0.0
    lines: list[str] = field(default_factory=list)
    basis: str = ""

    def option(self) -> Option:
        return Option(self.tag, self.per_call, self.one_time, self.monthly_fixed)


def book_price(book: PriceBook, name: str, flag: str) -> ModelPrice:
    found = book.model(name)
    if found is None:
        raise PriceError(
            f"no price for the model {name!r} in the price book ({flag}).",
            fix="pass explicit prices (--price-in/--price-out for --model, --tuned-price-in/"
            "--tuned-price-out for --tuned-model), or add it under `models:` in a file given "
            f"with --prices (known: {', '.join(book.models)}).",
        )
    return found[1]


def hardware(book: PriceBook, kind: str, flag: str):
    if kind not in book.hardware:
        raise PriceError(
            f"no hardware kind {kind!r} in the price book ({flag}).",
            fix=f"use one of: {', '.join(book.hardware)}; or add it under `hardware:` in a file "
            "given with --prices.",
        )
    return book.hardware[kind]


def api_side(side: Side, n: float, tok: float, out_t: float, price: ModelPrice) -> None:
    side.per_call = api_cost_per_call(tok, out_t, price)
    side.lines.append(
        f"{n:,.0f} × {tok:,.0f} tokens = {human(n * tok)} input tokens × ${price.input:g}/M = "
        f"{money(n * tok * price.input / PER_MILLION)}/month"
    )
    if out_t:
        side.lines.append(
            f"{n:,.0f} × {out_t:,.0f} tokens out × ${price.output:g}/M = "
            f"{money(n * out_t * price.output / PER_MILLION)}/month"
        )


def hosted_side(side: Side, n: float, seconds: float, kind: str, hw) -> None:
    rate = unit_rate(hw)
    side.per_call = seconds * rate / 3600
    side.lines.append(
        f"{n:,.0f} × {seconds:g} s on {kind} × ${rate:g}/h ÷ 3600 = {money(n * side.per_call)}/month"
    )


def print_sides(sides: list[Side], once_lines, cpd: float, months: float, maint: float) -> None:
    prompted, tuned = sides
    n = cpd * DAYS_PER_MONTH
    out = [f"Volume      {n:,.0f} calls/month ({human(cpd)}/day)"]
    out.append(f"Priced      prompted: {prompted.basis}; fine-tuned: {tuned.basis}")
    for side in sides:
        for i, line in enumerate(side.lines):
            out.append(f"{side.tag if i == 0 else '':<11} {line}")
    out.extend(once_lines)
    if tuned.one_time or prompted.one_time or maint:
        out.append(
            f"Fine-tune   {money(tuned.one_time)} one-time, retrained every {months:g} "
            f"month{'' if months == 1 else 's'}: "
            f"÷ {months:g} + {money(maint)}/month maintenance = "
            f"{money(tuned.one_time / months + maint)}/month"
        )
    r = compare(tuned.option(), prompted.option(), cpd, months)
    share = r["saving_per_month"] / r["monthly_before"] if r["monthly_before"] else 0.0
    if r["saving_per_month"] >= 0:
        head = f"Saving      {saving_words(r['saving_per_month'], money)}, {100 * share:.0f}% of the bill"
    else:
        head = f"Fine-tuned  {saving_words(r['saving_per_month'], money)}"
    out.append(f"[bold]{head}[/]")
    out.append(f"Payback     {payback_words(r['payback_days'], cpd, human, months)}")
    out.append(f"Break-even  {crossover_words(r, human)}")
    for line in out:
        console.print(line, highlight=False, soft_wrap=True)


@dataclass
class Flags:
    """The standalone flags of `ladder cost`, as given."""

    prompt_tokens: float
    tuned_prompt_tokens: float
    output_tokens: float = 0.0
    model: str | None = None
    tuned_model: str | None = None
    price_in: float | None = None
    price_out: float | None = None
    tuned_price_in: float | None = None
    tuned_price_out: float | None = None
    tuned_seconds: float | None = None
    tuned_hardware: str | None = None
    training_cost: float = 0.0
    train_hardware: str | None = None
    train_gpus: int = 1
    train_hours: float | None = None
    train_params: str | None = None
    train_tokens: str | None = None
    mfu: float = 0.35
    labelling: float | None = None
    examples: int = 0
    prompt_hours: float = 0.0
    tuning_hours: float = 0.0
    engineer_rate: float | None = None


def _explicit(p_in, p_out) -> ModelPrice | None:
    if p_in is None and p_out is None:
        return None
    return ModelPrice(input=p_in or 0.0, output=p_out or 0.0, source="flags")


def _prompted_price(f: Flags, book: PriceBook) -> ModelPrice:
    """--price-in/--price-out when given, else --model's price-book price."""
    flags = _explicit(f.price_in, f.price_out)
    if flags is not None:
        return flags
    if not f.model:
        raise typer.BadParameter(
            "give --model NAME or --price-in/--price-out", param_hint="--model"
        )
    return book_price(book, f.model, "--model")


def prompted_side(f: Flags, book: PriceBook, n: float) -> Side:
    side = Side("Prompted")
    flags = _explicit(f.price_in, f.price_out)
    if flags and f.model:
        raise typer.BadParameter(
            "give --model (price-book prices) or --price-in/--price-out, not both",
            param_hint="--price-in",
        )
    price = _prompted_price(f, book)
    side.basis = f"{f.model} (price book)" if f.model else "--price-in/--price-out"
    api_side(side, n, f.prompt_tokens, f.output_tokens, price)
    return side


def tuned_side(f: Flags, book: PriceBook, n: float, prompted: Side) -> Side:
    side = Side("Fine-tuned")
    flags = _explicit(f.tuned_price_in, f.tuned_price_out)
    hosted = f.tuned_seconds is not None or f.tuned_hardware is not None
    if hosted and (flags or f.tuned_model):
        raise typer.BadParameter(
            "price the fine-tuned side one way: --tuned-model, --tuned-price-in/--tuned-price-out "
            "(optionally naming --tuned-model), or --tuned-seconds with --tuned-hardware",
            param_hint="--tuned-hardware" if hosted else "--tuned-model",
        )
    if hosted:
        if f.tuned_seconds is None or f.tuned_hardware is None:
            raise typer.BadParameter(
                "self-hosting needs both --tuned-seconds (s per call) and --tuned-hardware KIND",
                param_hint="--tuned-seconds",
            )
        hw = hardware(book, f.tuned_hardware, "--tuned-hardware")
        side.basis = f"self-hosted on {f.tuned_hardware} ({hw.source})"
        hosted_side(side, n, f.tuned_seconds, f.tuned_hardware, hw)
        return side
    if flags:
        price, name = flags, f.tuned_model or "the fine-tuned model"
        side.basis = f"{name} at --tuned-price-in/--tuned-price-out"
    elif f.tuned_model:
        price = book_price(book, f.tuned_model, "--tuned-model")
        side.basis = f"{f.tuned_model} (price book)"
    else:
        price = _prompted_price(f, book)
        side.basis = "the same model and price (no --tuned-model), a shorter prompt"
    api_side(side, n, f.tuned_prompt_tokens, f.output_tokens, price)
    return side


def one_time_lines(f: Flags, book: PriceBook, prompted: Side, tuned: Side) -> list[str]:
    """Training compute, labelling and engineering hours, each as a line of its side."""
    lines: list[str] = []
    if f.training_cost:
        tuned.one_time += f.training_cost
        lines.append(f"Training    {money(f.training_cost)} (--training-cost)")
    api = _api_training(f, book)
    if api is not None:
        tokens, price = api
        tuned.one_time += tokens * price / PER_MILLION
        lines.append(
            f"Training    {human(tokens)} training tokens × ${price:g}/M ({f.tuned_model}) = "
            f"{money(tokens * price / PER_MILLION)}"
        )
    train = None if api is not None else _training(f, book)
    if train is not None:
        tuned.one_time += train.cost
        lines.append(
            f"Training    {train.hours:.3g} h × {train.units} {train.kind} × "
            f"${train.per_unit_hour:g}/h = {money(train.cost)} ({train.basis})"
        )
    rate = book.assumptions.labelling_per_example if f.labelling is None else f.labelling
    if f.examples and rate:
        tuned.one_time += f.examples * rate
        lines.append(
            f"Labelling   {f.examples:,} examples × ${rate:g} = {money(f.examples * rate)}"
        )
    elif f.labelling and not f.examples:
        raise typer.BadParameter(
            "--labelling needs --examples N (labelled examples)", param_hint="--examples"
        )
    _engineering(f, book, prompted, tuned, lines)
    return lines


def _engineering(f: Flags, book: PriceBook, prompted: Side, tuned: Side, lines) -> None:
    if not (f.prompt_hours or f.tuning_hours):
        return
    rate = book.assumptions.engineer_per_hour if f.engineer_rate is None else f.engineer_rate
    if not rate:
        raise typer.BadParameter(
            "engineering hours need a rate: --engineer-rate $/h (or `assumptions: "
            "{engineer_per_hour: N}` in a price file)",
            param_hint="--engineer-rate",
        )
    prompted.one_time += f.prompt_hours * rate
    tuned.one_time += f.tuning_hours * rate
    lines.append(
        f"Engineering prompted {f.prompt_hours:g} h = {money(f.prompt_hours * rate)}, "
        f"fine-tuned {f.tuning_hours:g} h = {money(f.tuning_hours * rate)} (× ${rate:g}/h)"
    )


def _api_training(f: Flags, book: PriceBook) -> tuple[float, float] | None:
    """(training tokens, $/M) when an API fine-tune is trained by its provider."""
    if f.train_hardware is not None or f.train_tokens is None or not f.tuned_model:
        return None
    found = book.model(f.tuned_model)
    if found is None or found[1].training is None:
        return None
    if f.train_params is not None or f.train_hours is not None:
        raise typer.BadParameter(
            f"{f.tuned_model} is trained by its provider at $/training token: give only "
            "--train-tokens (or --train-hardware to price your own hardware)",
            param_hint="--train-params",
        )
    return count(f.train_tokens, "--train-tokens"), found[1].training


def _training(f: Flags, book: PriceBook):
    estimate = f.train_params is not None or f.train_tokens is not None
    if f.train_hardware is None:
        if estimate or f.train_hours is not None:
            raise typer.BadParameter(
                "training hours need the hardware: --train-hardware KIND (e.g. nvidia-h100)",
                param_hint="--train-hardware",
            )
        return None
    hw = hardware(book, f.train_hardware, "--train-hardware")
    if (f.train_hours is None) == (not estimate):
        raise typer.BadParameter(
            "give the training hours (--train-hours, measured) or an estimate "
            "(--train-params and --train-tokens), one of the two",
            param_hint="--train-hours",
        )
    if f.train_hours is not None:
        return training_cost(f.train_hardware, hw, f.train_gpus, hours=f.train_hours)
    params, tokens = (
        count(f.train_params, "--train-params"),
        count(f.train_tokens, "--train-tokens"),
    )
    if params is None or tokens is None:
        raise typer.BadParameter(
            "an estimate needs both --train-params and --train-tokens", param_hint="--train-tokens"
        )
    if hw.peak_tflops is None:
        raise PriceError(
            f"the hardware kind {f.train_hardware!r} has no `peak_tflops` to estimate hours from.",
            fix="give --train-hours (measured), or add `peak_tflops:` to its price-book entry.",
        )
    return training_cost(f.train_hardware, hw, f.train_gpus, estimate=(params, tokens, f.mfu))


def standalone(f: Flags, book: PriceBook, cpd: float, months: float, maint: float) -> None:
    n = cpd * DAYS_PER_MONTH
    prompted = prompted_side(f, book, n)
    tuned = tuned_side(f, book, n, prompted)
    once = one_time_lines(f, book, prompted, tuned)
    tuned.monthly_fixed = maint
    print_sides([prompted, tuned], once, cpd, months, maint)
