"""The context a rung works in: the task, its data, the run store, engines, progress.

`Context.predict` is the one place predictions are made during a climb: it skips what the store
already has for this run (that is how `--resume` avoids redoing work) and commits each batch.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ladder.dataset import Dataset, Example, Prediction
from ladder.progress import NullProgress, Progress
from ladder.rungs.solution import Solution
from ladder.store.db import Store
from ladder.task import Task

WAITS = " (its dev check against fp32 waits for the first generation: the answers are scored)"


def answers_by_scoring(task: Task, engine) -> bool:
    """Do `task`'s prompts answer by scoring its labels on `engine` (else by generating)?"""
    return bool(task.kind_impl.choices(task)) and bool(getattr(engine, "supports_scoring", False))


@dataclass
class Context:
    task: Task
    dataset: Dataset
    store: Store
    run_id: str
    run_dir: Path
    model: str  # the model the prompting rungs use
    progress: Progress = field(default_factory=NullProgress)
    limit: int | None = None  # evaluate on the first N dev/holdout examples only
    seed: int = 0
    variant: str | None = None  # force one prompt variant (skip selection on dev)
    chunk_size: int = 16  # predictions committed per transaction
    options: dict[str, Any] = field(default_factory=dict)  # rung-specific CLI options
    schedule: str = "race"  # race | exhaustive: how prompt variants are chosen on dev
    clock: Any = None  # ladder.timing.PhaseClock of the climb (None: phases are not timed)
    dtype: str | None = None  # --dtype: float32 | bfloat16 force every phase; None/auto measures
    numerics: dict[str, Any] = field(default_factory=dict)  # model -> number formats (provenance)
    dev_limit: dict[str, int] = field(default_factory=dict)  # rung -> dev items it races on (plan)
    consistency_half_width: float | None = None  # a budget's relaxed consistency CI (plan)
    _engines: dict[str, Any] = field(default_factory=dict)
    _embedder: Any = None
    _closers: list[Any] = field(default_factory=list)  # callables run by close()
    _label_scores: dict[tuple, dict] = field(default_factory=dict)  # see label_scores

    # ------------------------------------------------------------ resources

    def engine(self, name: str | None = None):
        """The engine for a model name (the task's model by default), loaded once per climb."""
        from ladder.engines.resolve import make_engine, resolve_model

        name = name or self.model
        if name not in self._engines:
            entry = resolve_model(name, self.task)
            with self.phase("loading"):
                self._engines[name] = make_engine(entry, self.progress, dtype=self.dtype or "auto")
            self._settle(name)
        return self._engines[name]

    def set_engine(self, name: str, engine) -> None:
        self._engines[name] = engine
        self._label_scores.clear()
        self._settle(name)

    def label_scores(self, engine) -> dict[tuple[str, tuple[str, ...]], Any]:
        """Label scores (engine `Scores`) by (prompt, choices) that `engine` gave this climb in
        its present number formats: scores from another format or weights are never reused."""
        fmt = getattr(getattr(engine, "numerics", None), "phases", {}).get("score")
        return self._label_scores.setdefault((id(engine), fmt, getattr(engine, "dtype", None)), {})

    def _settle(self, name: str) -> None:
        """Check an automatic bf16 choice on dev (once), then record the engine's number formats.

        Generation's check waits for the first generation when this task's answers are scored
        labels: a classify climb may never generate, and the check answers 32 dev items twice.
        """
        engine = self._engines[name]
        num = getattr(engine, "numerics", None)
        if num is None:
            return  # remote engines: the server's formats are not Ladder's to choose
        if num.pending:
            from ladder.rungs.numerics_check import check_on_dev

            later = ("generate",) if answers_by_scoring(self.task, engine) else ()
            now = tuple(p for p in num.pending if p not in later)
            num.pending = num.deferred = tuple(p for p in num.pending if p in later)
            for p in num.deferred:
                if WAITS not in num.reasons[p]:  # an engine on settled weights inherits it
                    num.reasons[p] += WAITS
            if now:
                with self.phase("numerics check"):
                    check_on_dev(self, name, engine, now)
        if num.deferred and hasattr(engine, "check_deferred"):
            engine.check_deferred = partial(self._check_deferred, name)
        self.record_numerics(name, num.describe())

    def _check_deferred(self, name: str, phase: str) -> None:
        """The dev check of `phase` that waited for its first use (inside the phase using it)."""
        from ladder.rungs.numerics_check import check_on_dev

        engine = self._engines[name]
        num = engine.numerics
        if phase not in num.pending:
            return
        num.pending = tuple(p for p in num.pending if p != phase)
        num.deferred = tuple(p for p in num.deferred if p != phase)
        if not num.deferred:
            engine.check_deferred = None
        with self.phase("numerics check"):  # counted by the phase already open, if any
            check_on_dev(self, name, engine, (phase,))
        self.record_numerics(name, num.describe())

    def record_numerics(self, key: str, figures: dict[str, Any]) -> None:
        """Keep a model's (or the training's) number formats in the run's provenance."""
        self.numerics[key] = figures
        self.store.add_provenance(self.run_id, "numerics", self.numerics)

    def inference_numerics(self, base: str, device: str):
        """The formats for another engine on `base`'s weights: the settled ones when known."""
        from ladder.engines import numerics as nx

        chosen = nx.choose(device, self.dtype)
        settled = self.numerics.get(base)
        if settled and settled.get("phases"):
            chosen.phases.update({p: settled["phases"][p] for p in nx.INFERENCE})
            chosen.reasons.update({p: settled["reasons"][p] for p in nx.INFERENCE})
            chosen.agreement = dict(settled.get("agreement") or {})
            # a check still waiting for its phase's first use waits on this engine too
            chosen.pending = chosen.deferred = tuple(settled.get("deferred") or ())
        return chosen

    def embedder(self):
        if self._embedder is None:
            from ladder.retrieval.embed import Embedder

            self._embedder = Embedder()
        return self._embedder

    def rung_config(self, rung) -> Any:
        """The rung's settings: task.yaml's, validated once by `load_task`, with this climb's
        overrides (`ladder train` options, a budget's cuts) on top, validated here."""
        overrides = self.options.get(rung.name, {})
        if not overrides or getattr(rung, "Config", None) is None:
            return self.task.rung_settings(rung.name)
        from pydantic import ValidationError

        from ladder.errors import TaskError

        raw = {**self.task.rung_config(rung.name), **overrides}
        try:
            return rung.Config.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = ".".join(map(str, err["loc"]))
            raise TaskError(
                f"rungs.{rung.name}.{name}: {err['msg']} (got {err.get('input')!r}).",
                where=self.task.file,
            ) from None

    def examples(self, split: str) -> list[Example]:
        exs = self.dataset.splits[split]
        if self.limit is not None and split != "train":
            exs = exs[: self.limit]
        return exs

    def phase(self, name: str):
        """Time a phase of the current rung (`ladder.timing.PHASES`) in the run store."""
        return self.clock.phase(name) if self.clock is not None else nullcontext()

    def on_close(self, fn) -> None:
        """Run `fn` when the climb ends (an index connection a rung opened, say)."""
        self._closers.append(fn)

    def close(self) -> None:
        for eng in self._engines.values():
            eng.close()
        self._engines.clear()
        while self._closers:
            self._closers.pop()()

    # ------------------------------------------------------------ predictions

    def predict(
        self,
        solution: Solution,
        examples: list[Example],
        split: str,
        *,
        repeat: int = 0,
        temperature: float = 0.0,
        desc: str | None = None,
    ) -> list[Prediction]:
        """Predictions for `examples`, reusing stored ones; new ones are committed per batch."""
        done = self.store.predictions(self.run_id, solution.rung, solution.variant, split, repeat)
        # similar lengths in a chunk mean little padding in the engine's batches
        todo = sorted((e for e in examples if e.id not in done), key=lambda e: len(e.input))
        label = desc or f"{solution.rung} · {solution.variant} · {split}"
        with self.progress.task(label, total=len(examples)) as bar:
            bar.advance(len(examples) - len(todo))
            for start in range(0, len(todo), self.chunk_size):
                chunk = todo[start : start + self.chunk_size]
                preds = solution.predict(chunk, temperature=temperature, seed=self.seed + repeat)
                for p in preds:
                    p.repeat = repeat
                self.store.add_predictions(
                    self.run_id, solution.rung, solution.variant, split, preds
                )
                done.update((p.example_id, p) for p in preds)
                bar.advance(len(chunk))
        return [done[e.id] for e in examples]
