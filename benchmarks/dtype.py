"""fp32 against bf16 on this machine: kernels, the real model's scoring, training, and agreement.

What `--dtype auto` decides from, measured in full:
- the probe's kernels (`ladder.engines.numerics.measure`: scoring-, decode- and training-sized
  matmuls, GFLOP/s in fp32 and bf16) and a 1024² matmul;
- the embedded model scoring short email-triage prompts (zero-shot, the label list; examples/s)
  with fp32 weights, bf16 weights, and fp32 weights under bf16 autocast;
- a few LoRA training steps on the lora rung's records: fp32, bf16 autocast over fp32 weights,
  and the frozen base held in bf16 (what the lora rung does on a CPU when scoring and
  generation settled on bf16); the LoRA matrices stay fp32 in all three (real tokens/s);
- the scoring answers' agreement with fp32 and the paired interval of the accuracy difference
  (`ladder.rungs.numerics_check.compare`, the climb's own check), and what `auto` would choose.

Each bf16 side stops after `--cap` seconds (bf16 can be tens of times slower without bf16
units), so the run fits in about five minutes; figures say how many items each side did.

    python benchmarks/dtype.py                  # writes benchmarks/results/dtype-<cpu>-<flag>.json
    python benchmarks/dtype.py --prompts 32 --cap 30
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def kernels() -> dict:
    from ladder.engines import numerics as nx

    t0 = time.perf_counter()
    probe = nx.measure("cpu")
    square = {d: round(nx.matmul_gflops(1024, 1024, 1024, d, seconds=1.0), 2) for d in nx.DTYPES}
    return {
        "probe_gflops": probe,
        "matmul_1024": square,
        "seconds": round(time.perf_counter() - t0, 1),
        "auto_would_choose": nx.choose("cpu", "auto", {"gflops": probe}).describe()["phases"],
    }


def prompts(n: int):
    from ladder.dataset import load_dataset
    from ladder.rungs.prompts import PromptBuilder, PromptParts
    from ladder.task import load_task

    task = load_task(ROOT / "examples" / "email-triage")
    items = sorted(load_dataset(task).dev, key=lambda e: len(e.input))[:n]  # short ones
    builder = PromptBuilder(task, parts=PromptParts(), name="instructions+format")
    return task, items, [builder.render(e.input) for e in items]


def score_side(engine, task, items, texts, cap: float, batch: int = 8) -> dict:
    """Score the prompts in chunks until done or `cap` seconds; examples/s and the predictions."""
    import numpy as np

    from ladder.dataset import Prediction
    from ladder.engines.base import ScoreRequest

    choices = [" " + lab for lab in task.labels]
    preds, t0 = [], time.perf_counter()
    for start in range(0, len(texts), batch):
        res = engine.score([ScoreRequest(p, choices) for p in texts[start : start + batch]])
        for ex, r in zip(items[start : start + batch], res):
            preds.append(Prediction(ex.id, task.labels[int(np.argmax(r.logprobs))], True))
        if time.perf_counter() - t0 > cap:
            break
    dt = time.perf_counter() - t0
    return {
        "n": len(preds),
        "seconds": round(dt, 2),
        "examples_per_s": round(len(preds) / dt, 3),
    }, preds


def scoring(args) -> dict:
    from ladder.engines.gguf import EMBEDDED, embedded_dir
    from ladder.engines.hf import HFEngine
    from ladder.rungs.numerics_check import compare

    task, items, texts = prompts(args.prompts)
    out, preds = {}, {}
    for side, dtype, phases in (
        ("fp32", "float32", None),
        ("bf16_weights", "bfloat16", None),
        ("bf16_autocast", "float32", {"score": "bfloat16"}),
    ):
        eng = HFEngine(EMBEDDED, str(embedded_dir()), dtype=dtype, threads=args.threads)
        if phases:
            eng.use_dtypes(phases)
        cap = 10**9 if side == "fp32" else args.cap
        out[side], preds[side] = score_side(eng, task, items, texts, cap)
        eng.close()
    agreement = {}
    for side in ("bf16_weights", "bf16_autocast"):
        n = len(preds[side])
        secs = (
            out["fp32"]["seconds"] * n / out["fp32"]["n"],  # fp32's time for the same items
            out[side]["seconds"],
        )
        agreement[side] = compare(task, items[:n], preds["fp32"][:n], preds[side], secs)
    out["agreement_with_fp32"] = agreement
    out["prompt_chars"] = round(sum(map(len, texts)) / len(texts))
    return out


def training(args) -> dict:
    from ladder.dataset import load_dataset
    from ladder.engines.gguf import embedded_dir
    from ladder.rungs.lora import short_builder
    from ladder.task import load_task
    from ladder.training.adapters import attach_lora, load_base
    from ladder.training.data import build_records
    from ladder.training.loop import LoopConfig, train

    task = load_task(ROOT / "examples" / "email-triage")
    train_set = sorted(load_dataset(task).train, key=lambda e: len(e.input))[: args.train_examples]
    out = {}
    sides = (
        ("fp32", None, None),
        ("bf16_autocast", "bfloat16", None),
        ("bf16_held", None, "bfloat16"),
    )
    for side, autocast, hold in sides:
        lm, tok = load_base(str(embedded_dir()), hold=hold)
        model = attach_lora(lm, 8, 16, 0.0, ["q_proj", "k_proj", "v_proj", "o_proj"], 0)
        recs, _ = build_records(
            train_set, short_builder(task, 400).render, lambda o: " " + str(o), tok, 512
        )
        cfg = LoopConfig(epochs=1, lr=1e-3, batch_size=args.train_batch, autocast=autocast)
        res = train(
            model, recs, [], cfg, pad_id=tok.pad_token_id,
            folder=Path(tempfile.mkdtemp()), fingerprint={},
        )  # fmt: skip
        s = res.state
        out[side] = {
            "dtype": res.dtype,
            "steps": s.step,
            "tokens": s.tokens,
            "train_seconds": round(s.train_seconds, 2),
            "tokens_per_s": round(s.tokens / s.train_seconds, 2),
            "loss": s.history[-1]["train_loss"],
            "lora_dtype": str(next(p for p in model.parameters() if p.requires_grad).dtype),
        }
        del model, lm
    for side in ("bf16_autocast", "bf16_held"):
        out[f"{side}_speedup"] = round(out[side]["tokens_per_s"] / out["fp32"]["tokens_per_s"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=64, help="short classify prompts to score")
    ap.add_argument("--cap", type=float, default=45.0, help="seconds each bf16 side may take")
    ap.add_argument("--train-examples", type=int, default=16)
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from ladder import provenance
    from ladder.engines import numerics as nx

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    result = {
        "benchmark": "dtype",
        "machine": {**provenance.hardware(), **nx.machine("cpu")},
        "load_before": load(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    result["kernels"] = kernels()
    print(json.dumps(result["kernels"], indent=1), flush=True)
    result["scoring"] = scoring(args)
    print(json.dumps(result["scoring"], indent=1), flush=True)
    result["training"] = training(args)
    print(json.dumps(result["training"], indent=1), flush=True)
    result["load_after"] = load()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    # the CPU's name and its best bf16 flag: two EPYCs with and without avx512_bf16 differ
    flags = result["machine"].get("bf16_flags") or ["no-bf16"]
    cpu = re.sub(r"[^a-z0-9]+", "-", f"{result['machine']['cpu']} {flags[0]}".lower()).strip("-")
    path = args.out or ROOT / "benchmarks" / "results" / f"dtype-{cpu}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path} in {result['seconds']} s")


if __name__ == "__main__":
    main()
