"""The prompting rungs: `zero-shot` and `few-shot`, and the solution they build.

A prompt solution renders one prompt per example and answers in one of two ways:
- **score**: the log-likelihood of every label after the answer cue (classification on engines
  that can score) - no generation, no parsing failures, and a label distribution to sample from;
- **generate**: text that the task kind parses (labels by normalisation, JSON by schema).
Optional chain-of-thought generates reasoning first, then answers after it.
"""

from __future__ import annotations

import random
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ladder.dataset import Example, Prediction
from ladder.engines.base import GenRequest, ScoreRequest, Scores, generate_lines
from ladder.rungs.base import Prepared, select_on_dev
from ladder.rungs.context import Context, answers_by_scoring
from ladder.rungs.prompts import BASE, COT, PromptBuilder, PromptParts
from ladder.sandbox import uses_demos

MAX_DEMO_CHARS = 500  # demonstrations are cut to this length unless a rung sets its own
CONTENT_FREE = ("N/A", "", "[MASK]")  # inputs for contextual calibration (Zhao et al., 2021)


class DemoSelector:
    """Chooses k demonstrations from train for each query, deterministically.

    - `random`: k examples drawn at random once (seeded) and shown to every query, as a fixed
      few-shot prompt is; the shared prefix is then computed once by engines that cache prefixes.
    - `balanced`: one example per label, drawn once, in a seeded order.
    - `knn`: the k train examples nearest to the query (MiniLM cosine), most similar last.
    """

    def __init__(
        self,
        strategy: str,
        k: int,
        train: list[Example],
        seed: int,
        ctx: Context | None = None,
        labels: list[str] | None = None,
    ):
        self.strategy, self.k, self.train, self.seed = strategy, k, train, seed
        self._ctx = ctx
        self._vectors = None
        rng = random.Random(f"demos/{strategy}/{k}/{seed}")
        self.fixed: list[Example] = []
        if strategy == "knn":
            self._vectors = ctx.embedder().embed([e.input[:2000] for e in train])  # type: ignore[union-attr]
        elif strategy == "balanced":
            for lab in labels or []:
                pool = [e for e in train if e.output == lab]
                if pool:
                    self.fixed.append(rng.choice(pool))
            rng.shuffle(self.fixed)
        else:
            self.fixed = rng.sample(train, min(k, len(train)))

    def select(self, examples: list[Example]) -> list[list[Example]]:
        if self.strategy != "knn":
            return [self.fixed for _ in examples]
        q = self._ctx.embedder().embed([e.input[:2000] for e in examples])  # type: ignore[union-attr]
        sims = q @ self._vectors.T  # type: ignore[union-attr]
        out = []
        for i, ex in enumerate(examples):
            order = [j for j in np.argsort(-sims[i]) if self.train[j].id != ex.id][: self.k]
            out.append(
                [self.train[j] for j in reversed(order)]
            )  # most similar last, next to the query
        return out

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"strategy": self.strategy, "k": self.k}
        if self.fixed:
            d["ids"] = [e.id for e in self.fixed]
        return d

    @classmethod
    def from_description(
        cls, desc: dict[str, Any], train: list[Example], seed: int, ctx: Context | None = None
    ) -> DemoSelector:
        """The selector `describe()` recorded: fixed demonstrations by id, knn rebuilt on train."""
        from ladder.errors import DataError

        strategy, k = desc["strategy"], int(desc["k"])
        sel = cls(
            "knn" if strategy == "knn" else "random",
            k if strategy == "knn" else 0,
            train,
            seed,
            ctx,
        )
        sel.strategy, sel.k = strategy, k
        if strategy != "knn":
            by_id = {e.id: e for e in train}
            missing = [i for i in desc.get("ids", []) if i not in by_id]
            if missing:
                raise DataError(
                    f"demonstration(s) {', '.join(missing[:3])} recorded by the run are no longer in the train split.",
                    fix="the task's data changed since the run: climb again, or restore the data it used.",
                )
            sel.fixed = [by_id[i] for i in desc.get("ids", [])]
        return sel


