"""The LoRA training loop, written out: every step a reader needs, nothing hidden.

Why it is fast on a CPU:
- the vocabulary projection (`lm_head`, 262k rows for Gemma 3) is most of the cost of a small
  causal LM; the loop runs the model body for hidden states and applies `lm_head` only at the
  positions that predict answer tokens (about 2.3x the plain `model(labels=...)` loop here);
- batches are length-bucketed under a token budget, so padding stays at a few percent;
- only the LoRA matrices have gradients; frozen weights get none.

What it guarantees:
- loss on answer tokens only, averaged over every answer token of an optimizer step, so
  gradient accumulation weighs each token alike whatever the micro-batch sizes;
- AdamW, gradient clipping, cosine schedule with linear warm-up;
- early stopping on the dev loss; the result holds the best epoch's weights;
- determinism: batch order from `seed + epoch`, the torch RNG state kept in checkpoints (LoRA
  initialisation is seeded by the caller);
- a checkpoint after every epoch, written atomically; `train` resumes from it when its
  fingerprint (base model checksum, training data, hyperparameters) matches, and refuses one
  made for another task or model;
- a non-finite loss or gradient stops cleanly: the weights go back to the best finished epoch,
  whose checkpoint stays on disk; before any finished epoch it is an error;
- across processes (parallel.py) the same loop runs on every rank with a `World`: each rank
  trains on its share of a step's micro-batches, gradients and counts are summed across ranks,
  and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ladder.engines.hf import model_parts
from ladder.errors import LadderError
from ladder.progress import NullProgress, Progress
from ladder.training.data import Record, collate, length_batches
from ladder.training.world import SOLO, World

CHECKPOINT = "checkpoint.pt"


class TrainingError(LadderError):
    """Training cannot go on: a foreign checkpoint, a diverged loss, unusable data."""


@dataclass
class LoopConfig:
    epochs: int = 2
    lr: float = 1e-3
    warmup: float = 0.1  # fraction of the optimizer steps spent warming up linearly
    batch_size: int = 8  # rows per micro-batch, at most
    batch_tokens: int = 2048  # padded tokens per micro-batch, at most
    grad_accum: int = 1  # micro-batches per optimizer step
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    patience: int = 1  # epochs without a better dev loss before stopping
    seed: int = 0
    # "bfloat16": forwards under bf16 autocast, the trainable (LoRA) weights and the optimizer
    # stay fp32 (fp32 master weights); None: every op in the weights' own dtype
    autocast: str | None = None


@dataclass
class LoopState:
    """Everything a resumed training needs besides tensors; saved in each checkpoint."""

    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    tokens: int = 0  # real (non-padding) tokens trained on
    answer_tokens: int = 0
    padded: int = 0  # rows x width summed over micro-batches
    train_seconds: float = 0.0  # forward + backward + optimizer
    seconds: float = 0.0  # wall time, dev evaluations and checkpoints included
    history: list[dict[str, Any]] = field(default_factory=list)
    best_dev_loss: float | None = None
    best_epoch: int = 0  # 1-based; 0 = none yet
    bad_epochs: int = 0
    stopped: str = "completed"  # completed | early | non-finite
    resumed_from: int | None = None


@dataclass
class TrainResult:
    state: LoopState
    device: str
    processes: int = 1  # data-parallel ranks that trained it
    dtype: str = "float32"  # the number format of the forwards (see LoopConfig.autocast)

    def summary(self, examples: int) -> dict[str, Any]:
        """The `extras["training"]` block of a scorecard."""
        s = self.state
        return {
            "seconds": round(s.seconds, 2),
            "device": self.device,
            "processes": self.processes,
            "dtype": self.dtype,
            "examples": examples,
            "tokens": s.tokens,
            "epochs": s.epoch,
            "tokens_per_s": round(s.tokens / s.train_seconds, 1) if s.train_seconds else 0.0,
            "answer_tokens": s.answer_tokens,
            "steps": s.step,
            "padding": round(s.padded / s.tokens - 1, 4) if s.tokens else 0.0,
            "best_epoch": s.best_epoch,
            "best_dev_loss": s.best_dev_loss,
            "stopped": s.stopped,
            "resumed_from_epoch": s.resumed_from,
            "history": s.history,
        }


# ---------------------------------------------------------------- the loss


def _torch():
    import torch

    return torch


def answer_logits(model, batch):
    """Logits at the answer positions only: [answer tokens, vocabulary], float32."""
    torch = _torch()
    body, head, cap = model_parts(model)
    hidden = body(input_ids=batch.ids, use_cache=False).last_hidden_state
    logits = head(hidden[batch.rows, batch.positions]).float()
    return torch.tanh(logits / cap) * cap if cap else logits


def answer_loss(model, batch):
    """Cross-entropy summed over the batch's answer tokens."""
    torch = _torch()
    return torch.nn.functional.cross_entropy(
        answer_logits(model, batch), batch.targets, reduction="sum"
    )


