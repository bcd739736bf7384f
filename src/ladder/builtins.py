"""Ladder's own kinds, metrics, engines, rungs and models, registered like any plugin's."""

from __future__ import annotations

from ladder.registry import Registries


def register(regs: Registries) -> None:
    from ladder.engines import resolve as models
    from ladder.evaluation.metrics import BUILTIN_METRICS
    from ladder.kinds import QA, Classify, Extract
    from ladder.rungs.distill import Distill
    from ladder.rungs.longcontext import LongContext
    from ladder.rungs.lora import Lora
    from ladder.rungs.prompting import FewShot, ZeroShot
    from ladder.rungs.rag import Rag

    regs.kinds.register("classify", Classify())
    regs.kinds.register("extract", Extract())
    regs.kinds.register("qa", QA())
    for m in BUILTIN_METRICS:
        for kind in m.kinds:
            regs.metrics.register(f"{kind}/{m.name}", m)
    regs.engines.register("hf", models.hf_factory)
    regs.engines.register("openai", models.openai_factory)
    regs.engines.register("vllm", models.vllm_factory)
    regs.engines.register("fake", models.fake_factory)
    # rungs in ladder order: cheapest first
    regs.rungs.register("zero-shot", ZeroShot())
    regs.rungs.register("few-shot", FewShot())
    regs.rungs.register("rag", Rag())
    regs.rungs.register("long-context", LongContext())
    regs.rungs.register("lora", Lora())
    regs.rungs.register("distill", Distill())
    for entry in models.builtin_models():
        regs.models.register(entry.name, entry)