class PromptSolution:
    """Model + template (+ demonstrations) that predicts by scoring labels or by generating."""

    # label scores of a prompt are the climb's, whichever variant shows it (`Context.label_scores`)
    shares_scores = True

    def __init__(
        self,
        ctx: Context,
        rung: str,
        variant: str,
        *,
        template: str = BASE,
        parts: PromptParts = PromptParts(),
        demos: DemoSelector | None = None,
        calibrate: bool = False,
        cot: bool = False,
        max_demo_chars: int = MAX_DEMO_CHARS,
        model: str | None = None,
    ):

        self.ctx, self.rung, self.variant = ctx, rung, variant
        self.task = ctx.task
        self.kind = ctx.task.kind_impl
        self.model = model or ctx.model
        self.engine = ctx.engine(self.model)
        self.template_source = template
        self.builder = PromptBuilder(ctx.task, template, parts, variant)
        self.demos, self.calibrate, self.cot = demos, calibrate, cot
        self.max_demo_chars = max_demo_chars
        self.mode: Literal["score", "generate"] = (
            "score" if answers_by_scoring(ctx.task, self.engine) else "generate"
        )
        self._cf: np.ndarray | None = None
        self.max_new_tokens = self._max_new_tokens()

    def _max_new_tokens(self) -> int:
        ev = self.task.spec.eval
        if ev.max_new_tokens:
            return ev.max_new_tokens
        if self.kind.choices(self.task):
            return 12
        outs = [self.kind.render_output(e.output, self.task) for e in self.ctx.dataset.train[:200]]
        longest = max((self.engine.count_tokens(o) for o in outs), default=64)
        return min(1024, int(longest * 1.3) + 16)

    def describe(self) -> dict[str, Any]:
        return {
            "rung": self.rung,
            "variant": self.variant,
            "model": self.model,
            "mode": self.mode,
            "template": self.template_source,
            "parts": vars(self.builder.parts) if hasattr(self.builder.parts, "__dict__") else {},
            "demos": self.demos.describe() if self.demos else None,
            "calibrate": self.calibrate,
            "chain_of_thought": self.cot,
            "max_new_tokens": self.max_new_tokens,
            "max_demo_chars": self.max_demo_chars,
        }

    def techniques(self) -> list[str]:
        """What this variant tries, in the framework's words (gate 1 lists them)."""
        t = self.task
        parts = self.builder.parts
        custom = self.template_source not in (BASE, COT)
        out = []
        if custom:
            out.append(f"template {self.variant}")
        else:
            if parts.instructions and t.spec.instructions.strip():
                out.append("instructions")
            if parts.answer_format:
                out.append("explicit format")
            if parts.label_block and t.labels:
                out.append("label definitions" if t.label_descriptions else "label list")
        if self.demos is not None:
            out.append(f"{self.demos.k} demonstrations ({self.demos.strategy})")
        if self.cot:
            out.append("chain-of-thought")
        if self.calibrate:
            out.append("calibration")
        return out

    @classmethod
    def from_description(
        cls,
        ctx: Context,
        desc: dict[str, Any],
        *,
        model: str | None = None,
        rung: str | None = None,
    ) -> PromptSolution:
        """Rebuild the solution `describe()` recorded (e.g. a run's winner, to serve it).

        `model` swaps the model (the same prompt on a larger one); `rung` renames the solution so
        its stored predictions do not mix with the original's.
        """
        demos = None
        if desc.get("demos"):
            demos = DemoSelector.from_description(desc["demos"], ctx.dataset.train, ctx.seed, ctx)
        sol = cls(
            ctx,
            rung or desc["rung"],
            desc["variant"],
            template=desc.get("template") or BASE,
            parts=PromptParts(**(desc.get("parts") or {})),
            demos=demos,
            calibrate=bool(desc.get("calibrate")),
            cot=bool(desc.get("chain_of_thought")),
            max_demo_chars=int(
                desc.get("max_demo_chars")
                or getattr(ctx.task.rung_settings(desc["rung"]), "max_demo_chars", None)
                or MAX_DEMO_CHARS
            ),
            model=model or desc.get("model"),
        )
        if model is None and desc.get("max_new_tokens"):
            sol.max_new_tokens = int(desc["max_new_tokens"])
        if desc.get("mode") == "generate":
            sol.mode = "generate"  # scoring is what it was measured with only where recorded
        return sol

    def prompts(self, examples: list[Example]) -> list[str]:
        demo_sets = self.demos.select(examples) if self.demos else [[] for _ in examples]
        return [
            self.builder.render(ex.input, [(d.input, d.output) for d in demos], self.max_demo_chars)
            for ex, demos in zip(examples, demo_sets)
        ]

    def _stops(self) -> list[str]:
        # answers (labels, one-line JSON as the demonstrations show it) end at the line break
        return ["\n"]

    def predict(
        self, examples: list[Example], *, temperature: float = 0.0, seed: int = 0
    ) -> list[Prediction]:
        prompts = self.prompts(examples)
        extra_in = [0] * len(prompts)
        extra_out = [0] * len(prompts)
        extra_wait = [0.0] * len(prompts)
        extra_compute = [0.0] * len(prompts)
        if self.cot:
            reqs = [
                GenRequest(
                    p,
                    max_tokens=96,
                    temperature=temperature,
                    stop=["\n\n", f"\n{self.builder.output_name}:"],
                    seed=seed,
                )
                for p in prompts
            ]
            thoughts = self.engine.generate(reqs)
            prompts = [
                p + t.text.rstrip() + f"\n{self.builder.output_name}:"
                for p, t in zip(prompts, thoughts)
            ]
            extra_in = [t.tokens_in for t in thoughts]
            extra_out = [t.tokens_out for t in thoughts]
            # the thought's wait adds to latency; only its share of engine time adds to cost
            extra_wait = [t.latency_s for t in thoughts]
            extra_compute = [t.compute_s for t in thoughts]
        if self.mode == "score":
            preds = self._predict_scored(examples, prompts)
        else:
            preds = self._predict_generated(examples, prompts, temperature, seed)
        for p, a, b, w, c in zip(preds, extra_in, extra_out, extra_wait, extra_compute):
            p.tokens_in += a
            p.tokens_out += b
            p.latency_s += w
            p.compute_s += c
        return preds

    def _predict_scored(self, examples: list[Example], prompts: list[str]) -> list[Prediction]:
        labels = self.task.labels
        choices = [" " + lab for lab in labels]
        results = self._scores(prompts, choices)
        cf = self._content_free() if self.calibrate else None
        preds = []
        for ex, res in zip(examples, results):
            lp = np.asarray(res.logprobs, dtype=np.float64)
            lp = lp - np.logaddexp.reduce(lp)  # renormalise over the label set
            if cf is not None:
                lp = lp - cf
                lp = lp - np.logaddexp.reduce(lp)
            best = int(np.argmax(lp))
            preds.append(
                Prediction(
                    ex.id,
                    labels[best],
                    True,
                    None,
                    labels[best],
                    lp.round(5).tolist(),
                    res.tokens_in,
                    0,
                    res.latency_s,
                    res.compute_s,
                )
            )
        return preds

    def _scores(self, prompts: list[str], choices: list[str]) -> list[Scores]:
        """The engine's label scores of `prompts`, each prompt scored once per climb.

        A calibrated variant shows its uncalibrated twin's very prompts (only the arithmetic on
        the scores differs), and the planner's probe shows zero-shot's: they reuse the scores,
        with their timings, since answering the prompt costs the same whichever variant shows it.
        """
        if not self.shares_scores:
            return self.engine.score([ScoreRequest(p, choices) for p in prompts])
        known = self.ctx.label_scores(self.engine)
        key = tuple(choices)
        todo = [p for p in dict.fromkeys(prompts) if (p, key) not in known]
        if todo:
            fresh = self.engine.score([ScoreRequest(p, choices) for p in todo])
            known.update(((p, key), r) for p, r in zip(todo, fresh))
        return [known[p, key] for p in prompts]

    def _content_free(self) -> np.ndarray:
        """log p(label | content-free input), averaged in probability space.

        The content-free inputs are shown with the variant's own demonstrations (a fixed set for
        `random` and `balanced`), so the bias removed is the one this prompt has.
        """
        if self._cf is None:
            choices = [" " + lab for lab in self.task.labels]
            shown = [(d.input, d.output) for d in self.demos.fixed] if self.demos else []
            res = self.engine.score(
                [
                    ScoreRequest(self.builder.render(t, shown, self.max_demo_chars), choices)
                    for t in CONTENT_FREE
                ]
            )
            probs = []
            for r in res:
                lp = np.asarray(r.logprobs, dtype=np.float64)
                probs.append(np.exp(lp - np.logaddexp.reduce(lp)))
            self._cf = np.log(np.mean(probs, axis=0))
        return self._cf

    def _predict_generated(
        self, examples, prompts, temperature: float, seed: int
    ) -> list[Prediction]:
        choices = self.kind.choices(self.task)
        reqs = [
            GenRequest(
                p,
                max_tokens=self.max_new_tokens,
                temperature=temperature,
                stop=self._stops(),
                seed=seed,
                choices=choices,
                json_schema=self.task.schema,
            )
            for p in prompts
        ]
        preds = []
        for ex, comp in zip(examples, generate_lines(self.engine, reqs)):
            parsed = self.kind.parse_prediction(comp.text, self.task)
            preds.append(
                Prediction(
                    ex.id,
                    parsed.output,
                    parsed.valid,
                    parsed.error,
                    comp.text,
                    None,
                    comp.tokens_in,
                    comp.tokens_out,
                    comp.latency_s,
                    comp.compute_s,
                )
            )
        return preds


