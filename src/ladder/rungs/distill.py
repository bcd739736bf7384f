"""The `distill` rung: a LoRA student trained on a teacher's answers for unlabeled inputs.

The teacher (`rungs.distill.teacher`) is, by default (`auto`), a prompt on a model other than
the student's own base model (a teacher prompting that base only hands the student its errors):
- the best prompting rung of this run (zero-shot or few-shot, best on dev) when the prompting
  rungs run on another model than the student's base;
- else the best zero-shot/few-shot prompt on the one other model configured under `models:`,
  chosen on dev under the rung name `distill`;
- else none, and the rung is skipped, saying so (several other models: name one).
An explicit teacher is one of:
- a rung name (`few-shot`, `zero-shot`, `lora`, a plugin's rung): the solution that rung
  prepares in this run; its dev selection and stored predictions are reused, not redone;
- a folder holding a Ladder adapter (`ladder-adapter.json`): that adapter on its base model;
- a model name (`openai:gpt-4o-mini`, a `models:` entry in task.yaml, `hf:<folder>`): that
  model with the zero-shot prompt (instructions, labels, output format).

The pool is the task's `unlabeled:` inputs, or the train inputs with their labels hidden.
Inputs that also appear in dev or the hold-out (normalised text) are removed: the hold-out
never trains anything, not even through a teacher. Only answers that parse and pass the task's
validation (a known label, a schema-valid object) become training examples.

Before anything is labelled, a run that has a `lora` scorecard compares the teacher's dev score
(primary metric) with lora's: a teacher no better than the student trained on gold labels can
only teach its errors, so the rung declines (`RungSkipped`) with both figures.

The scorecard reports the student on the hold-out like any rung, plus `extras["teacher"]`
(what labelling cost: calls, tokens, seconds, kept, dropped; `check`: what was compared with lora) and `extras["agreement_with_teacher"]`
(share of hold-out items where student and teacher give the same answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ladder.dataset import Example
from ladder.errors import DataError, TaskError
from ladder.rungs.base import Prepared, RungSkipped, select_on_dev
from ladder.rungs.context import Context
from ladder.rungs.lora import Fitted, Lora, LoraConfig, finish, fit, rung_config, serve_adapter
from ladder.rungs.solution import Solution

AUTO = "auto"
PROMPTING = ("zero-shot", "few-shot")  # the rungs whose best prompt can teach by default


class DistillConfig(LoraConfig):
    teacher: str | None = Field(
        None,
        description="auto (default): the best prompt on a model other than the student's base; "
        "or a rung of this run, an adapter folder, a model name",
    )
    pool: int | None = Field(None, ge=1, description="label at most the first N pool inputs")
    data_curve: list[int] | Literal["auto"] | None = Field(
        None, description="train sizes for a data-sufficiency curve (off by default)"
    )


def build_pool(ctx: Context, limit: int | None) -> tuple[list[Example], int, str]:
    """(pool inputs, how many were removed for overlapping dev/hold-out, where they came from)."""
    from ladder.dataset import load_examples, normalize

    spec = ctx.task.spec.unlabeled
    if spec is not None:
        exs = load_examples(ctx.task, spec, labelled=False)[0]
        source = f"unlabeled: {spec.path}"
    else:
        exs = [Example(e.id, e.input, None, e.meta, e.line) for e in ctx.dataset.train]
        source = "train inputs, labels hidden"
    guarded = ctx.dataset.holdout_inputs() | {normalize(e.input) for e in ctx.dataset.dev}
    pool = [e for e in exs if normalize(e.input) not in guarded]
    removed = len(exs) - len(pool)
    return (pool[:limit] if limit else pool), removed, source


@dataclass
class Teacher:
    solution: Solution
    label: str  # what the scorecard and the skip reasons call it


@dataclass
class AutoTeacher:
    """What `teacher: auto` resolves to, decided without any prediction."""

    rungs: list[str] = field(
        default_factory=list
    )  # prompting rungs on another model than the student's
    model: str | None = None  # else: the one model under `models:` other than the student's base
    reason: str | None = None  # else: why there is no teacher worth learning from


def auto_teacher(ctx: Context, cfg: DistillConfig) -> AutoTeacher:
    """The default teacher: a prompt on a model other than the student's own base model.

    The student starts from its base model; a teacher prompting that same model only hands it
    its own errors, so the teacher must run on another model: the prompting rungs' when they
    do, else the one other model configured under `models:`.
    """
    from ladder.registry import registries

    base = cfg.model or ctx.model
    regs = registries()
    rungs = []
    for name in PROMPTING:
        if name in regs.rungs:
            rung = regs.rungs.get(name)
            model = getattr(ctx.rung_config(rung), "model", None) or ctx.model
            if model != base and not rung.skip_reason(ctx):
                rungs.append(name)
    if rungs:
        return AutoTeacher(rungs=rungs)
    others = [m for m in ctx.task.spec.models if m != base]
    if len(others) == 1:
        return AutoTeacher(model=others[0])
    if others:
        return AutoTeacher(
            reason=f"no single teacher: {len(others)} models other than the student's base "
            f"({base}) are configured under `models:` ({', '.join(others)}); choose one with "
            f"rungs.distill.teacher: NAME"
        )
    return AutoTeacher(
        reason=f"no teacher better than the student: the prompting rungs run on the student's "
        f"own base model ({base}) and no larger model is configured; add one under `models:` "
        f"or set rungs.distill.teacher"
    )


def choose_teacher(ctx: Context, cfg: DistillConfig) -> Teacher:
    """The solution that labels the pool: the configured one, or the automatic choice."""
    if cfg.teacher not in (None, AUTO):
        return teacher_solution(ctx, cfg.teacher)
    auto = auto_teacher(ctx, cfg)
    if auto.reason:
        raise RungSkipped(auto.reason)
    if auto.model:
        return best_prompt_on(ctx, auto.model)
    teachers = [rung_teacher(ctx, name) for name in auto.rungs]
    # the best on dev (ties to the cheaper rung, listed first); without dev, the last listed
    scores = [dev_score(ctx, t.solution) for t in teachers]
    if all(s is None for s in scores):
        return teachers[-1]
    return max(zip(teachers, scores), key=lambda ts: -1.0 if ts[1] is None else ts[1])[0]


def best_prompt_on(ctx: Context, model: str) -> Teacher:
    """Zero-shot and few-shot variants on `model`, chosen on dev under the rung name distill."""
    from ladder.registry import registries

    regs = registries()
    candidates = []
    for name in PROMPTING:
        rung = regs.rungs.get(name) if name in regs.rungs else None
        if rung is not None and not rung.skip_reason(ctx):
            candidates += rung.candidates(ctx, model=model)
    for c in candidates:  # their dev answers are the teacher's, not the prompting rungs'
        c.rung = "distill"
    sol = select_on_dev(ctx, candidates, "distill").solution
    return Teacher(sol, f"{model} ({sol.variant})")


def rung_teacher(ctx: Context, name: str) -> Teacher:
    """The solution a rung of this run prepares (stored dev answers are reused, not redone)."""
    from ladder.registry import registries

    rung = registries().rungs.get(name)
    reason = rung.skip_reason(ctx)
    if reason:
        raise TaskError(f"the teacher rung {name!r} cannot run: {reason}.", where=ctx.task.file)
    try:
        sol = rung.prepare(ctx).solution
    except RungSkipped as exc:
        raise RungSkipped(f"the teacher rung {name} declined: {exc.reason}") from None
    return Teacher(sol, f"{name} ({sol.variant})")


def teacher_solution(ctx: Context, spec: str) -> Teacher:
    """The teacher `rungs.distill.teacher` names: a rung, an adapter folder or a model."""
    from ladder.engines.resolve import resolve_model
    from ladder.registry import registries
    from ladder.rungs.prompting import PromptSolution
    from ladder.training.adapters import META_FILE

    if spec in registries().rungs:
        if spec == "distill":
            raise TaskError("rungs.distill.teacher cannot be distill itself.", where=ctx.task.file)
        return rung_teacher(ctx, spec)
    for path in (Path(spec).expanduser(), ctx.task.resolve(spec)):
        if (path / META_FILE).is_file():
            return Teacher(adapter_teacher(ctx, path), f"adapter {path}")
    resolve_model(spec, ctx.task)  # an unknown name raises, listing the known ones
    return Teacher(
        PromptSolution(ctx, "distill", f"teacher:{spec}", model=spec), f"{spec} (zero-shot)"
    )


def dev_score(ctx: Context, solution: Solution) -> float | None:
    """The solution's primary metric on all of dev (stored answers reused); None without dev."""
    from ladder.evaluation.scorecard import dev_summary

    dev = ctx.examples("dev")
    if not dev:
        return None
    preds = ctx.predict(solution, dev, "dev", desc="distill · teacher · dev")
    return dev_summary(ctx.task, dev, preds)[ctx.task.metric]


