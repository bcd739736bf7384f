"""What a rung produces (a Solution) and what a solution returns for each example (a Prediction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ladder.dataset import Example


@dataclass
class Prediction:
    example_id: str
    output: Any  # parsed output (label, object...), None when the answer was unusable
    valid: bool
    error: str | None = None
    raw: str | None = None  # the model's text, or the chosen label when scoring
    scores: list[float] | None = None  # log-likelihood per label when the answer was scored
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    compute_s: float = 0.0
    repeat: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # rung-specific (citations, confidence...)


class Solution(Protocol):
    """Model + prompt template + optional adapter/index: it predicts."""

    rung: str
    variant: str
    model: str

    def describe(self) -> dict[str, Any]: ...

    def predict(
        self, examples: list[Example], *, temperature: float = 0.0, seed: int = 0
    ) -> list[Prediction]: ...