def forward_dtype(model, autocast: str | None):
    """bf16 autocast on the model's device, or nothing: the weights' own dtype."""
    from contextlib import nullcontext

    if not autocast:
        return nullcontext()
    torch = _torch()
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=getattr(torch, autocast))


def precision(model, cfg: LoopConfig) -> str:
    """How the forwards compute: `bfloat16` under autocast or over a base held in bf16 (fp32
    LoRA matrices on it), else the trainable weights' dtype."""
    torch = _torch()
    if cfg.autocast:
        return cfg.autocast
    if any(p.dtype == torch.bfloat16 for p in model.parameters() if not p.requires_grad):
        return "bfloat16"
    trainable = next((p for p in model.parameters() if p.requires_grad), None)
    held = trainable if trainable is not None else next(model.parameters())
    return str(held.dtype).removeprefix("torch.")


def dev_loss(
    model, records: list[Record], cfg: LoopConfig, pad_id: int, world: World = SOLO
) -> float | None:
    """Mean loss per answer token over `records` (no gradients, dropout off; ranks share it)."""
    torch = _torch()
    if not records:
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total: float = 0.0
    n: float = 0  # tokens; summed over the ranks as a float
    with torch.no_grad():
        batches = length_batches(records, cfg.batch_size * 2, cfg.batch_tokens * 2, seed=0)
        for idx in world.share(batches):
            batch = collate([records[i] for i in idx], pad_id, str(device))
            with forward_dtype(model, cfg.autocast):
                total += answer_loss(model, batch).item()
            n += len(batch.targets)
    model.train(was_training)
    total, n = world.sum([total, n])
    return total / n


def text_loss(model, ids: list[int], window: int = 512, chunk: int = 128) -> float:
    """Mean next-token loss over a text: windows of `window` tokens, `lm_head` in chunks."""
    torch = _torch()
    body, head, cap = model_parts(model)
    device = next(model.parameters()).device
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            piece = torch.tensor([ids[start : start + window + 1]], device=device)
            hidden = body(input_ids=piece[:, :-1], use_cache=False).last_hidden_state[0]
            for c in range(0, hidden.shape[0], chunk):
                logits = head(hidden[c : c + chunk]).float()
                logits = torch.tanh(logits / cap) * cap if cap else logits
                target = piece[0, 1 + c : 1 + c + chunk]
                total += torch.nn.functional.cross_entropy(logits, target, reduction="sum").item()
                n += len(target)
    return total / max(n, 1)


