"""What a fine-tune owes its scorecard beyond the hold-out score: forgetting, data sufficiency,
and the re-evaluation of a merged model.

- Forgetting: mean next-token loss on an adjacent text (task.yaml's `forgetting.text`, else a
  bundled general-English text the task never saw), on at most 2,048 tokens, with the adapter
  switched off and on. A fine-tune that degrades the base model shows as a relative increase;
  gate 4 counts it only when the tuned model is shared (`scope: shared`, or merged).
- Data curve: adapters trained on the first N train examples (nested, hash-ordered, so each is
  a fair sample), each scored on the same hold-out with a bootstrap interval. Whether quality
  still climbs at the full size answers "is there enough data" by measurement.
- Merge: the adapter folded into the base weights, saved as a full model folder, and evaluated
  again on the hold-out: merging changes rounding, so equality is measured, never assumed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ladder.dataset import Example, Prediction
from ladder.errors import TaskError
from ladder.rungs.context import Context
from ladder.timing import timed

BUNDLED_TEXT = Path(__file__).with_name("adjacent.txt")
BUNDLED_LABEL = "the bundled general-English text"
MAX_FORGETTING_TOKENS = 2048  # a long text is cut here: the check costs 2 passes over at most this


def forgetting_text(ctx: Context, rung: str, adjacent: str | None) -> tuple[Path, str, str | None]:
    """The text to measure on, how to name it, and the task.yaml field that chose it.

    `forgetting.text` is the documented way; `rungs.<rung>.adjacent` still works and, being the
    more specific, wins when both are given. Returns (path, label, field or None if bundled).
    """
    spec = ctx.task.spec.forgetting
    field, rel = (f"rungs.{rung}.adjacent", adjacent) if adjacent else ("forgetting.text", None)
    if rel is None and spec is not None and spec.text:
        rel = spec.text
    if rel is None:
        return BUNDLED_TEXT, BUNDLED_LABEL, None
    path = ctx.task.resolve(rel)
    if not path.is_file():
        raise TaskError(
            f"{field}: no text file at {path}.",
            where=ctx.task.file,
            fix="point it at a plain-text file, or remove it to use the bundled text.",
        )
    return path, f"your text {rel}", field


@timed("forgetting")
def forgetting(ctx: Context, rung: str, fitted, adjacent: str | None) -> dict[str, Any]:
    """Base vs adapter next-token loss on an adjacent text: `extras["forgetting"]`."""
    from ladder.training.loop import text_loss

    path, label, field = forgetting_text(ctx, rung, adjacent)
    ids = fitted.tokenizer(path.read_text(encoding="utf-8", errors="replace")).input_ids
    total = len(ids)
    ids = ids[: MAX_FORGETTING_TOKENS + 1]  # +1: the first token is context, never a target
    scored = max(len(ids) - 1, 0)
    if scored == 0:
        raise TaskError(
            f"{field or 'forgetting.text'}: {path} holds fewer than 2 tokens, nothing to score.",
            where=ctx.task.file,
            fix="give a text of a few paragraphs, or remove it to use the bundled text.",
        )
    model = fitted.model
    with model.disable_adapter():
        base = text_loss(model, ids)
    tuned = text_loss(model, ids)
    ctx.progress.log(
        f"{rung:<13} forgetting: next-token loss on {label} ({scored} tokens) {base:.3f} → "
        f"{tuned:.3f} ({(tuned - base) / base:+.1%}) with the adapter"
    )
    return {
        "adjacent": label,
        "path": str(path),
        "field": field,
        "tokens": scored,
        "text_tokens": total,
        "base_loss": round(base, 4),
        "adapter_loss": round(tuned, 4),
        "relative_increase": round((tuned - base) / base, 4),
    }


def curve_sizes(spec: list[int] | Literal["auto"] | None, n: int, minimum: int) -> list[int]:
    """Train sizes below the full one: `auto` is a quarter and a half of the train split."""
    if not spec:
        return []
    sizes = [n // 4, n // 2] if spec == "auto" else list(spec)
    return sorted({s for s in sizes if minimum <= s < n})


def curve_unneeded(ctx: Context, n_train: int, n_hold: int, full: dict[str, Any]) -> str | None:
    """Why gate 3 needs no curve, or None: the adapter meets the bar on enough data already.

    Gate 3 answers yes whether the curve flattens or still rises once the bar is met; without a
    curve it falls back to its rule of thumb (train and hold-out sizes), which then says yes too.
    `--schedule exhaustive` always measures the curve.
    """
    from ladder.guard import MIN_HOLDOUT, MIN_TRAIN

    bar = ctx.task.spec.bar
    if ctx.schedule == "exhaustive" or bar is None or full["metric"] != bar.metric:
        return None
    if full["value"] < bar.threshold or n_train < MIN_TRAIN or n_hold < MIN_HOLDOUT:
        return None
    return (
        f"{full['metric']} {full['value']:.2f} meets the bar {bar.threshold} with train {n_train} "
        f"≥ {MIN_TRAIN} and hold-out {n_hold} ≥ {MIN_HOLDOUT}, so gate 3 answers yes without it"
    )


def curve_point(ctx: Context, n: int, holdout: list[Example], preds: list[Prediction]):
    from ladder.evaluation.metrics import metric_for
    from ladder.evaluation.scorecard import table_for
    from ladder.evaluation.stats import bootstrap_ci

    metric = ctx.task.metric
    ev = ctx.task.spec.eval
    table = table_for(ctx.task, holdout, preds)
    fn = metric_for(ctx.task.kind, metric).fn
    v, lo, hi = bootstrap_ci(fn, table, len(holdout), resamples=ev.bootstrap, seed=ev.seed)
    return {
        "examples": n,
        "metric": metric,
        "value": round(v, 4),
        "ci_low": round(lo, 4),
        "ci_high": round(hi, 4),
    }


@timed("data curve")
def data_curve(ctx: Context, rung, cfg, train: list[Example], solution) -> list[dict[str, Any]]:
    """Hold-out quality at smaller train sizes, then at the full size: `extras["data_curve"]`."""
    from ladder.rungs.lora import fit, release, serve_adapter

    holdout = ctx.examples("holdout")
    full = curve_point(ctx, len(train), holdout, ctx.predict(solution, holdout, "holdout"))
    unneeded = curve_unneeded(ctx, len(train), len(holdout), full)
    if unneeded:
        ctx.progress.log(f"{rung.name:<13} data curve skipped: {unneeded}")
        return [{**full, "curve_skipped": unneeded}]
    small = cfg.model_copy(update={"data_curve": None, "merge": False})
    points = []
    for n in curve_sizes(cfg.data_curve, len(train), cfg.min_examples):
        folder = ctx.run_dir / rung.name / f"curve-{n}"
        desc = f"{rung.name} · curve · {n} examples"
        fitted = fit(ctx, rung.name, small, train[:n], folder, source=f"first {n}", desc=desc)
        variant = f"{solution.variant}/n{n}"
        sol = serve_adapter(
            ctx, fitted, rung.name, variant, engine=f"{fitted.base}+{rung.name}/n{n}"
        )
        preds = ctx.predict(sol, holdout, "holdout", desc=f"{desc} · holdout")
        points.append(curve_point(ctx, n, holdout, preds))
        ctx.store.add_artifact(
            ctx.run_id, rung.name, "curve-adapter", str(fitted.folder), fitted.bytes, points[-1]
        )
        release(fitted, sol)
    points.append(full)
    shown = " · ".join(
        f"{p['examples']} → {p['value']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]"
        for p in points
    )
    ctx.progress.log(f"{rung.name:<13} data curve ({points[0]['metric']}, holdout): {shown}")
    return points


def merged_check(ctx: Context, rung: str, fitted, solution, preds: list[Prediction]):
    """Merge the adapter into a full model folder and score that folder on the hold-out."""
    import torch

    from ladder.engines.hf import HFEngine
    from ladder.evaluation.scorecard import dev_summary
    from ladder.rungs.lora import AdapterSolution
    from ladder.training.adapters import folder_bytes, load_adapter, merge_into

    out = fitted.folder.parent / "merged"
    if not (out / "config.json").exists():  # written whole, then renamed: never half a folder
        tmp = out.with_name(f".merged-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model, tok, _ = load_adapter(fitted.folder)
        merge_into(model, tok, tmp)
        del model
        os.replace(tmp, out)
    name = f"{fitted.base}+{rung}-merged"
    ctx.set_engine(name, HFEngine(name, str(out), threads=torch.get_num_threads()))
    info = {"merged_from": str(fitted.folder)}
    max_chars = fitted.meta["prompt"]["max_input_chars"]
    sol = AdapterSolution(
        ctx, rung, f"{solution.variant}+merged", model=name, max_input_chars=max_chars, adapter=info
    )
    holdout = ctx.examples("holdout")
    merged = ctx.predict(sol, holdout, "holdout", desc=f"{rung} · merged · holdout")
    sol.engine.close()
    size = folder_bytes(out)
    result = {
        "path": str(out),
        "bytes": size,
        "holdout": dev_summary(ctx.task, holdout, merged),
        "agreement_with_adapter": round(
            float(np.mean([a.output == b.output for a, b in zip(merged, preds)])), 4
        ),
    }
    ctx.store.add_artifact(ctx.run_id, rung, "merged-model", str(out), size, result)
    return result
