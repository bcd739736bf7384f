"""The price book: shipped, dated and sourced; layered overrides; validated with line numbers."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import write_classify_task
from ladder.errors import TaskError
from ladder.prices import PriceError, load_price_book, shipped
from ladder.task import load_task


def test_shipped_book_is_dated_and_every_price_names_its_source():
    book = shipped()
    assert isinstance(book.as_of, dt.date) and book.currency == "USD"
    assert book.models and book.hardware
    for name, p in {**book.models, **book.hardware}.items():
        assert p.source.strip(), f"{name} has no source"
    assert "cpu" in book.hardware and book.hardware["cpu"].per_vcpu_hour


def test_layers_override_key_by_key(tmp_path, monkeypatch):
    user = tmp_path / "user.yaml"
    user.write_text("models:\n  gpt-4o: {input: 1.0, output: 2.0, source: mine}\n")
    flag = tmp_path / "flag.yaml"
    flag.write_text("as_of: 2030-01-02\nassumptions: {amortize_months: 6}\n")
    monkeypatch.setenv("LADDER_PRICES", str(user))
    task = {
        "models": {"in-house": {"input": 0.5, "output": 0.5}},
        "hardware": {"cpu": {"per_vcpu_hour": 0.1}},
    }
    book = load_price_book(task, files=[flag])
    assert book.models["gpt-4o"].input == 1.0  # user file over shipped
    assert book.models["in-house"].input == 0.5 and book.hardware["cpu"].per_vcpu_hour == 0.1
    assert book.models["gpt-4o-mini"].input == shipped().models["gpt-4o-mini"].input
    assert book.as_of == dt.date(2030, 1, 2) and book.assumptions.amortize_months == 6
    assert book.layers[0].startswith("shipped") and book.layers[-1] == str(flag)
    assert book.model("openai:in-house")[0] == "in-house"


def test_task_prices_file_is_relative_to_the_task(tmp_path):
    root = write_classify_task(tmp_path / "t", extra_yaml="prices: {file: my-prices.yaml}\n")
    (root / "my-prices.yaml").write_text("hardware: {cpu: {per_vcpu_hour: 0.2}}\n")
    task = load_task(root)
    book = load_price_book(task.spec.prices, task.dir)
    assert book.hardware["cpu"].per_vcpu_hour == 0.2


@pytest.mark.parametrize(
    ("yaml", "parts"),
    [
        (
            "prices:\n  modles: {}\n",
            ["line 10", "unknown key `prices.modles`", "did you mean `models`"],
        ),
        (
            "prices:\n  models: {x: {input: -1, output: 1}}\n",
            ["prices.models.x.input", "greater than or equal to 0"],
        ),
        (
            "prices:\n  hardware: {cpu: {per_hour: 1, per_vcpu_hour: 1}}\n",
            ["exactly one of per_hour or per_vcpu_hour"],
        ),
        ("prices:\n  assumptions: {amortize_months: 0}\n", ["prices.assumptions.amortize_months"]),
    ],
)
def test_bad_task_prices_name_the_line_and_field(tmp_path, yaml, parts):
    root = write_classify_task(tmp_path / "t", extra_yaml=yaml)
    with pytest.raises(TaskError) as err:
        load_task(root)
    for p in parts:
        assert p in str(err.value), str(err.value)


def test_bad_price_file_is_a_clear_error(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("models:\n  a: {input: 1}\n")
    with pytest.raises(PriceError, match=r"p.yaml.*line 2.*models.a.output.*missing"):
        load_price_book(files=[f])
    with pytest.raises(PriceError, match="not found"):
        load_price_book(files=[tmp_path / "missing.yaml"])


def test_gpu_kinds_match_by_words_most_specific_first():
    book = shipped()
    from ladder.prices import merge

    book = merge([("shipped", book)])
    assert book.machine_kind("NVIDIA A100-SXM4-80GB")[0] == "nvidia-a100-80gb"
    assert book.machine_kind("NVIDIA A100-PCIE-40GB")[0] == "nvidia-a100"
    assert book.machine_kind("NVIDIA H200")[0] == "nvidia-h200"
    assert book.machine_kind("Tesla T4")[0] == "nvidia-t4"
    assert book.machine_kind(None)[0] == "cpu"
    with pytest.raises(PriceError, match="A10G"):
        book.machine_kind("NVIDIA A10G")
