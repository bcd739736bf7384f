"""Training tokens/s on email-triage: Ladder's LoRA loop vs PEFT + transformers `Trainer`.

Both sides train the same LoRA (r, alpha, dropout, target modules) on the same records (the
lora rung's short prompts; loss on the answer tokens only) with the same batch size, learning
rate, schedule and epochs, each in a process of its own so that peak RSS is its own. The
baseline is what a first script does: `Trainer` with default sampling, a padding collator and
the model's own loss (logits at every position). Reported per side: real (non-padding) tokens
per second of wall time, peak RSS, and the achieved FLOP/s as a fraction of this machine's fp32
matmul peak, measured in the same run. FLOPs are counted analytically from the batch shapes each
side actually ran (forward + backward, no weight gradients for frozen weights, causal attention),
and the count is checked against `torch.utils.flop_counter` on one batch.

    python benchmarks/train_throughput.py                  # full: all 307 train emails, 1 epoch
    python benchmarks/train_throughput.py --examples 32    # a quick proof that it runs
    python benchmarks/train_throughput.py --processes 2 --examples 32 --epochs 2
        # Ladder's loop on 2 processes (gloo) vs 1 process with the same effective batch
        # (grad_accum 2): tokens/s and the train/dev loss curves side by side

Writes benchmarks/results/train_throughput[-nN].json with machine info.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def records(args):
    """The lora rung's training records for the first N train examples, and the tokenizer."""
    from transformers import AutoTokenizer

    from ladder.dataset import load_dataset
    from ladder.engines.gguf import embedded_dir
    from ladder.rungs.lora import short_builder
    from ladder.task import load_task
    from ladder.training.data import build_records

    task = load_task(args.task)
    train = load_dataset(task).train[: args.examples]
    tok = AutoTokenizer.from_pretrained(embedded_dir())
    builder = short_builder(task, args.max_input_chars)
    recs, _ = build_records(train, builder.render, lambda o: " " + str(o), tok, 512)
    return recs, tok


def lora_model(args):
    from ladder.engines.gguf import embedded_dir
    from ladder.training.adapters import attach_lora, load_base

    lm, _ = load_base(str(embedded_dir()))
    return attach_lora(lm, args.r, 2 * args.r, 0.0, TARGETS, 0)


def model_shape(model) -> dict:
    """Sizes the FLOP count needs: frozen linear weights per token, LoRA weights, attention."""
    import torch

    lm = model.get_base_model()
    cfg = lm.config
    frozen = lora = 0
    for name, m in lm.named_modules():
        if isinstance(m, torch.nn.Linear) and ".layers." in name:
            if "lora_" in name:
                lora += m.in_features * m.out_features
            else:
                frozen += m.in_features * m.out_features
    return {
        "frozen_linear": frozen,
        "lora": lora,
        "layers": cfg.num_hidden_layers,
        "attn_width": cfg.num_attention_heads * cfg.head_dim,
        "hidden": cfg.hidden_size,
        "vocab": cfg.vocab_size,
    }


def step_flops(shape: dict, rows: int, width: int, head_positions: int) -> float:
    """Forward + backward FLOPs of one micro-batch as executed (padding included).

    Frozen linears: 2 (forward) + 2 (input gradient) per weight and position; LoRA: 2 + 4;
    causal attention QK^T and AV: 2 * width^2 * heads * head_dim forward, twice that backward;
    lm_head at `head_positions`: 2 + 2 per hidden x vocab (tied embedding: no weight gradient).
    """
    positions = rows * width
    linear = positions * (4 * shape["frozen_linear"] + 6 * shape["lora"])
    attention = 3 * shape["layers"] * rows * 2 * width * width * shape["attn_width"]
    head = head_positions * 4 * shape["hidden"] * shape["vocab"]
    return float(linear + attention + head)


def side_ladder(args) -> dict:
    import torch

    from ladder.training.data import collate, length_batches
    from ladder.training.loop import LoopConfig, answer_loss, train

    torch.set_num_threads(args.threads)
    recs, tok = records(args)
    model = lora_model(args)
    shape = model_shape(model)
    cfg = LoopConfig(epochs=args.epochs, lr=1e-3, batch_size=args.batch_size, batch_tokens=10**9)
    flops = 0.0
    for epoch in range(args.epochs):
        for b in length_batches(recs, cfg.batch_size, cfg.batch_tokens, cfg.seed + epoch):
            width = max(recs[i].length for i in b)
            flops += step_flops(shape, len(b), width, sum(len(recs[i].answer) for i in b))
    t0 = time.perf_counter()
    res = train(
        model,
        recs,
        [],
        cfg,
        pad_id=tok.pad_token_id,
        folder=Path(tempfile.mkdtemp()),
        fingerprint={},
    )
    wall = time.perf_counter() - t0
    batch = collate(recs[: args.batch_size], tok.pad_token_id)
    check = flop_counter_check(lambda: answer_loss(model, batch).backward(), shape, batch)
    s = res.state
    return {
        "method": "Ladder loop: body hidden states, lm_head at answer positions, length buckets",
        "seconds": round(wall, 2),
        "tokens": s.tokens,
        "padding": round(s.padded / s.tokens - 1, 4),
        "flops": flops,
        "final_loss": s.history[-1]["train_loss"],
        "flop_count_check": check,
    }


