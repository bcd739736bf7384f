"""The `distill` rung: a LoRA student trained on a teacher's answers for unlabeled inputs.

The teacher (`rungs.distill.teacher`) is one of:
- a rung name (`few-shot`, `zero-shot`, `lora`, a plugin's rung): the solution that rung
  prepares in this run; its dev selection and stored predictions are reused, not redone;
- a folder holding a Ladder adapter (`ladder-adapter.json`): that adapter on its base model;
- a model name (`openai:gpt-4o-mini`, a `models:` entry in task.yaml, `hf:<folder>`): that
  model with the zero-shot prompt (instructions, labels, output format).

The pool is the task's `unlabeled:` inputs, or the train inputs with their labels hidden.
Inputs that also appear in dev or the hold-out (normalised text) are removed: the hold-out
never trains anything, not even through a teacher. Only answers that parse and pass the task's
validation (a known label, a schema-valid object) become training examples.

The scorecard reports the student on the hold-out like any rung, plus `extras["teacher"]`
(what labelling cost: calls, tokens, seconds, kept, dropped) and `extras["agreement_with_teacher"]`
(share of hold-out items where student and teacher give the same answer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ladder.context import Context
from ladder.dataset import Example
from ladder.errors import DataError, TaskError
from ladder.rungs.base import Prepared
from ladder.rungs.lora import Fitted, Lora, LoraConfig, finish, fit, rung_config, serve_adapter
from ladder.solution import Solution


class DistillConfig(LoraConfig):
    teacher: str = Field(
        "few-shot", description="a rung of this run, an adapter folder, or a model name"
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


def teacher_solution(ctx: Context, spec: str) -> tuple[Solution, str]:
    """The solution that labels the pool, and a short description of it."""
    from ladder.models import resolve_model
    from ladder.registry import registries
    from ladder.rungs.prompting import PromptSolution
    from ladder.training.adapters import META_FILE

    regs = registries()
    if spec in regs.rungs:
        if spec == "distill":
            raise TaskError("rungs.distill.teacher cannot be distill itself.", where=ctx.task.file)
        rung = regs.rungs.get(spec)
        reason = rung.skip_reason(ctx)
        if reason:
            raise TaskError(f"the teacher rung {spec!r} cannot run: {reason}.", where=ctx.task.file)
        sol = rung.prepare(ctx).solution
        return sol, f"{spec} ({sol.variant})"
    for path in (Path(spec).expanduser(), ctx.task.resolve(spec)):
        if (path / META_FILE).is_file():
            return adapter_teacher(ctx, path), f"adapter {path}"
    resolve_model(spec, ctx.task)  # an unknown name raises, listing the known ones
    return PromptSolution(ctx, "distill", f"teacher:{spec}", model=spec), f"{spec} (zero-shot)"


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

    def available(self, ctx: Context, cfg) -> int:
        """The pool's size: what the teacher could label for the student."""
        return len(build_pool(ctx, cfg.pool)[0])

    def prepare(self, ctx: Context) -> Prepared:
        from ladder.training.checks import data_curve, forgetting

        cfg: DistillConfig = rung_config(ctx, self)  # type: ignore[assignment]
        teacher, label = teacher_solution(ctx, cfg.teacher)
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
        cost.update(pool=source, removed_overlap=removed)
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
