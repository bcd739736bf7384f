"""The climb's plan: what each rung will cost on this machine, and what a budget cuts.

`measure_speed` times a few dev answers of the plain zero-shot prompt (seconds per item and
prompt tokens per second). `make_plan` turns that into seconds per rung and phase from the
split sizes, the variants each rung races, the repeats and the fine-tuning settings. With a
budget, it cuts in a fixed order until the estimate fits, cheapest loss of evidence first:

1. the data curve (gate 3 judges "enough data" without it);
2. the consistency sample, sized for a 95% CI of ±0.25 instead of ±0.15;
3. the dev items a prompt rung races its variants on (64, then 48, then 32), interleaved with
   fine-tuning epochs (to 3, then 2; early stopping on dev still keeps the best one), then
   chain-of-thought variants and few-shot's random demonstrations.

Each cut that widens an interval says by how much (`Plan.widened`). Hold-out sizes are never
cut, so no hold-out interval widens: every rung is still measured on the same hold-out.

Estimates, not promises. Training is timed, not guessed: when a fine-tuning rung is planned,
the probe also runs the forward pass of a few training records (the adapter's own short prompt,
the vocabulary projection at the answer tokens only, no prefix cache: what a training step
computes), and a training step costs about three of those (a backward pass is about two
forwards). Few-shot prompts scale with their length.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ladder.errors import LadderError
from ladder.rungs.context import Context, answers_by_scoring
from ladder.rungs.racing import FIRST_ROUND
from ladder.timing import PHASES

PROBE_ITEMS = 4  # dev answers timed to measure this machine's speed
TRAIN_COST = 3.0  # a training step costs about three forwards of its records (+ backward)
LORA_RUNGS = ("lora", "distill")
DEV_CAPS = (64, 48, 32)  # dev items a budget may limit a prompt race to, in order
BUDGET_CONSISTENCY = 0.25  # the consistency CI half-width a budget may relax to
PLAN_ONLY = ("dev_items",)  # settings the climb applies itself, not rung configuration
EVAL = "eval"  # overrides key for climb-wide evaluation settings
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600}


def parse_budget(text: str) -> float:
    """`10m`, `90s`, `1.5h` or plain seconds -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise LadderError(
            f"--budget {text!r} is not a duration.",
            fix="give a positive time such as 90s, 10m or 1.5h (plain numbers are seconds).",
        )
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@dataclass
class Speed:
    item_s: float  # seconds per answered item, plain zero-shot prompt
    prompt_tokens: float  # its mean prompt tokens
    tokens_per_s: float  # prompt tokens per second, answering (label scoring or generation)
    items: int  # how many items were timed
    record_s: float = 0.0  # seconds of one training record's forward pass (0: not measured)

    def describe(self) -> dict[str, Any]:
        return {k: round(v, 4) for k, v in vars(self).items()}


def measure_speed(ctx: Context, tuned: str | None = None) -> Speed:
    """Time the first dev answers of zero-shot's `instructions+format` variant.

    They go through the run store like any prediction, so the race reuses them and a resumed
    climb re-reads their measured seconds instead of answering again. With a fine-tuning rung
    (`tuned`) planned, the forward pass of a few of its training records is timed too.
    """
    from ladder.rungs.prompting import PromptSolution

    items = ctx.examples("dev")[:PROBE_ITEMS]
    if not items:
        return Speed(0.0, 0.0, 1.0, 0)
    sol = PromptSolution(ctx, "zero-shot", "instructions+format")
    preds = ctx.predict(sol, items, "dev", desc="measuring this machine")
    seconds = max(sum(p.compute_s for p in preds), 1e-6)
    tokens = sum(p.tokens_in for p in preds)
    record = _record_seconds(ctx, tuned) if tuned else 0.0
    return Speed(seconds / len(preds), tokens / len(preds), tokens / seconds, len(preds), record)


RECORD_PROBE = 8  # training records whose forward pass the probe times (one batch, twice)


def _record_seconds(ctx: Context, rung: str) -> float:
    """Seconds of one training record's forward: its short prompt, then its answer scored as
    the one choice (the projection at the answer tokens only), without a prefix cache, as a
    training step runs it; 0 when the engine cannot score."""
    import time

    from ladder.engines.base import ScoreRequest
    from ladder.rungs.lora import short_builder

    engine, train = ctx.engine(), ctx.dataset.train[:RECORD_PROBE]
    if not getattr(engine, "supports_scoring", False) or not train:
        return 0.0
    kind = ctx.task.kind_impl
    builder = short_builder(ctx.task, _cfg(ctx, rung, {}).get("max_input_chars", 400))
    requests = [
        ScoreRequest(builder.render(e.input), [" " + kind.render_output(e.output, ctx.task)])
        for e in train
    ]
    cached = getattr(engine, "use_prefix_cache", None)
    if cached is not None:
        engine.use_prefix_cache = False  # training shares no prefix cache between records
    try:
        seconds = math.inf
        for _ in range(2):  # the first pass also pays for new shapes; keep the warm one
            t0 = time.perf_counter()
            engine.score(requests)
            seconds = min(seconds, time.perf_counter() - t0)
    finally:
        if cached is not None:
            engine.use_prefix_cache = cached
    return seconds / len(requests)