def lora_dev(ctx: Context) -> tuple[float, int] | None:
    """(lora's dev score on the primary metric, dev items) where this run has a lora scorecard."""
    metric = ctx.task.metric
    for card in ctx.store.scorecards(ctx.run_id):
        if card.get("rung") == "lora":
            chosen = [s for s in (card.get("selection") or {}).values() if s.get("chosen")]
            if chosen and chosen[0].get(metric) is not None:
                return float(chosen[0][metric]), int(chosen[0].get("n") or 0)
    return None


def check_teacher(ctx: Context, teacher: Teacher) -> dict[str, Any]:
    """Refuse a teacher no better on dev than lora, the student trained on gold labels.

    A student learns its teacher's errors: one that scores no higher than lora on dev can only
    give a student worse than lora, at the price of a training. Returns what was compared.
    """
    metric = ctx.task.metric
    lora = lora_dev(ctx)
    if lora is None:
        return {"compared": False, "metric": metric, "why": "no lora scorecard in this run"}
    score = dev_score(ctx, teacher.solution)
    if score is None:
        return {"compared": False, "metric": metric, "why": "no dev split"}
    check = {"compared": True, "metric": metric, "teacher_dev": score, "lora_dev": lora[0]}
    if score <= lora[0]:
        raise RungSkipped(
            f"teacher {teacher.label} scores {score:.2f} {metric} on dev, not above lora's "
            f"{lora[0]:.2f} on the same {lora[1]} dev items (the student trained on gold labels): "
            f"a student would learn the teacher's errors"
        )
    return check