# ---------------------------------------------------------------- the rungs


class ZeroShotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variants: list[str] | None = Field(
        None, description="only these variants (default: all that apply)"
    )
    chain_of_thought: bool = Field(False, description="also try a think-step-by-step variant")
    model: str | None = Field(None, description="model for this rung (default: the task's)")


class ZeroShot:
    """Instructions and an explicit output format; the variants differ in what they show."""

    name = "zero-shot"
    family = "prompt"
    Config = ZeroShotConfig

    def skip_reason(self, ctx: Context) -> str | None:
        return None

    def candidates(self, ctx: Context, *, model: str | None = None) -> list[PromptSolution]:
        """The variants to race on dev; `model` puts them on another model (a distill teacher)."""
        cfg: ZeroShotConfig = ctx.rung_config(self)
        model = model or cfg.model
        out = [
            PromptSolution(
                ctx,
                self.name,
                "instructions",
                parts=PromptParts(label_block=False, answer_format=False),
                model=model,
            ),
            PromptSolution(ctx, self.name, "instructions+format", model=model),
        ]
        if out[0].mode == "score":
            out.append(
                PromptSolution(
                    ctx, self.name, "instructions+format+calibrated", calibrate=True, model=model
                )
            )
        if cfg.chain_of_thought:
            out.append(
                PromptSolution(
                    ctx, self.name, "instructions+format+cot", template=COT, cot=True, model=model
                )
            )
        for name, source in ctx.task.spec.prompt.templates.items():
            if not uses_demos(source, name):
                out.append(PromptSolution(ctx, self.name, name, template=source, model=model))
        if cfg.variants:
            out = _only(out, cfg.variants, self.name)
        return out

    def prepare(self, ctx: Context) -> Prepared:
        return select_on_dev(ctx, self.candidates(ctx), self.name)


