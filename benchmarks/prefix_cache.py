"""Per-question latency of the long-context rung: reused corpus prefix cache vs full recompute.

Both sides run the rung's own prompts (instructions + every document + a worked example as the
shared prefix, the question as the suffix) on the embedded model with greedy decoding:

- cached: `HFEngine(prefix_cache=True)`. One call with the first two questions computes the
  corpus's key/value cache (reported as the one-time cost); then each further question is its
  own call and runs only its suffix on the kept cache;
- recompute: `HFEngine(prefix_cache=False)`: each question's full prompt is run from scratch.

Per-question latencies are taken on the same questions (the third onwards), one question per
call, as a user asking one at a time would see them; the answers must be identical.

    python benchmarks/prefix_cache.py --docs 12 --questions 6     # ~8k-token corpus (full run)
    python benchmarks/prefix_cache.py --docs 40 --questions 4     # the whole product-qa corpus
    python benchmarks/prefix_cache.py --docs 2 --questions 3      # a quick check

Writes benchmarks/results/prefix_cache-<docs>docs.json with machine info.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def subset_task(src: Path, n_docs: int) -> Path:
    """A copy of the task whose documents folder holds only the first n documents."""
    dst = Path(tempfile.mkdtemp()) / src.name
    shutil.copytree(src, dst)
    docs = sorted(p for p in (dst / "documents").iterdir() if p.is_file())
    for p in docs[n_docs:]:
        p.unlink()
    return dst


def context(task_dir: Path):
    from ladder.dataset import load_dataset
    from ladder.rungs.context import Context
    from ladder.store.db import Store
    from ladder.task import load_task

    task = load_task(task_dir)
    ds = load_dataset(task)
    store = Store(tempfile.mkdtemp())
    store.create_run("bench", task.name, str(task.file), "", task.config_hash(), "", {}, {})
    return Context(task, ds, store, "bench", Path(store.runs_dir), task.spec.model)


def questions(ctx, n: int):
    """Hold-out questions whose gold documents are all in the corpus subset."""
    from ladder.retrieval.documents import documents_dir

    have = {p.name for p in documents_dir(ctx.task).iterdir()}
    good = [e for e in ctx.dataset.holdout if e.meta.get("evidence")]
    good = [e for e in good if set(e.meta["evidence"]) <= have] or ctx.dataset.holdout
    return good[:n]


def timed(solution, examples) -> tuple[list[float], list[str]]:
    times, answers = [], []
    for ex in examples:
        t0 = time.perf_counter()
        pred = solution.predict([ex])[0]
        times.append(time.perf_counter() - t0)
        answers.append(pred.raw)
    return times, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default=str(ROOT / "examples/product-qa"))
    ap.add_argument("--docs", type=int, default=12, help="first N documents form the corpus")
    ap.add_argument("--questions", type=int, default=6, help="questions asked (at least 3)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()

    from ladder import provenance
    from ladder.engines.gguf import embedded_dir, prepare_embedded
    from ladder.engines.hf import HFEngine
    from ladder.fsutil import atomic_write_json
    from ladder.rungs.longcontext import LongContextConfig, LongContextSolution, make_plan

    prepare_embedded()
    ctx = context(subset_task(Path(args.task), args.docs))
    cached = HFEngine("cached", str(embedded_dir()), prefix_cache=True)
    plain = HFEngine("recompute", str(embedded_dir()), prefix_cache=False)
    ctx.set_engine("cached", cached)
    ctx.set_engine("recompute", plain)
    plan = make_plan(ctx, LongContextConfig(), cached)
    if plan.reason():
        raise SystemExit(plan.reason())
    qs = questions(ctx, max(3, args.questions))
    fast = LongContextSolution(ctx, plan, "cached")
    slow = LongContextSolution(ctx, plan, "recompute")
    t0 = time.perf_counter()
    warm = fast.predict(qs[:2])  # computes the corpus cache once
    first_call = time.perf_counter() - t0
    fast_s, fast_answers = timed(fast, qs[2:])
    slow_s, slow_answers = timed(slow, qs[2:])
    p50_fast, p50_slow = float(np.median(fast_s)), float(np.median(slow_s))
    result = {
        "benchmark": "prefix_cache",
        "task": ctx.task.name,
        "documents": plan.documents,
        "prefix_tokens": plan.prefix_tokens,
        "questions_timed": len(qs) - 2,
        "cached": {
            "first_call_s": round(first_call, 2),
            "first_call_questions": len(warm),
            "per_question_s": [round(t, 3) for t in fast_s],
            "p50_s": round(p50_fast, 3),
            "prefix_tokens_saved": cached.stats["prefix_tokens_saved"],
        },
        "recompute": {"per_question_s": [round(t, 3) for t in slow_s], "p50_s": round(p50_slow, 3)},
        "speedup_p50": round(p50_slow / p50_fast, 2),
        "same_answers": fast_answers == slow_answers,
        "answers": [{"question": q.input, "answer": a} for q, a in zip(qs[2:], fast_answers)],
        "machine": provenance.hardware(),
        "packages": provenance.versions(),
        "git": provenance.git_info(ROOT),
    }
    path = atomic_write_json(Path(args.out) / f"prefix_cache-{args.docs}docs.json", result)
    print(
        f"corpus {plan.documents} docs, {plan.prefix_tokens} tokens: first call {first_call:.1f} s; "
        f"per question p50 cached {p50_fast:.2f} s vs recompute {p50_slow:.2f} s "
        f"({p50_slow / p50_fast:.1f}x), same answers: {fast_answers == slow_answers}"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