def adapter_teacher(ctx: Context, folder: Path) -> Solution:
    from ladder.training.adapters import folder_bytes, load_adapter

    model, tok, meta = load_adapter(folder)
    task = meta["task"]
    if task["kind"] != ctx.task.kind or (task.get("labels") or []) != ctx.task.labels:
        raise TaskError(
            f"the teacher adapter {folder} was trained for a {task['kind']} task with labels "
            f"{task.get('labels')}, not this task's.",
            where=ctx.task.file,
            fix="use an adapter trained on this task (same kind and labels).",
        )
    base = meta["base_model"]
    fitted = Fitted(
        model, tok, base["name"], base["path"], folder, meta, folder_bytes(folder), True
    )
    return serve_adapter(ctx, fitted, "distill", "teacher", engine=f"{base['name']}+teacher")


class Distill(Lora):
    """A LoRA student on a teacher's answers, scored on the same hold-out."""

    name = "distill"
    Config = DistillConfig

    def skip_reason(self, ctx: Context) -> str | None:
        reason = super().skip_reason(ctx)
        if reason:
            return reason
        cfg: DistillConfig = rung_config(ctx, self)
        return auto_teacher(ctx, cfg).reason if cfg.teacher in (None, AUTO) else None

    def available(self, ctx: Context, cfg) -> int:
        """The pool's size: what the teacher could label for the student."""
        return len(build_pool(ctx, cfg.pool)[0])

    def prepare(self, ctx: Context) -> Prepared:
        from ladder.rungs.finetune_checks import data_curve, forgetting

        cfg: DistillConfig = rung_config(ctx, self)
        chosen = choose_teacher(ctx, cfg)
        check = check_teacher(ctx, chosen)  # before the pool is labelled or anything trains
        teacher, label = chosen.solution, chosen.label
        pool, removed, source = build_pool(ctx, cfg.pool)
        preds = ctx.predict(teacher, pool, "pool", desc=f"{self.name} · teacher labels the pool")
        kept = [
            Example(e.id, e.input, p.output, e.meta, e.line)
            for e, p in zip(pool, preds)
            if p.valid and p.output is not None
        ]
        if len(kept) < cfg.min_examples:
            raise DataError(
                f"the teacher ({label}) gave usable answers for {len(kept)} of {len(pool)} pool "
                f"inputs, fewer than rungs.distill.min_examples = {cfg.min_examples}.",
                fix="use a stronger teacher, a larger pool, or lower min_examples.",
            )
        cost = teacher_cost(teacher, label, preds, len(kept))
        cost.update(pool=source, removed_overlap=removed, check=check)
        folder = ctx.run_dir / self.name
        fitted = fit(
            ctx, self.name, cfg, kept, folder, source=f"teacher: {label}", desc="distill · student"
        )
        student = serve_adapter(ctx, fitted, self.name, f"r{cfg.r}")
        extras: dict[str, Any] = {"teacher": cost}
        if cfg.forgetting:
            extras["forgetting"] = forgetting(ctx, self.name, fitted, cfg.adjacent)
        prepared = finish(ctx, self.name, cfg, fitted, student, extras)
        prepared.extras.update(agreement(ctx, teacher, student))
        if cfg.data_curve:
            prepared.extras["data_curve"] = data_curve(ctx, self, cfg, kept, student)
        return prepared


def teacher_cost(teacher: Solution, label: str, preds, kept: int) -> dict[str, Any]:
    engine = getattr(teacher, "engine", None)
    # engine, remote model and base URL: the economics price an API teacher by its list price
    # (or name the missing price), and a local one by its seconds x $/hour
    info = {k: v for k, v in engine.info().items() if k != "model"} if engine else {}
    return {
        **info,
        "model": teacher.model,
        "solution": label,
        "calls": len(preds),
        "tokens_in": int(sum(p.tokens_in for p in preds)),
        "tokens_out": int(sum(p.tokens_out for p in preds)),
        "seconds": round(
            float(sum(p.compute_s for p in preds)), 2
        ),  # engine time, resumes included
        "kept": kept,
        "dropped": len(preds) - kept,
    }


def agreement(ctx: Context, teacher: Solution, student: Solution) -> dict[str, Any]:
    """Student vs teacher on the hold-out, and the teacher's own hold-out quality."""
    from ladder.evaluation.scorecard import dev_summary

    holdout = ctx.examples("holdout")
    t = ctx.predict(teacher, holdout, "holdout", desc="distill · teacher · holdout")
    s = ctx.predict(student, holdout, "holdout")  # stored by `finish`: no new work
    same = [a.output == b.output for a, b in zip(s, t)]
    return {
        "agreement_with_teacher": round(float(np.mean(same)), 4) if same else None,
        "teacher_holdout": dev_summary(ctx.task, holdout, t),
    }
