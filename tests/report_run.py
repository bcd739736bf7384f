"""A climb with a realistic shape for economics and report tests, on fake engines (fast).

Prompting rungs run on `openai:gpt-4o-mini` (priced from the price book) through a scripted
FakeEngine that is right on a fixed share of items and confuses spam with work whatever the
prompt; a `tuned` rung (registered for the test) stands in for a fine-tune: self-hosted, more
accurate, with the `extras` the fine-tuning rungs record (training, forgetting, data curve).
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path

from conftest import PARTS, write_classify_task
from ladder.climb import ClimbOptions, climb
from ladder.dataset import Prediction
from ladder.engines.fake import FakeEngine
from ladder.registry import registries
from ladder.rungs.base import Prepared

LARGE = "openai:gpt-4o-mini"


def _unit(*parts: str) -> float:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "big") / 2**64


def rows(n_per_label: int = 60) -> list[tuple[str, str]]:
    out = []
    for label, (heads, tails) in PARTS.items():
        for k in range(n_per_label):
            out.append((f"{heads[k % 5]}, {tails[(k // 5) % 5]}. Ticket {k}", label))
    return out


def answer(gold: str, text: str, accuracy: float, salt: str) -> str:
    """Right on `accuracy` of items (fixed per item); wrong answers confuse spam with work."""
    if _unit(salt, text) < accuracy:
        return gold
    return {"spam": "work", "work": "personal", "personal": "work"}[gold]


def scores_for(choice: str, labels: list[str], text: str) -> list[float]:
    margin = 0.2 + 3.0 * _unit("margin", text)
    return [0.0 if lab == choice else -margin - _unit(lab, text) for lab in labels]


class RemoteFake(FakeEngine):
    """Scripted answers, but reports itself as a remote OpenAI-compatible endpoint."""

    def __init__(self, name: str, remote: str, base_url: str | None, **kw):
        super().__init__(name, **kw)
        self.remote, self.base_url = remote, base_url

    def info(self):
        return {
            "engine": "openai",
            "model": self.model,
            "remote_model": self.remote,
            "base_url": self.base_url,
        }


def large_engine(
    gold: dict[str, str], name: str = LARGE, remote: str = "gpt-4o-mini", base_url=None
) -> FakeEngine:
    def scorer(req):
        query = req.prompt.rsplit("Input:\n", 1)[-1]
        text = next((t for t in gold if query.startswith(t)), None)
        if text is None:
            return [-1.0 for _ in req.choices]
        shots = req.prompt.count("Input:\n")
        acc = 0.86 if shots > 1 else 0.55  # few-shot prompts carry demonstrations
        lab = answer(gold[text], text, acc, "large")
        return scores_for(lab, [c.strip() for c in req.choices], text)

    return RemoteFake(name, remote, base_url, scorer=scorer, latency_s=0.4)


class TunedSolution:
    rung, variant, model = "tuned", "adapter-r8", "gemma-3-270m+lora"

    def __init__(self, labels, gold):
        self.labels, self.gold = labels, gold
        self.engine = self

    def info(self):
        return {"engine": "hf", "model": self.model, "device": "cpu", "threads": 2}

    def describe(self):
        return {"rung": self.rung, "variant": self.variant, "model": self.model}

    def predict(self, examples, *, temperature=0.0, seed=0):
        out = []
        for ex in examples:
            lab = answer(ex.output, ex.input, 0.93, "tuned")
            sc = scores_for(lab, self.labels, ex.input)
            n = len(ex.input.split())
            out.append(Prediction(ex.id, lab, True, None, lab, sc, n, 1, 0.21, 0.2))
        return out


class TunedRung:
    name = "tuned"
    Config = None

    def skip_reason(self, ctx):
        return None

    def prepare(self, ctx):
        gold = {e.input: e.output for e in ctx.dataset.examples}
        extras = {
            "training": {
                "seconds": 120.0,
                "device": "cpu",
                "examples": 90,
                "tokens": 9000,
                "epochs": 3,
            },
            "forgetting": {
                "adjacent": "ticket-extract",
                "base_loss": 2.0,
                "adapter_loss": 2.02,
                "relative_increase": 0.01,
            },
            "data_curve": [
                {
                    "examples": n,
                    "metric": "accuracy",
                    "value": v,
                    "ci_low": v - 0.08,
                    "ci_high": min(1, v + 0.06),
                }
                for n, v in ((10, 0.52), (25, 0.78), (50, 0.9), (90, 0.91))
            ],
        }
        return Prepared(TunedSolution(ctx.task.labels, gold), {}, None, extras)


@contextmanager
def tuned_rung_registered():
    regs = registries().rungs
    regs.register("tuned", TunedRung(), replace=True)
    try:
        yield
    finally:
        regs._items.pop("tuned", None)


def demo_task(root: Path, extra_yaml: str = "") -> Path:
    return write_classify_task(
        root,
        rows=rows(),
        extra_yaml="volume: {calls_per_day: 50000}\nleakage: {mode: report}\n"
        "prices: {assumptions: {maintenance_per_month: 5}}\n" + extra_yaml,
    )


def demo_climb(
    root: Path, extra_yaml: str = "", model: str = LARGE, remote=("gpt-4o-mini", None), **opts
):
    task_dir = demo_task(root, extra_yaml)
    from ladder.dataset import load_dataset
    from ladder.task import load_task

    gold = {e.input: e.output for e in load_dataset(load_task(task_dir), "report").examples}

    def hook(ctx):
        ctx.set_engine(model, large_engine(gold, model, *remote))

    with tuned_rung_registered():
        return climb(
            task_dir,
            ClimbOptions(
                model=model, all_rungs=True, rungs=["zero-shot", "few-shot", "tuned"], **opts
            ),
            ctx_hook=hook,
        )
