"""The `lora` rung: a LoRA adapter for a local model, trained on the task's train split.

The adapter answers with a SHORT prompt (instructions, input, answer cue; no label list, no
format spec, no demonstrations: that is the economic point of fine-tuning, fewer tokens per
call) and answers the way the prompting rungs do (label scoring for classify, JSON generation
for extract), through the same `PromptSolution` and `HFEngine`, so the scorecards compare.

`prepare` trains (or reloads a finished adapter of this run, or resumes a killed training from
its last epoch checkpoint), measures dev and hold-out, checks forgetting on an adjacent text,
trains smaller adapters for the data-sufficiency curve, and optionally merges the adapter into
a full model folder that is then evaluated again.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from ladder.dataset import Example
from ladder.errors import DataError, ModelError
from ladder.rungs.base import Prepared
from ladder.rungs.context import Context
from ladder.rungs.prompting import PromptSolution
from ladder.rungs.prompts import PromptBuilder, PromptParts
from ladder.timing import timed
from ladder.training.adapters import DEFAULT_TARGETS

SHORT = PromptParts(instructions=True, label_block=False, answer_format=False)


class LoraConfig(BaseModel):
    """Knobs of the lora rung (task.yaml `rungs: {lora: {...}}`, or `ladder train` options)."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="base model (default: the task's); local hf only")
    r: int = Field(8, ge=1, le=512, description="LoRA rank")
    alpha: int = Field(16, ge=1, description="LoRA scale numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGETS))
    layers: Literal["all", "top-half"] | Annotated[list[NonNegativeInt], Field(min_length=1)] = (
        Field(
            "all", description="decoder layers with adapters: all, top-half, or a list of indices"
        )
    )
    # 3 (benchmarks/lora_recipe.py on email-triage): hold-out 0.88 [0.82, 0.94] with 3/4 of
    # 4 epochs' training tokens (0.875 with 4, whose best dev epoch was the 3rd; 0.61 with 2).
    # Early stopping on dev keeps the best epoch when more is too many.
    epochs: int = Field(3, ge=1, le=100)
    lr: float = Field(1e-3, gt=0, le=1)
    warmup: float = Field(0.1, ge=0, lt=1, description="fraction of steps warming up")
    batch_size: int = Field(8, ge=1, le=1024)
    batch_tokens: int = Field(2048, ge=16, description="padded tokens per micro-batch, at most")
    grad_accum: int = Field(1, ge=1, le=1024)
    processes: int = Field(
        1, ge=1, le=1024, description="data-parallel ranks; effective batch x processes"
    )
    patience: int = Field(1, ge=1, description="epochs without dev improvement before stopping")
    max_input_chars: int = Field(
        400, ge=50, description="inputs are cut to this in the adapter's prompts (train and use)"
    )
    max_seq_tokens: int = Field(512, ge=16, description="longer examples are left out of training")
    min_examples: int = Field(16, ge=1, description="fewer training examples: the rung skips")
    max_examples: int | None = Field(None, ge=1, description="train on the first N only")
    quantize: Literal["none", "4bit"] = Field("none", description="4bit = QLoRA (CUDA only)")
    data_curve: list[int] | Literal["auto"] | None = Field(
        "auto", description="train sizes for the data-sufficiency curve; auto = 1/4 and 1/2"
    )
    forgetting: bool = Field(True, description="measure next-token loss on an adjacent text")
    adjacent: str | None = Field(None, description="text file for the forgetting check")
    merge: bool = Field(False, description="also merge into a full model folder and re-evaluate")


def rung_config(ctx: Context, rung) -> Any:
    """task.yaml's settings for the rung with `ladder train` overrides (ctx.options) on top."""
    return ctx.rung_config(rung)


# ---------------------------------------------------------------- the solution


class AdapterSolution(PromptSolution):
    """A prompt solution whose engine holds base model + adapter, with the short prompt."""

    shares_scores = False  # each training (the data curve's too) makes new weights

    def __init__(
        self,
        ctx: Context,
        rung: str,
        variant: str,
        *,
        model: str,
        max_input_chars: int,
        adapter: dict,
    ):
        super().__init__(ctx, rung, variant, parts=SHORT, model=model)
        self.builder.max_chars = max_input_chars
        self.adapter = adapter

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "max_input_chars": self.builder.max_chars,
            "adapter": self.adapter,
        }


def short_builder(task, max_input_chars: int) -> PromptBuilder:
    """The adapter's prompt: instructions, input (cut to `max_input_chars`), answer cue."""
    builder = PromptBuilder(task, parts=SHORT, name="short")
    builder.max_chars = max_input_chars
    return builder


def serve_adapter(
    ctx: Context, fitted: Fitted, rung: str, variant: str, engine: str | None = None
) -> AdapterSolution:
    """Register an engine around the trained model and return the solution that uses it.

    The engine is named `base+rung` (what the scorecard shows as the model) unless given.
    """
    from ladder.engines.hf import HFEngine

    name = engine or f"{fitted.base}+{rung}"
    info = {"adapter": str(fitted.folder), "base_model": fitted.base}
    lm = fitted.model.get_base_model()
    dtypes = ctx.inference_numerics(fitted.base, lm.device.type)
    ctx.set_engine(
        name,
        HFEngine.from_model(name, lm, fitted.tokenizer, path=fitted.path, info=info, dtypes=dtypes),
    )
    adapter = {"path": str(fitted.folder), "bytes": fitted.bytes, "base_model": fitted.base}
    return AdapterSolution(
        ctx,
        rung,
        variant,
        model=name,
        max_input_chars=fitted.meta["prompt"]["max_input_chars"],
        adapter=adapter,
    )


# ---------------------------------------------------------------- training an adapter


@dataclass
class Fitted:
    model: Any  # peft model
    tokenizer: Any
    base: str  # model name
    path: str  # base model folder
    folder: Path  # the adapter folder
    meta: dict[str, Any]
    bytes: int
    reloaded: bool


def base_model(ctx: Context, cfg) -> tuple[str, str]:
    """(name, folder) of the local transformers model to adapt, prepared if needed."""
    from ladder.engines.resolve import resolve_model

    name = cfg.model or ctx.model
    entry = resolve_model(name, ctx.task)
    if entry.spec.engine != "hf":
        raise ModelError(
            f"LoRA trains a local transformers model, and {name!r} runs on the "
            f"{entry.spec.engine!r} engine.",
            fix="set `rungs.lora.model` (or `--model`) to a local model, e.g. gemma-3-270m.",
        )
    if entry.prepare is not None and not (entry.is_prepared and entry.is_prepared()):
        entry.prepare(ctx.progress)
    return name, str(entry.locate() if entry.locate else entry.spec.path)


# settings that do not change what is trained (the base model's checksum and the data are
# fingerprinted on their own)
NOT_HYPERPARAMETERS = {
    "model",
    "min_examples",
    "max_examples",
    "data_curve",
    "forgetting",
    "adjacent",
    "merge",
    "teacher",
    "pool",
}


def hyperparameters(cfg) -> dict[str, Any]:
    hp = cfg.model_dump(exclude=NOT_HYPERPARAMETERS)
    if hp.get("processes") == 1:  # alone, as before `processes` existed: old adapters reload
        del hp["processes"]
    if hp.get("layers") == "all":  # likewise, as before `layers` existed
        del hp["layers"]
    return hp


LOOP_KEYS = (
    "epochs",
    "lr",
    "warmup",
    "batch_size",
    "batch_tokens",
    "grad_accum",
    "patience",
    "seed",
)


@timed("training")
def fit(
    ctx: Context, rung: str, cfg, examples: list[Example], folder: Path, *, source: str, desc: str
) -> Fitted:
    """Train an adapter on `examples` into `folder/adapter` (or reload the one already there).

    The one path that lora, distill and the data curve share. A killed training resumes from
    `folder/checkpoints`; a finished adapter with the same fingerprint is reloaded as is.
    """
    from ladder.training import adapters
    from ladder.training.data import records_hash
    from ladder.training.loop import LoopConfig, train

    name, path = base_model(ctx, cfg)
    dtype = training_dtype(ctx, cfg)
    on_cpu = adapters.device_for(cfg.quantize) == "cpu"
    hold = cpu_hold(ctx, name, dtype) if on_cpu else None
    lm, tok = adapters.load_base(path, cfg.quantize, dtype=dtype, hold=hold)
    train_recs, skipped = records(ctx, cfg, tok, examples)
    if len(train_recs) < cfg.min_examples:
        raise DataError(
            f"{len(train_recs)} training examples fit the context ({len(skipped)} too long), "
            f"fewer than rungs.{rung}.min_examples = {cfg.min_examples}.",
            fix="add training data, lower min_examples, or raise max_seq_tokens.",
        )
    dev_recs, _ = records(ctx, cfg, tok, ctx.examples("dev"))
    hp = {**hyperparameters(cfg), "seed": ctx.seed}
    fingerprint = {
        "base_sha256": adapters.base_checksum(path),
        "task": ctx.task.name,
        "records": records_hash(train_recs),
        "dev": records_hash(dev_recs),
        "hyperparameters": hp,
    }
    out = folder / "adapter"
    done = adapters.read_meta(out) if (out / adapters.META_FILE).exists() else {}
    if done.get("fingerprint") == fingerprint:  # this very training finished before
        model = adapters.attach_saved(lm, out)
        return Fitted(model, tok, name, path, out, done, adapters.folder_bytes(out), True)
    model = adapters.attach_lora(
        lm, cfg.r, cfg.alpha, cfg.dropout, cfg.target_modules, ctx.seed, cfg.layers
    )
    under_autocast = on_cpu and dtype == "bfloat16" and hold is None
    loop = LoopConfig(**{k: hp[k] for k in LOOP_KEYS}, autocast=dtype if under_autocast else None)
    run_loop = train if cfg.processes == 1 else _parallel(cfg, path, ctx.seed, dtype, hold)
    result = run_loop(
        model,
        train_recs,
        dev_recs,
        loop,
        pad_id=tok.pad_token_id,
        folder=folder / "checkpoints",
        fingerprint=fingerprint,
        progress=ctx.progress,
        desc=desc,
    )
    data = {
        "source": source,
        "examples": len(train_recs),
        "skipped_too_long": len(skipped),
        "data_hash": ctx.dataset.data_hash,
        "records_hash": fingerprint["records"],
    }
    base = {
        "name": name,
        "path": path,
        "sha256": fingerprint["base_sha256"],
        "quantize": cfg.quantize,
    }
    meta = adapters.describe(
        ctx.task,
        rung=rung,
        run_id=ctx.run_id,
        base=base,
        prompt=prompt_meta(ctx.task, cfg),
        hyperparameters=hp,
        fingerprint=fingerprint,
        data=data,
        training=result.summary(len(train_recs)),
    )
    size = adapters.save_adapter(model, out, meta)
    return Fitted(model, tok, name, path, out, adapters.read_meta(out), size, False)


def training_dtype(ctx: Context, cfg) -> str:
    """The number format training computes in (fp32 master weights either way), recorded."""
    from ladder.engines import numerics as nx
    from ladder.training.adapters import device_for

    device = device_for(cfg.quantize)
    chosen = nx.choose(device, ctx.dtype)
    dtype, why = chosen.phases["train"], chosen.reasons["train"]
    if cfg.quantize == "4bit":
        if dtype == nx.FP32 and chosen.source == "forced":
            raise ModelError(
                "--dtype float32 cannot hold for 4-bit QLoRA: its layers compute in bfloat16.",
                fix="train without `quantize: 4bit`, or use --dtype auto or bfloat16.",
            )
        dtype, why = nx.BF16, "4-bit QLoRA computes in bf16"
    ctx.record_numerics(
        "training", {"device": device, "dtype": dtype, "reason": why, "probe": chosen.probe}
    )
    return dtype


def cpu_hold(ctx: Context, base: str, dtype: str) -> str | None:
    """`bfloat16` when the frozen base can be held in bf16 on a CPU, else None (fp32).

    Only when training computes in bf16 and both inference phases on these weights are settled
    on bf16 too: the trained model then serves the hold-out as it is, and no phase that chose
    fp32 (or still awaits its dev agreement check) is handed bf16 weights. A check deferred to
    the first generation (the task's answers are scored) does not hold it back: the adapter
    answers by scoring, and over bf16 weights it would generate in bf16 as it was trained.
    """
    from ladder.engines import numerics as nx

    if dtype != nx.BF16:
        return None
    serving = ctx.inference_numerics(base, "cpu")
    if set(serving.pending) - set(serving.deferred):
        return None
    if any(serving.phases[p] != nx.BF16 for p in nx.INFERENCE):
        return None
    return nx.BF16


def _parallel(cfg, path: str, seed: int, dtype: str | None = None, hold: str | None = None):
    """The loop across `cfg.processes` ranks, each building this very LoRA on `path`."""
    from ladder.training.parallel import Replica, train_parallel

    replica = Replica(
        path,
        cfg.quantize,
        cfg.r,
        cfg.alpha,
        cfg.dropout,
        tuple(cfg.target_modules),
        seed,
        dtype,
        hold,
        cfg.layers if isinstance(cfg.layers, str) else tuple(cfg.layers),
    )

    def run(model, *args, **kwargs):
        return train_parallel(model, replica, cfg.processes, *args, **kwargs)

    return run


def records(ctx: Context, cfg, tokenizer, examples: list[Example]):
    """Token records of examples with the adapter's short prompt; (records, skipped ids)."""
    from ladder.training.data import build_records

    kind = ctx.task.kind_impl
    builder = short_builder(ctx.task, cfg.max_input_chars)
    return build_records(
        examples,
        builder.render,
        lambda output: " " + kind.render_output(output, ctx.task),
        tokenizer,
        cfg.max_seq_tokens,
    )


def prompt_meta(task, cfg) -> dict[str, Any]:
    """How the adapter's prompts are rendered: enough to rebuild them outside a climb."""
    from ladder.rungs.prompts import BASE

    p = task.spec.prompt
    return {
        "template": BASE,
        "parts": vars(SHORT),
        "instructions": task.spec.instructions,
        "input_name": p.input_name,
        "output_name": p.output_name,
        "max_input_chars": cfg.max_input_chars,
    }


def finish(
    ctx: Context, rung: str, cfg, fitted: Fitted, solution: AdapterSolution, extras: dict
) -> Prepared:
    """Score dev and hold-out, record the scores in the adapter's metadata and the store."""
    from ladder.evaluation.scorecard import dev_summary
    from ladder.fsutil import atomic_write_json
    from ladder.rungs.finetune_checks import merged_check
    from ladder.training.adapters import META_FILE

    dev, holdout = ctx.examples("dev"), ctx.examples("holdout")
    with ctx.phase("dev selection"):  # the adapter's dev score (what the teacher check reads)
        dev_preds = ctx.predict(solution, dev, "dev", desc=f"{rung} · dev") if dev else []
    with ctx.phase("hold-out"):  # answered here once; the evaluation reads them back
        preds = ctx.predict(
            solution, holdout, "holdout", desc=f"{rung} · holdout · {solution.variant}"
        )
    meta = fitted.meta
    meta["scores"] = {
        "dev": dev_summary(ctx.task, dev, dev_preds) if dev else None,
        "holdout": dev_summary(ctx.task, holdout, preds),
    }
    atomic_write_json(fitted.folder / META_FILE, meta)
    t = meta["training"]
    keep = {k: meta[k] for k in ("base_model", "data", "hyperparameters", "scores")}
    ctx.store.add_artifact(
        ctx.run_id, rung, "adapter", str(fitted.folder), fitted.bytes, {**keep, "training": t}
    )
    ctx.progress.log(
        f"{rung:<13} trained on {meta['data']['examples']} examples · {t['epochs']} epoch(s) · "
        f"{t['tokens_per_s']:.0f} tok/s · {t['seconds']:.0f} s on {t['device']}"
        f"{' (reloaded)' if fitted.reloaded else ''} · adapter {fitted.folder} ({fitted.bytes / 1e6:.1f} MB)"
    )
    out = {
        "training": t,
        "adapter": solution.adapter,
        "hyperparameters": meta["hyperparameters"],
        "prompt": {"demonstrations": 0, "max_input_chars": cfg.max_input_chars},
        **extras,
    }
    if cfg.merge:
        out["merged"] = merged_check(ctx, rung, fitted, solution, preds)
    selection = {solution.variant: {**meta["scores"]["dev"], "chosen": True}} if dev else {}
    return Prepared(solution, selection, None, out)


def release(fitted: Fitted, solution: AdapterSolution | None = None) -> None:
    """Free a model that is no longer needed (a curve point's), before the next one loads."""
    if solution is not None:
        solution.engine.close()
    fitted.model = None
    gc.collect()


# ---------------------------------------------------------------- the rung


class Lora:
    """A LoRA adapter on the train split, evaluated with a short prompt on the same hold-out."""

    name = "lora"
    family = "fine-tune"
    Config: type[LoraConfig] = LoraConfig  # Distill's config extends it

    def skip_reason(self, ctx: Context) -> str | None:
        import importlib.util

        from ladder.engines.resolve import resolve_model

        cfg: LoraConfig = rung_config(ctx, self)
        if importlib.util.find_spec("peft") is None:
            return "needs the 'train' extra: pip install 'ladder-llm[train]'"
        name = cfg.model or ctx.model
        engine = resolve_model(name, ctx.task).spec.engine
        if engine != "hf":
            return f"{name!r} runs on the {engine!r} engine; LoRA needs a local model (rungs.{self.name}.model)"
        n = self.available(ctx, cfg)
        if n < cfg.min_examples:
            return f"only {n} examples to train on (rungs.{self.name}.min_examples is {cfg.min_examples})"
        return None

    def available(self, ctx: Context, cfg) -> int:
        """How many examples training could use."""
        return min(len(ctx.dataset.train), cfg.max_examples or len(ctx.dataset.train))

    def prepare(self, ctx: Context) -> Prepared:
        from ladder.rungs.finetune_checks import data_curve, forgetting

        cfg: LoraConfig = rung_config(ctx, self)
        train = ctx.dataset.train[: cfg.max_examples] if cfg.max_examples else ctx.dataset.train
        folder = ctx.run_dir / self.name
        fitted = fit(
            ctx, self.name, cfg, train, folder, source="train split", desc=f"{self.name} · train"
        )
        solution = serve_adapter(ctx, fitted, self.name, f"r{cfg.r}")
        extras: dict[str, Any] = {}
        if cfg.forgetting:
            extras["forgetting"] = forgetting(ctx, self.name, fitted, cfg.adjacent)
        prepared = finish(ctx, self.name, cfg, fitted, solution, extras)
        if cfg.data_curve:
            prepared.extras["data_curve"] = data_curve(ctx, self, cfg, train, solution)
        return prepared
