"""What a rung produces: a Solution, which returns a Prediction (`ladder.dataset`) per example."""

from __future__ import annotations

from typing import Any, Protocol

from ladder.dataset import Example, Prediction


class Solution(Protocol):
    """Model + prompt template + optional adapter/index: it predicts."""

    rung: str
    variant: str
    model: str

    def describe(self) -> dict[str, Any]: ...

    def predict(
        self, examples: list[Example], *, temperature: float = 0.0, seed: int = 0
    ) -> list[Prediction]: ...
