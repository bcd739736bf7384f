"""The price book: dated $ per token for API models, $ per hour for hardware, and the cost
model's assumptions. Never a buried constant: the shipped book (`ladder/data/prices.yaml`)
names a source for every figure, and each layer overrides it key by key:

    shipped < user file ($LADDER_PRICES or ~/.config/ladder/prices.yaml) < task.yaml `prices:`
            < `--prices FILE` flags

Example override in task.yaml::

    prices:
      models: {my-endpoint: {input: 0.2, output: 0.8}}
      hardware: {cpu: {per_vcpu_hour: 0.05}}
      assumptions: {maintenance_per_month: 400}
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ladder.errors import LadderError
from ladder.yamlio import explain, load_yaml

SHIPPED = "prices.yaml"
USER_FILE = Path("~/.config/ladder/prices.yaml")


class PriceError(LadderError):
    """A price is missing or a price file is malformed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelPrice(_Strict):
    """An API model's list price, $ per million tokens."""

    input: float = Field(ge=0, description="$ per million prompt tokens")
    output: float = Field(ge=0, description="$ per million generated tokens")
    cached_input: float | None = Field(None, ge=0, description="$ per million cached prompt tokens")
    training: float | None = Field(None, ge=0, description="$ per million training tokens")
    source: str = ""


class HardwarePrice(_Strict):
    """A machine kind's on-demand price: per hour, or per vCPU-hour for CPU machines."""

    per_hour: float | None = Field(None, gt=0)
    per_vcpu_hour: float | None = Field(None, gt=0)
    match: list[str] = Field(default_factory=list, description="words of the GPU name")
    peak_tflops: float | None = Field(
        None, gt=0, description="dense bf16/fp16 tensor TFLOP/s of one GPU (training estimates)"
    )
    source: str = ""

    @model_validator(mode="after")
    def _one_rate(self) -> HardwarePrice:
        if (self.per_hour is None) == (self.per_vcpu_hour is None):
            raise ValueError("give exactly one of per_hour or per_vcpu_hour")
        return self


class Assumptions(_Strict):
    amortize_months: float = Field(3, gt=0, description="one-time costs spread over months")
    maintenance_per_month: float = Field(0.0, ge=0, description="$ per month per fine-tune")
    labelling_per_example: float = Field(0.0, ge=0, description="$ per labelled example")
    engineer_per_hour: float = Field(0.0, ge=0, description="$ per engineering hour")


class AssumptionsSpec(_Strict):
    """Assumptions as a layer gives them: any subset."""

    amortize_months: float | None = Field(None, gt=0)
    maintenance_per_month: float | None = Field(None, ge=0)
    labelling_per_example: float | None = Field(None, ge=0)
    engineer_per_hour: float | None = Field(None, ge=0)


class PricesSpec(_Strict):
    """`prices:` in task.yaml (and the shape of every price file): all keys optional."""

    file: str | None = Field(None, description="a price file, relative to the task folder")
    as_of: dt.date | None = None
    currency: str | None = None
    machine: str | None = Field(
        None, description="hardware kind this run's machine is priced as (default: matched)"
    )
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    hardware: dict[str, HardwarePrice] = Field(default_factory=dict)
    assumptions: AssumptionsSpec = Field(default_factory=AssumptionsSpec)


