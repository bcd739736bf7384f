"""A chain-of-thought call's cost counts its share of engine time, not its batch's wait."""

from __future__ import annotations

from ladder.dataset import load_dataset
from ladder.engines.base import Completion
from ladder.engines.fake import FakeEngine
from ladder.rungs.context import Context
from ladder.rungs.prompting import COT, PromptSolution
from ladder.store.db import Store
from ladder.task import load_task


class BatchedFake(FakeEngine):
    """Like a batched engine: each request waited 8 s (its batch) but used 1 s of engine time."""

    supports_scoring = False

    def generate(self, requests):
        out = super().generate(requests)
        return [Completion(c.text, c.tokens_in, c.tokens_out, 8.0, 1.0) for c in out]


def test_cot_compute_seconds_are_the_thoughts_share_not_its_batch_latency(classify_task, tmp_path):
    task = load_task(classify_task)
    ds = load_dataset(task)
    ctx = Context(task, ds, Store(tmp_path / "runs"), "r", tmp_path, "fake")
    ctx.set_engine("fake", BatchedFake())
    sol = PromptSolution(ctx, "zero-shot", "cot", template=COT, cot=True)
    preds = sol.predict(ds.splits["holdout"][:4])
    # two calls per example (the thought, then the answer): 2 × 8 s waited, 2 × 1 s of compute
    assert [p.latency_s for p in preds] == [16.0] * 4
    assert [p.compute_s for p in preds] == [2.0] * 4
