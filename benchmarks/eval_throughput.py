"""Examples/s on the email-triage hold-out: Ladder's few-shot rung vs a naive generate loop.

Both sides see the very same prompts (the few-shot variant's). Ladder answers by batched label
scoring with its prefix cache; the baseline calls `model.generate` once per example (greedy,
a few new tokens) and parses the label from the text, as a first script would.

    python benchmarks/eval_throughput.py [--variant random-4] [--limit N]

Writes benchmarks/results/eval_throughput-<variant>.json with machine info.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default=str(ROOT / "examples/email-triage"))
    ap.add_argument(
        "--variant", default="random-4", help="few-shot variant whose prompts both sides use"
    )
    ap.add_argument(
        "--limit", type=int, default=None, help="first N hold-out examples (default: all)"
    )
    ap.add_argument("--new-tokens", type=int, default=5, help="tokens the naive loop generates")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from ladder import provenance
    from ladder.dataset import load_dataset
    from ladder.engines.resolve import make_engine, resolve_model
    from ladder.fsutil import atomic_write_json
    from ladder.kinds import Classify
    from ladder.rungs.context import Context
    from ladder.rungs.prompting import FewShot
    from ladder.store.db import Store
    from ladder.task import load_task

    task = load_task(args.task)
    ds = load_dataset(task)
    holdout = ds.holdout[: args.limit] if args.limit else ds.holdout
    import tempfile

    tmp = tempfile.mkdtemp()
    store = Store(tmp)
    store.create_run(
        "bench",
        task.name,
        str(task.file),
        tmp,
        task.config_hash(),
        ds.data_hash,
        {"options": {}},
        {},
    )
    ctx = Context(task, ds, store, "bench", Path(tmp), task.spec.model)
    engine = make_engine(resolve_model(task.spec.model, task))
    ctx.set_engine(task.spec.model, engine)
    solution = next(c for c in FewShot().candidates(ctx) if c.variant == args.variant)
    prompts = solution.prompts(holdout)
    gold = [e.output for e in holdout]
    n_tokens = [len(ids) for ids in engine.encode(prompts)]
    print(
        f"{len(holdout)} hold-out emails, variant {args.variant}, prompt tokens mean {np.mean(n_tokens):.0f}",
        file=sys.stderr,
    )

    # --- Ladder: batched label scoring with prefix caching (a fresh cache: no warm start)
    engine._prefix_key = None
    t0 = time.perf_counter()
    preds = ctx.predict(solution, holdout, "holdout")  # the climb's own path (chunks, store writes)
    ladder_s = time.perf_counter() - t0
    ladder_acc = float(np.mean([p.output == g for p, g in zip(preds, gold)]))

    # --- baseline: generate once per example with the same prompts
    tok, lm = engine.tokenizer, engine.lm
    kind = Classify()
    naive_out = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for p in prompts:
            ids = tok(p, return_tensors="pt")
            out = lm.generate(
                **ids,
                max_new_tokens=args.new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
            naive_out.append(tok.decode(out[0, ids.input_ids.shape[1] :], skip_special_tokens=True))
    naive_s = time.perf_counter() - t0
    parsed = [kind.parse_prediction(t, task) for t in naive_out]
    naive_acc = float(np.mean([p.output == g for p, g in zip(parsed, gold)]))
    naive_valid = float(np.mean([p.valid for p in parsed]))
    agree = float(np.mean([p.output == q.output for p, q in zip(parsed, preds)]))

    n = len(holdout)
    result = {
        "benchmark": "eval_throughput",
        "task": task.name,
        "variant": args.variant,
        "examples": n,
        "prompt_tokens_mean": round(float(np.mean(n_tokens)), 1),
        "ladder": {
            "method": "batched label scoring + prefix cache",
            "seconds": round(ladder_s, 2),
            "examples_per_s": round(n / ladder_s, 3),
            "accuracy": round(ladder_acc, 4),
            "prefix_tokens_saved": engine.stats["prefix_tokens_saved"],
            "max_batch": engine.max_batch,
        },
        "naive": {
            "method": f"model.generate per example, greedy, {args.new_tokens} new tokens, parsed",
            "seconds": round(naive_s, 2),
            "examples_per_s": round(n / naive_s, 3),
            "accuracy": round(naive_acc, 4),
            "valid_label_rate": naive_valid,
        },
        "speedup": round(naive_s / ladder_s, 2),
        "answer_agreement": round(agree, 4),
        "machine": provenance.hardware(),
        "packages": provenance.versions(),
        "git": provenance.git_info(ROOT),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = atomic_write_json(Path(args.out) / f"eval_throughput-{args.variant}.json", result)
    print(
        f"ladder {result['ladder']['examples_per_s']} ex/s (acc {ladder_acc:.3f}) · naive {result['naive']['examples_per_s']} ex/s (acc {naive_acc:.3f}) · speedup {result['speedup']}x → {path}"
    )


if __name__ == "__main__":
    main()
