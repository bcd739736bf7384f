"""The dev check behind an automatic bf16 choice: same answers as fp32, and faster on the model.

When `--dtype auto` picks bf16 for scoring or generation (the kernel probe found it faster),
the first dev items of the first prompting rung (zero-shot's plain `instructions+format`
prompt) are answered in fp32 and in bf16 by the engine itself. bf16 stays for a phase only if

- the answers agree on at least `MIN_AGREEMENT` of the items,
- the paired 95% bootstrap interval of the primary metric's difference (bf16 - fp32) includes
  zero, and
- bf16 answered faster on the real model than fp32 did.

Otherwise that phase falls back to fp32 and the reason is recorded with the run. These answers
are a measurement, not predictions: they are not stored. Label scores the engine gave in the
format the climb goes on with are still the climb's (`Context.label_scores`), so the race does
not score those dev prompts again.

Scoring is checked when the engine is first loaded. Generation is checked then too, unless the
task's answers are scored labels: then its check waits for the engine's first generation (a
chain-of-thought variant, say), which a classify climb may never make; the run's provenance
lists a check that never ran under `deferred`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ladder.engines import numerics as nx

SAMPLE = 32  # dev items answered in both formats
MIN_AGREEMENT = 0.9  # share of identical answers below which bf16 is refused
LEVEL = 0.95
VARIANT = "instructions+format"  # the plain zero-shot prompt (what the planner times too)


def verdict(
    agreement: float, ci: tuple[float, float], speedup: float | None, n: int
) -> tuple[bool, str]:
    """Keep bf16 for a phase? (decision, reason) from the check's figures."""
    if n == 0:
        return False, "no dev items to check bf16 against fp32 on: fp32"
    lo, hi = ci
    if agreement < MIN_AGREEMENT:
        return False, (
            f"bf16 answers agreed with fp32 on {agreement:.0%} of {n} dev items "
            f"(< {MIN_AGREEMENT:.0%}): fp32"
        )
    if lo > 0 or hi < 0:
        return False, (
            f"bf16 changed dev quality: difference {LEVEL:.0%} CI [{lo:+.3f}, {hi:+.3f}] "
            f"excludes 0 on {n} items: fp32"
        )
    if speedup is not None and speedup <= 1.0:
        return False, f"bf16 was not faster on the model itself ({speedup:.2f}x fp32): fp32"
    fast = f", {speedup:.2f}x fp32 speed" if speedup is not None else ""
    return True, (
        f"bf16 agreed with fp32 on {agreement:.0%} of {n} dev items, quality difference CI "
        f"[{lo:+.3f}, {hi:+.3f}]{fast}: bf16"
    )


def compare(task, items, fp32, bf16, seconds: tuple[float, float]) -> dict[str, Any]:
    """Agreement, metric difference with its paired interval, and speed of two answer sets."""
    from ladder.evaluation.metrics import metric_for
    from ladder.evaluation.scorecard import table_for
    from ladder.evaluation.stats import paired_bootstrap

    n = len(items)
    metric = task.kind_impl.primary_metric
    same = [a.output == b.output and a.valid == b.valid for a, b in zip(fp32, bf16)]
    agreement = float(np.mean(same)) if n else 0.0
    fn = metric_for(task.kind, metric).fn
    ta, tb = table_for(task, items, fp32), table_for(task, items, bf16)
    boot = paired_bootstrap(fn, ta, tb, n, resamples=1000, seed=0, level=LEVEL) if n else None
    ci = (boot["ci_low"], boot["ci_high"]) if boot else (0.0, 0.0)
    t32, t16 = seconds
    speedup = t32 / t16 if t16 > 0 and t32 > 0 else None
    keep, why = verdict(agreement, ci, speedup, n)
    idx = np.arange(n)
    return {
        "n": n,
        "metric": metric,
        "fp32": round(float(fn(ta, idx)), 4) if n else None,
        "bf16": round(float(fn(tb, idx)), 4) if n else None,
        "diff": round(boot["diff"], 4) if boot else None,
        "ci": [round(ci[0], 4), round(ci[1], 4)],
        "agreement": round(agreement, 4),
        "min_agreement": MIN_AGREEMENT,
        "seconds": {"fp32": round(t32, 3), "bf16": round(t16, 3)},
        "speedup": round(speedup, 3) if speedup is not None else None,
        "kept": keep,
        "why": why,
    }


def _answer(solution, items) -> tuple[list, float]:
    t0 = time.perf_counter()
    preds = solution.predict(items) if items else []
    return preds, time.perf_counter() - t0


def check_on_dev(ctx, name: str, engine, phases: tuple[str, ...] = nx.INFERENCE) -> dict[str, Any]:
    """Check the bf16 ones of `phases` of `engine` against fp32 on dev; fall back where one fails.

    Returns {phase: figures} (also kept in `engine.numerics.agreement`).
    """
    from ladder.rungs.prompting import PromptSolution

    num = engine.numerics
    chosen = {p: num.phases[p] for p in nx.INFERENCE}
    todo = [p for p in nx.INFERENCE if chosen[p] == nx.BF16 and p in phases]
    items = ctx.examples("dev")[:SAMPLE]
    sols = {}
    for phase in todo:
        sol = PromptSolution(ctx, "zero-shot", VARIANT, model=name)
        if phase == "score" and sol.mode != "score":
            num.reasons["score"] += " (unchecked: this task's prompts never score labels)"
            continue
        sol.mode = "score" if phase == "score" else "generate"
        sols[phase] = sol
    if not sols:
        return {}
    with ctx.progress.task(f"checking bf16 against fp32 on {len(items)} dev items", total=None):
        engine.use_dtypes(dict.fromkeys(nx.INFERENCE, nx.FP32))
        ref = {p: _answer(s, items) for p, s in sols.items()}
        engine.use_dtypes(chosen)
        got = {p: _answer(s, items) for p, s in sols.items()}
    back = {}
    for phase in sols:
        figures = compare(
            ctx.task, items, ref[phase][0], got[phase][0], (ref[phase][1], got[phase][1])
        )
        num.agreement[phase] = figures
        num.reasons[phase] = figures["why"]
        if not figures["kept"]:
            back[phase] = nx.FP32
            ctx.progress.log(f"numerics: {phase} falls back to fp32: {figures['why']}")
    if back:
        engine.use_dtypes(back)
    return num.agreement