def side_processes(args) -> dict:
    """Ladder's loop on `args.processes` ranks, or alone with the same effective batch."""
    import torch

    from ladder.engines.gguf import embedded_dir
    from ladder.training.loop import LoopConfig, train
    from ladder.training.parallel import Replica, train_parallel

    torch.set_num_threads(args.threads)
    recs, tok = records(args)
    # the curve's "dev": the last quarter of the train records (compared, not held out)
    dev = recs[-max(4, len(recs) // 4) :] if args.examples else recs
    alone = args.side == "alone"
    cfg = LoopConfig(
        epochs=args.epochs,
        lr=1e-3,
        batch_size=args.batch_size,
        grad_accum=args.processes if alone else 1,
        patience=args.epochs,
    )
    model = lora_model(args)
    job = {"pad_id": tok.pad_token_id, "folder": Path(tempfile.mkdtemp()), "fingerprint": {}}
    t0 = time.perf_counter()
    if alone:
        res = train(model, recs, dev, cfg, **job)
    else:
        replica = Replica(str(embedded_dir()), "none", args.r, 2 * args.r, 0.0, tuple(TARGETS), 0)
        res = train_parallel(model, replica, args.processes, recs, dev, cfg, **job)
    s = res.state
    return {
        "processes": 1 if alone else args.processes,
        "grad_accum": cfg.grad_accum,
        "seconds": round(time.perf_counter() - t0, 2),
        "train_seconds": round(s.train_seconds, 2),
        "tokens": s.tokens,
        "steps": s.step,
        "dev_records": len(dev),
        "dev_is": "the last quarter of the train records: a curve to compare, not a hold-out",
        "history": s.history,
    }


def report_processes(args) -> None:
    """1 process (grad_accum N) vs N processes (grad_accum 1): speed and loss curves."""
    from ladder import provenance
    from ladder.fsutil import atomic_write_json

    argv = sys.argv[1:]
    sides = {}
    for side in ("alone", "parallel"):
        print(f"running {side} ...", file=sys.stderr)
        r = run_side(side, argv)
        r["tokens_per_s"] = round(r["tokens"] / r["train_seconds"], 1)
        sides[side] = r
    a, p = sides["alone"]["history"], sides["parallel"]["history"]
    gap = max(
        abs(x[k] - y[k]) / abs(x[k]) for x, y in zip(a, p) for k in ("train_loss", "dev_loss")
    )
    result = {
        "benchmark": "train_throughput_processes",
        "task": Path(args.task).name,
        "examples": args.examples or "all train",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "effective_batch": args.batch_size * args.processes,
        "alone": sides["alone"],
        "parallel": sides["parallel"],
        "max_relative_loss_gap": gap,
        "speedup_tokens_per_s": round(
            sides["parallel"]["tokens_per_s"] / sides["alone"]["tokens_per_s"], 2
        ),
        "machine": provenance.hardware(),
        "packages": provenance.versions(),
        "git": provenance.git_info(ROOT),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    name = f"train_throughput-p{args.processes}" + (f"-n{args.examples}" if args.examples else "")
    path = atomic_write_json(Path(args.out) / f"{name}.json", result)
    print(
        f"1 process {sides['alone']['tokens_per_s']} tok/s · {args.processes} processes "
        f"{sides['parallel']['tokens_per_s']} tok/s · loss curves differ by at most "
        f"{gap:.1e} (relative) → {path}"
    )


def flop_counter_check(step, shape: dict, batch) -> dict:
    """Analytic count vs torch's FLOP counter on one micro-batch (should agree within ~2%)."""
    from torch.utils.flop_counter import FlopCounterMode

    rows, width = batch.ids.shape
    with FlopCounterMode(display=False) as counter:
        step()
    counted = counter.get_total_flops()
    analytic = step_flops(shape, rows, width, len(batch.targets))
    return {"counted": counted, "analytic": analytic, "ratio": round(analytic / counted, 4)}


def side_trainer(args) -> dict:
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    torch.set_num_threads(args.threads)
    recs, tok = records(args)
    model = lora_model(args)
    shape = model_shape(model)
    data = [
        {"input_ids": r.prompt + r.answer, "labels": [-100] * len(r.prompt) + r.answer}
        for r in recs
    ]
    pad = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    seen = {"flops": 0.0, "tokens": 0, "padded": 0}

    def collate(features):
        batch = pad(features)
        rows, width = batch["input_ids"].shape
        seen["flops"] += step_flops(shape, rows, width, rows * width)  # logits at every position
        seen["tokens"] += int(batch["attention_mask"].sum())
        seen["padded"] += rows * width
        return batch

    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=1e-3,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        max_grad_norm=1.0,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        logging_steps=10**6,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=collate)
    t0 = time.perf_counter()
    out = trainer.train()
    wall = time.perf_counter() - t0
    return {
        "method": "PEFT + transformers Trainer: default sampler, padding collator, model loss",
        "seconds": round(wall, 2),
        "tokens": seen["tokens"],
        "padding": round(seen["padded"] / seen["tokens"] - 1, 4),
        "flops": seen["flops"],
        "final_loss": round(out.training_loss, 5),
    }


def matmul_peak(threads: int) -> dict:
    """Best fp32 GEMM rate over a few square sizes: the machine's practical peak, in FLOP/s."""
    import torch

    torch.set_num_threads(threads)
    best = {}
    for n in (1024, 2048, 3072):
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(2):
            a @ b
        rates = []
        for _ in range(5):
            t0 = time.perf_counter()
            a @ b
            rates.append(2 * n**3 / (time.perf_counter() - t0))
        best[n] = max(rates)
    return {
        "flops_per_s": max(best.values()),
        "by_size": {str(k): round(v / 1e9, 1) for k, v in best.items()},
    }


def run_side(side: str, argv: list[str]) -> dict:
    """A fresh process per side: peak RSS then belongs to that side alone."""
    proc = subprocess.run(
        [sys.executable, __file__, "--side", side, *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"{side} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default=str(ROOT / "examples/email-triage"))
    ap.add_argument(
        "--examples", type=int, default=None, help="first N train examples (default: all)"
    )
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--max-input-chars", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--processes", type=int, default=None, help="compare N ranks with 1 (same batch)"
    )
    ap.add_argument(
        "--side", choices=["ladder", "trainer", "alone", "parallel"], help=argparse.SUPPRESS
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()
    if args.side:
        sides = {"ladder": side_ladder, "trainer": side_trainer}
        result = sides.get(args.side, side_processes)(args)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return
    report_processes(args) if args.processes else report(args)


def report(args) -> None:
    from ladder import provenance
    from ladder.fsutil import atomic_write_json

    argv = sys.argv[1:]
    peak = matmul_peak(args.threads)
    sides = {}
    for side in ("ladder", "trainer"):
        print(f"running {side} ...", file=sys.stderr)
        r = run_side(side, argv)
        r["tokens_per_s"] = round(r["tokens"] / r["seconds"], 1)
        r["flops_per_s"] = round(r["flops"] / r["seconds"])
        r["fraction_of_peak"] = round(r["flops_per_s"] / peak["flops_per_s"], 4)
        sides[side] = r
    result = {
        "benchmark": "train_throughput",
        "task": Path(args.task).name,
        "examples": args.examples or "all train",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lora": {"r": args.r, "alpha": 2 * args.r, "dropout": 0.0, "target_modules": TARGETS},
        "max_input_chars": args.max_input_chars,
        "fp32_matmul_peak": peak,
        "ladder": sides["ladder"],
        "trainer": sides["trainer"],
        "speedup_tokens_per_s": round(
            sides["ladder"]["tokens_per_s"] / sides["trainer"]["tokens_per_s"], 2
        ),
        "machine": provenance.hardware(),
        "packages": provenance.versions(),
        "git": provenance.git_info(ROOT),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    name = "train_throughput" + (f"-n{args.examples}" if args.examples else "") + ".json"
    path = atomic_write_json(Path(args.out) / name, result)
    lad, base = sides["ladder"], sides["trainer"]
    print(
        f"ladder {lad['tokens_per_s']} tok/s ({lad['fraction_of_peak']:.0%} of peak, {lad['peak_rss_mb']:.0f} MB) · "
        f"trainer {base['tokens_per_s']} tok/s ({base['fraction_of_peak']:.0%}, {base['peak_rss_mb']:.0f} MB) · "
        f"speedup {result['speedup_tokens_per_s']}x · peak {peak['flops_per_s'] / 1e9:.0f} GFLOP/s → {path}"
    )


if __name__ == "__main__":
    main()