@dataclass
class Plan:
    budget_s: float | None
    speed: Speed
    rungs: dict[str, dict[str, float]]  # rung -> phase -> estimated seconds
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # rung -> settings
    cuts: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)

    @property
    def eta_s(self) -> float:
        return sum(sum(p.values()) for p in self.rungs.values())

    def describe(self) -> dict[str, Any]:
        return {
            "budget_s": self.budget_s,
            "eta_s": round(self.eta_s, 1),
            "speed": self.speed.describe(),
            "rungs": {r: {k: round(v, 1) for k, v in p.items()} for r, p in self.rungs.items()},
            "overrides": self.overrides,
            "cuts": self.cuts,
            "widened": self.widened,
        }


def make_plan(ctx: Context, rung_names: list[str], speed: Speed, budget_s: float | None) -> Plan:
    """Seconds per rung and phase; with a budget, the cuts that make it fit (in order)."""
    overrides: dict[str, dict[str, Any]] = {}
    plan = Plan(budget_s, speed, _estimate(ctx, rung_names, speed, overrides), overrides)
    if budget_s is None or ctx.schedule == "exhaustive":
        return plan
    for rung, setting, value, why in _cut_steps(ctx, rung_names):
        if plan.eta_s <= budget_s:
            break
        overrides.setdefault(rung, {})[setting] = value
        plan.rungs = _estimate(ctx, rung_names, speed, overrides)
        plan.cuts.append(f"{rung}.{setting} → {value}: {why}")
    if plan.cuts:
        plan.widened = _widened(ctx, overrides)
    return plan


def _widened(ctx: Context, overrides) -> list[str]:
    """What each cut costs in evidence, in the interval it widens."""
    from ladder.evaluation.evaluate import CONSISTENCY_HALF_WIDTH

    n_dev = len(ctx.examples("dev"))
    out = []
    for rung, o in overrides.items():
        if "dev_items" in o:
            cap = o["dev_items"]
            out.append(
                f"{rung}: variants are chosen on {cap} of {n_dev} dev items (a dev proportion's "
                f"95% CI up to ±{_half(cap):.2f} instead of ±{_half(n_dev):.2f}); "
                "the hold-out is unchanged"
            )
    if EVAL in overrides:
        out.append(
            f"consistency: 95% CI up to ±{overrides[EVAL]['consistency_half_width']:.2f} "
            f"instead of ±{CONSISTENCY_HALF_WIDTH:.2f}"
        )
    if any("data_curve" in o for o in overrides.values()):
        out.append("gate 3 judges 'enough data' without a curve")
    out.append("no hold-out interval widened: hold-out n is never cut")
    return out


def _half(n: int) -> float:
    """The widest 95% CI half-width of a proportion on n items (at p = 0.5)."""
    return 1.96 * (0.25 / max(n, 1)) ** 0.5


def _cut_steps(ctx: Context, rung_names: list[str]):
    """What a budget may cut, cheapest loss of evidence first."""
    tuned = [r for r in LORA_RUNGS if r in rung_names]
    prompt = [r for r in rung_names if r not in LORA_RUNGS]
    n_dev = len(ctx.examples("dev"))
    for r in tuned:
        yield r, "data_curve", None, "no data-sufficiency curve (saves 3/4 of a training)"
    ev = ctx.task.spec.eval
    if not _scored(ctx) and ev.repeats >= 2 and "consistency_sample" not in ev.model_fields_set:
        yield EVAL, "consistency_half_width", BUDGET_CONSISTENCY, "a smaller consistency sample"
    for cap, epochs in zip(DEV_CAPS, (3, 2, None), strict=True):
        for r in prompt:
            if n_dev > cap:
                yield r, "dev_items", cap, "variants race on fewer dev items"
        for r in tuned if epochs else ():
            if _cfg(ctx, r, {}).get("epochs", _default_epochs()) > epochs:
                yield r, "epochs", epochs, "fewer epochs (early stopping keeps the best on dev)"
    for r in prompt:
        if _cfg(ctx, r, {}).get("chain_of_thought"):
            yield r, "chain_of_thought", False, "no chain-of-thought variant (it generates)"
    if "few-shot" in prompt and "random" in (_cfg(ctx, "few-shot", {}).get("selection") or []):
        kept = [s for s in _cfg(ctx, "few-shot", {})["selection"] if s != "random"]
        if kept:
            yield "few-shot", "selection", kept, "no random demonstrations (knn, balanced stay)"