# ---------------------------------------------------------------- schedule and weights


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """Learning-rate multiplier: linear 0 -> 1 over `warmup` steps, then cosine 1 -> 0."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def trainable_state(model) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, weights: dict[str, Any]) -> None:
    torch = _torch()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in weights:
                p.copy_(weights[n])


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, fingerprint: dict, state: LoopState, model, best, opt, sched):
    """One file per training, replaced atomically after each epoch (a few MB for LoRA)."""
    torch = _torch()
    blob = {
        "fingerprint": fingerprint,
        "state": asdict(state),
        "weights": trainable_state(model),
        "best": best,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, fingerprint: dict) -> dict[str, Any]:
    torch = _torch()
    try:
        blob = torch.load(path, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, never a traceback
        raise TrainingError(
            f"cannot read the training checkpoint: {exc}.",
            where=path,
            fix="delete it to train from the start.",
        ) from None
    theirs = blob.get("fingerprint", {})
    differ = [
        k for k in sorted(set(fingerprint) | set(theirs)) if fingerprint.get(k) != theirs.get(k)
    ]
    if differ:
        shown = "; ".join(
            f"{k}: checkpoint {theirs.get(k)!r}, now {fingerprint.get(k)!r}" for k in differ[:4]
        )
        raise TrainingError(
            f"this checkpoint belongs to another training ({shown}).",
            where=path,
            fix="resume with the settings it was made with, or delete the checkpoint to start over.",
        )
    return blob


# ---------------------------------------------------------------- the loop


def train(
    model,
    records: list[Record],
    dev: list[Record],
    cfg: LoopConfig,
    *,
    pad_id: int,
    folder: Path,
    fingerprint: dict[str, Any],
    progress: Progress | None = None,
    desc: str = "train",
    world: World = SOLO,
) -> TrainResult:
    """Train `model`'s trainable weights on `records`; resume from `folder` when possible.

    With a `world` of several ranks (parallel.py) each optimizer step spans
    `grad_accum x world.size` micro-batches, shared out among the ranks.
    """
    torch = _torch()
    progress = progress or NullProgress()
    folder.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_batches = len(length_batches(records, cfg.batch_size, cfg.batch_tokens, cfg.seed))
    total = math.ceil(n_batches / (cfg.grad_accum * world.size)) * cfg.epochs
    warmup = round(cfg.warmup * total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, warmup, total))
    state, best = _start(folder / CHECKPOINT, fingerprint, model, opt, sched)
    world.same_weights(params)
    model.train()
    with progress.task(desc, total=total) as bar:
        bar.advance(state.step)
        while state.epoch < cfg.epochs and state.stopped == "completed":
            t0 = time.perf_counter()
            batches = length_batches(
                records, cfg.batch_size, cfg.batch_tokens, cfg.seed + state.epoch
            )
            train_loss = _epoch(
                model, records, batches, cfg, (opt, sched), state, bar, pad_id, world
            )
            if train_loss is None:
                _diverged(state, progress)
                break
            best = _end_epoch(model, dev, cfg, pad_id, state, best, train_loss, world)
            if world.main:
                save_checkpoint(folder / CHECKPOINT, fingerprint, state, model, best, opt, sched)
            state.seconds += time.perf_counter() - t0
            progress.log(f"{desc}: {epoch_line(state, cfg)}")
    model.eval()
    if best is not None:
        load_trainable(model, best)
    return TrainResult(state, device.type, world.size, precision(model, cfg))


def epoch_line(state: LoopState, cfg: LoopConfig) -> str:
    h = state.history[-1]
    dev = "" if h["dev_loss"] is None else f" · dev loss {h['dev_loss']:.3f}"
    stop = " · no better on dev: stopping" if state.stopped == "early" else ""
    speed = state.tokens / state.train_seconds if state.train_seconds else 0.0
    return (
        f"epoch {state.epoch}/{cfg.epochs} · train loss {h['train_loss']:.3f}{dev} · "
        f"{speed:.0f} tok/s · {state.seconds:.0f} s{stop}"
    )


def _start(path: Path, fingerprint: dict, model, opt, sched) -> tuple[LoopState, Any]:
    """A fresh state, or the one in a matching checkpoint (weights, optimizer, RNG restored)."""
    torch = _torch()
    if not path.exists():
        return LoopState(), None
    blob = load_checkpoint(path, fingerprint)
    state = LoopState(**blob["state"])
    state.resumed_from = state.epoch
    load_trainable(model, blob["weights"])
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["rng"])
    if blob.get("cuda_rng"):
        torch.cuda.set_rng_state_all(blob["cuda_rng"])
    return state, blob["best"]


def _epoch(model, records, batches, cfg, optim, state, bar, pad_id, world) -> float | None:
    """One pass over the batches; the mean answer-token loss, or None on a non-finite value."""
    torch = _torch()
    opt, sched = optim
    device = str(next(model.parameters()).device)
    params = [p for p in model.parameters() if p.requires_grad]
    loss_sum, loss_n, session_tokens, session_s = 0.0, 0, 0, 0.0
    per_step = cfg.grad_accum * world.size
    for start in range(0, len(batches), per_step):
        t0 = time.perf_counter()
        step = batches[start : start + per_step]
        # every rank knows every record: the step's answer-token count is global, no exchange
        n_answer = sum(len(records[i].answer) for b in step for i in b)
        group = [collate([records[i] for i in b], pad_id, device) for b in world.share(step)]
        step_loss, bad = 0.0, 0.0
        for b in group:
            with forward_dtype(model, cfg.autocast):  # the backward runs outside, as it should
                loss = answer_loss(model, b)
            if not torch.isfinite(loss):
                bad = 1.0
                break
            (loss / n_answer).backward()  # the step's mean over all of its answer tokens
            step_loss += loss.item()
        tokens, padded = sum(b.tokens for b in group), sum(b.padded for b in group)
        step_loss, bad, tokens, padded = world.sum([step_loss, bad, tokens, padded])
        if bad:
            opt.zero_grad(set_to_none=True)
            return None
        world.sum_grads(params)
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        if not torch.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            return None
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        tokens = int(tokens)
        state.step += 1
        state.tokens += tokens
        state.answer_tokens += n_answer
        state.padded += int(padded)
        state.train_seconds += dt
        loss_sum, loss_n = loss_sum + step_loss, loss_n + n_answer
        session_tokens, session_s = session_tokens + tokens, session_s + dt
        bar.advance(1)
        bar.update(
            info=f"ep {state.epoch + 1}/{cfg.epochs} · loss {step_loss / n_answer:.3f} · "
            f"{session_tokens / session_s:.0f} tok/s"
        )
    return loss_sum / max(loss_n, 1)


def _end_epoch(model, dev, cfg, pad_id, state: LoopState, best, train_loss: float, world=SOLO):
    """Dev loss, history, best weights and the early-stopping count after a finished epoch."""
    state.epoch += 1
    d = dev_loss(model, dev, cfg, pad_id, world)
    state.history.append(
        {
            "epoch": state.epoch,
            "train_loss": round(train_loss, 5),
            "dev_loss": None if d is None else round(d, 5),
        }
    )
    if d is None or state.best_dev_loss is None or d < state.best_dev_loss:
        state.best_dev_loss, state.best_epoch, state.bad_epochs = d, state.epoch, 0
        return trainable_state(model)
    state.bad_epochs += 1
    if state.bad_epochs >= cfg.patience and state.epoch < cfg.epochs:
        state.stopped = "early"
    return best


def _diverged(state: LoopState, progress: Progress) -> None:
    if state.best_epoch == 0:
        raise TrainingError(
            f"the training loss became NaN or infinite at step {state.step + 1}, before the "
            "first epoch finished: there is no good checkpoint to keep.",
            fix="lower the learning rate (`rungs.lora.lr` in task.yaml, or `--lr`) and train again.",
        )
    state.stopped = "non-finite"
    progress.log(
        f"training stopped: the loss became NaN or infinite in epoch {state.epoch + 1}; "
        f"keeping epoch {state.best_epoch} (its checkpoint stays on disk)."
    )