class PriceBook(BaseModel):
    """The merged book; `layers` says where each layer came from (shown in the report)."""

    as_of: dt.date
    currency: str = "USD"
    machine: str | None = None
    models: dict[str, ModelPrice]
    hardware: dict[str, HardwarePrice]
    assumptions: Assumptions
    layers: list[str] = Field(default_factory=list)

    def age_days(self, today: dt.date | None = None) -> int:
        return ((today or dt.date.today()) - self.as_of).days

    def model(self, *names: str | None) -> tuple[str, ModelPrice] | None:
        """The first of `names` (or the name without an `openai:` style prefix) that has a price."""
        for name in names:
            if not name:
                continue
            for key in (name, name.split(":", 1)[-1] if name.startswith("openai:") else name):
                if key in self.models:
                    return key, self.models[key]
        return None

    def machine_kind(self, gpu: str | None) -> tuple[str, HardwarePrice]:
        """The hardware kind for a GPU name (all of an entry's `match` words in it), or `cpu`."""
        if self.machine:
            return self.machine, self._hardware(self.machine)
        if not gpu:
            return "cpu", self._hardware("cpu")
        words = set(re.split(r"[^a-z0-9]+", gpu.lower()))
        for kind, hw in self.hardware.items():
            if hw.match and all(w.lower() in words for w in hw.match):
                return kind, hw
        raise PriceError(
            f"no hardware price matches the GPU {gpu!r}.",
            fix=f"add an entry under `hardware:` with `per_hour:` and `match: [WORD]` to {_where_to_add()}, or set `prices: {{machine: KIND}}` in task.yaml.",
        )

    def _hardware(self, kind: str) -> HardwarePrice:
        if kind not in self.hardware:
            raise PriceError(
                f"no hardware kind {kind!r} in the price book (known: {', '.join(self.hardware)}).",
                fix=f"add it under `hardware:` in {_where_to_add()}.",
            )
        return self.hardware[kind]


def _where_to_add() -> str:
    return f"task.yaml `prices:`, a file passed with --prices, or {user_file()}"


def user_file() -> Path:
    return Path(os.environ.get("LADDER_PRICES") or USER_FILE).expanduser()


def read_price_file(path: Path) -> PricesSpec:
    data, node = load_yaml(path, PriceError)
    return parse_prices(data or {}, path, node)


def parse_prices(data: Any, where: str | Path, node=None, prefix: tuple = ()) -> PricesSpec:
    """Validate a price mapping; errors name the line and the field."""
    if not isinstance(data, dict):
        raise PriceError("expected a mapping (models:, hardware:, assumptions:).", where=where)
    try:
        spec = PricesSpec.model_validate(data)
    except ValidationError as exc:
        raise PriceError(explain(exc, node, PricesSpec, prefix), where=where) from None
    return spec


def shipped() -> PricesSpec:
    path = Path(str(resources.files("ladder") / "data" / SHIPPED))
    return read_price_file(path)


def load_price_book(
    task_prices: PricesSpec | dict | None = None,
    task_dir: Path | None = None,
    files: Sequence[str | Path] = (),
) -> PriceBook:
    """Merge the layers: shipped, user file, the task's `prices:` (and its `file:`), flags."""
    layers: list[tuple[str, PricesSpec]] = [("shipped ladder/data/prices.yaml", shipped())]
    if user_file().exists():
        layers.append((str(user_file()), read_price_file(user_file())))
    if task_prices:
        spec = (
            task_prices
            if isinstance(task_prices, PricesSpec)
            else parse_prices(task_prices, "task.yaml prices")
        )
        if spec.file:
            path = Path(spec.file).expanduser()
            path = path if path.is_absolute() or task_dir is None else task_dir / path
            layers.append((str(path), read_price_file(path)))
        layers.append(("task.yaml prices:", spec))
    for f in files:
        layers.append((str(f), read_price_file(Path(f).expanduser())))
    return merge(layers)


def merge(layers: list[tuple[str, PricesSpec]]) -> PriceBook:
    out: dict[str, Any] = {"models": {}, "hardware": {}, "assumptions": {}, "layers": []}
    for name, spec in layers:
        out["layers"].append(name)
        for key in ("as_of", "currency", "machine"):
            if getattr(spec, key) is not None:
                out[key] = getattr(spec, key)
        out["models"].update(spec.models)
        out["hardware"].update(spec.hardware)
        out["assumptions"].update(spec.assumptions.model_dump(exclude_none=True))
    out.setdefault("as_of", dt.date.today())
    out["assumptions"] = Assumptions.model_validate(out["assumptions"])
    return PriceBook.model_validate(out)