SELECTIONS: tuple[Literal["random", "knn", "balanced"], ...] = ("random", "knn", "balanced")


class FewShotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: list[int] = Field(
        default_factory=lambda: [4], description="numbers of demonstrations to try"
    )
    selection: list[Literal["random", "knn", "balanced"]] = Field(
        default_factory=lambda: list(SELECTIONS)
    )
    chain_of_thought: bool = False
    calibrate: bool = Field(
        True, description="also try contextually calibrated variants of the fixed demonstrations"
    )
    max_demo_chars: int = Field(
        MAX_DEMO_CHARS, ge=50, description="demonstrations are truncated to this length"
    )
    variants: list[str] | None = None
    model: str | None = None


class FewShot:
    """k demonstrations from train: random, nearest by embedding (MiniLM), or one per label."""

    name = "few-shot"
    family = "prompt"
    Config = FewShotConfig

    def skip_reason(self, ctx: Context) -> str | None:
        if len(ctx.dataset.train) < 2:
            return "fewer than 2 training examples to show"
        return None

    def candidates(self, ctx: Context, *, model: str | None = None) -> list[PromptSolution]:
        """The variants to race on dev; `model` puts them on another model (a distill teacher)."""
        cfg: FewShotConfig = ctx.rung_config(self)
        train, seed = ctx.dataset.train, ctx.seed
        labels = ctx.task.labels
        out: list[PromptSolution] = []

        def sol(variant: str, demos: DemoSelector, **kw) -> PromptSolution:
            return PromptSolution(
                ctx,
                self.name,
                variant,
                demos=demos,
                max_demo_chars=cfg.max_demo_chars,
                model=model or cfg.model,
                **kw,
            )

        calibrated: list[PromptSolution] = []
        for strategy in cfg.selection:
            if strategy == "balanced":
                if labels and len(labels) <= 12:
                    demos = DemoSelector("balanced", len(labels), train, seed, ctx, labels)
                    out.append(sol("balanced", demos))
                    calibrated.append(sol("balanced+calibrated", demos, calibrate=True))
                continue
            for k in cfg.k:
                demos = DemoSelector(strategy, k, train, seed, ctx, labels)
                out.append(sol(f"{strategy}-{k}", demos))
                if strategy == "random":
                    calibrated.append(sol(f"{strategy}-{k}+calibrated", demos, calibrate=True))
        # contextual calibration removes the label bias a fixed set of demonstrations induces
        # (Zhao et al., 2021); `knn` shows each query its own demonstrations, so one content-free
        # estimate cannot stand for them and it is not calibrated
        if cfg.calibrate and out and out[0].mode == "score":
            out += calibrated
        if cfg.chain_of_thought:
            k = cfg.k[0]
            out.append(
                sol(
                    f"knn-{k}+cot",
                    DemoSelector("knn", k, train, seed, ctx, labels),
                    template=COT,
                    cot=True,
                )
            )
        for name, source in ctx.task.spec.prompt.templates.items():
            if uses_demos(source, name):
                out.append(
                    sol(
                        name,
                        DemoSelector("knn", cfg.k[0], train, seed, ctx, labels),
                        template=source,
                    )
                )
        if cfg.variants:
            out = _only(out, cfg.variants, self.name)
        return out

    def prepare(self, ctx: Context) -> Prepared:
        return select_on_dev(ctx, self.candidates(ctx), self.name)


def _only(cands: list[PromptSolution], names: list[str], rung: str) -> list[PromptSolution]:
    from ladder.errors import TaskError

    unknown = [n for n in names if n not in {c.variant for c in cands}]
    if unknown:
        raise TaskError(
            f"rungs.{rung}.variants names unknown variant(s): {', '.join(unknown)}.",
            fix=f"available: {', '.join(c.variant for c in cands)}.",
        )
    return [c for c in cands if c.variant in names]
