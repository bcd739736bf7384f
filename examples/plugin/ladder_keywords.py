"""An example Ladder plugin: the `keywords` rung, a multinomial naive Bayes over words.

It is the baseline a team often has before any model: word counts per label from the train
split, add-alpha smoothing, the most probable label for each input. Registered through the
`ladder.plugins` entry point in this folder's pyproject.toml, exactly as Ladder's own rungs are;
it declares its family (`other`: neither a prompt, a retrieval nor a fine-tune), so the gates
and the economics know what it is without matching its name.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ladder.dataset import Prediction
from ladder.rungs.base import Prepared

WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class KeywordsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(1.0, gt=0, description="add-alpha smoothing of the word counts")


class KeywordSolution:
    """Word counts per label; predicts argmax of log prior + sum of log word likelihoods."""

    rung, model = "keywords", "keywords"

    def __init__(self, labels: list[str], train: list, alpha: float):
        self.labels, self.alpha = labels, alpha
        self.variant = f"naive-bayes-a{alpha:g}"
        self.docs = Counter(e.output for e in train)
        self.counts = {lab: Counter() for lab in labels}
        for e in train:
            if e.output in self.counts:
                self.counts[e.output].update(words(e.input))
        self.vocab = set().union(*self.counts.values()) if self.counts else set()
        self.totals = {lab: sum(c.values()) for lab, c in self.counts.items()}

    def describe(self) -> dict[str, Any]:
        return {"rung": self.rung, "variant": self.variant, "alpha": self.alpha}

    def _scores(self, text: str) -> list[float]:
        n, v = sum(self.docs.values()) or 1, len(self.vocab) or 1
        out = []
        for lab in self.labels:
            s = math.log((self.docs[lab] + 1) / (n + len(self.labels)))
            denom = self.totals[lab] + self.alpha * v
            s += sum(math.log((self.counts[lab][w] + self.alpha) / denom) for w in words(text))
            out.append(s)
        return out

    def predict(
        self, examples: list, *, temperature: float = 0.0, seed: int = 0
    ) -> list[Prediction]:
        preds = []
        for e in examples:
            t0 = time.perf_counter()
            scores = self._scores(e.input)
            best = self.labels[max(range(len(scores)), key=scores.__getitem__)]
            secs = time.perf_counter() - t0
            preds.append(
                Prediction(e.id, best, True, None, best, scores, latency_s=secs, compute_s=secs)
            )
        return preds


class Keywords:
    name = "keywords"
    family = "other"
    Config = KeywordsConfig

    def skip_reason(self, ctx) -> str | None:
        if ctx.task.kind != "classify":
            return f"a {ctx.task.kind} task: the keywords baseline classifies only"
        return None

    def prepare(self, ctx) -> Prepared:
        cfg: KeywordsConfig = ctx.rung_config(self)
        return Prepared(KeywordSolution(ctx.task.labels, ctx.dataset.train, cfg.alpha))


def register(regs) -> None:
    regs.rungs.register("keywords", Keywords())