def _default_epochs() -> int:
    """LoraConfig's, for a fine-tuning rung without a config of its own."""
    from ladder.rungs.lora import LoraConfig

    return LoraConfig.model_fields["epochs"].default


def _scored(ctx: Context) -> bool:
    return answers_by_scoring(ctx.task, ctx.engine())


def _cfg(ctx: Context, rung: str, overrides) -> dict[str, Any]:
    from ladder.registry import registries

    r = registries().rungs.get(rung)
    raw = {**ctx.task.rung_config(rung), **ctx.options.get(rung, {}), **overrides.get(rung, {})}
    raw = {k: v for k, v in raw.items() if k not in PLAN_ONLY}
    cfg = r.Config.model_validate(raw) if getattr(r, "Config", None) else None
    return cfg.model_dump() if cfg is not None else raw


def _variants(ctx: Context, rung: str, cfg: dict[str, Any]) -> int:
    """Prompt sets the engine answers: a calibrated variant reuses its twin's label scores."""
    if names := cfg.get("variants"):
        return len({v.removesuffix("+calibrated") for v in names})
    extra = len(ctx.task.spec.prompt.templates) + bool(cfg.get("chain_of_thought"))
    if rung == "zero-shot":
        return 2 + extra
    if rung == "few-shot":
        k = len(cfg.get("k") or [4])
        per = {"random": k, "knn": k, "balanced": 1}
        return sum(per.get(s, k) for s in cfg.get("selection") or []) + extra
    return 3  # rag, long-context: modes and k chosen on dev


def _dev_items(n_dev: int, variants: int, race: bool) -> float:
    """Dev answers of a selection: all under exhaustive; racing assumes half finish dev."""
    if variants <= 1:
        return 0.0
    if not race or n_dev <= FIRST_ROUND:
        return float(variants * n_dev)
    return variants * FIRST_ROUND + max(1.0, variants / 2) * (n_dev - FIRST_ROUND)


def _estimate(ctx: Context, rung_names, speed: Speed, overrides) -> dict[str, dict[str, float]]:
    ds, ev = ctx.dataset, ctx.task.spec.eval
    n_dev, n_hold, n_train = len(ctx.examples("dev")), len(ctx.examples("holdout")), len(ds.train)
    scored = _scored(ctx)
    race = ctx.schedule != "exhaustive"
    out: dict[str, dict[str, float]] = {}
    for rung in rung_names:
        cfg = _cfg(ctx, rung, overrides)
        item = speed.item_s * _length_factor(ctx, rung, cfg, speed)
        phases = {"hold-out": n_hold * item}
        if not scored and ev.repeats >= 2:
            sample = _consistency_items(ctx, overrides.get(EVAL, {}).get("consistency_half_width"))
            phases["consistency"] = min(n_hold, sample) * ev.repeats * item
        if rung in LORA_RUNGS:
            phases.update(_tuning(cfg, n_train, n_dev, n_hold, speed))
            phases["dev selection"] = n_dev * speed.item_s  # the adapter's dev score
            if rung == "distill":
                phases["other"] = n_train * speed.item_s * 2  # the teacher labels the pool
        else:
            v = _variants(ctx, rung, cfg)
            cap = overrides.get(rung, {}).get("dev_items") or n_dev
            phases["dev selection"] = _dev_items(min(n_dev, cap), v, race) * item
        out[rung] = {p: phases[p] for p in PHASES if p in phases}
    return out


def _consistency_items(ctx: Context, half_width: float | None) -> int:
    from ladder.evaluation.evaluate import consistency_items

    return consistency_items(ctx, ctx.task.spec.eval.repeats, half_width)


def _length_factor(ctx: Context, rung: str, cfg, speed: Speed) -> float:
    """How much longer this rung's prompts are than the plain zero-shot one."""
    if rung == "few-shot":
        k = max(cfg.get("k") or [4])
        chars = [min(len(e.input), cfg.get("max_demo_chars", 500)) for e in ctx.dataset.train[:50]]
        demo = sum(chars) / max(len(chars), 1) / 4 + 8  # ~4 characters a token, + label lines
        return 1 + k * demo / max(speed.prompt_tokens, 1)
    if rung in ("rag", "long-context"):
        return 3.0
    return 1.0


def _tuning(cfg, n_train: int, n_dev: int, n_hold: int, speed: Speed) -> dict[str, float]:
    """Training: epochs x (train records forward + backward, dev records forward for its loss)."""
    record = speed.record_s or speed.item_s  # unmeasured: a record costs about an answer
    per_epoch = (n_train * TRAIN_COST + n_dev) * record
    training = cfg.get("epochs", _default_epochs()) * per_epoch
    phases = {"training": training}
    if cfg.get("data_curve"):
        phases["data curve"] = 0.75 * training + 2 * n_hold * speed.item_s
    if cfg.get("forgetting", True):
        phases["forgetting"] = 2 * 2048 / speed.tokens_per_s
    return phases
