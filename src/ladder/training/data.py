"""Training examples as token ids, and length-bucketed batches with little padding.

A record is a prompt's token ids (exactly what the solution sends at inference: instructions,
input and answer cue, no demonstrations) followed by the answer's ids (` label` or ` {json}`,
then EOS). The two are tokenised apart, which is how the engine scores and generates, so
training sees the token boundaries inference sees. Only answer tokens carry loss.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ladder.dataset import Example
from ladder.errors import DataError


@dataclass
class Record:
    id: str
    prompt: list[int]
    answer: list[int]

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.answer)


@dataclass
class Batch:
    """Right-padded ids plus where the answer tokens are: the loss needs nothing else.

    `rows`/`positions` index the hidden state that predicts each answer token (the position
    before it); `targets` are those tokens. Padding sits after every real token, so a causal
    model never lets a real token see it and no attention mask is needed.
    """

    ids: Any  # LongTensor [rows, width]
    rows: Any  # LongTensor [answer tokens]
    positions: Any  # LongTensor [answer tokens]
    targets: Any  # LongTensor [answer tokens]
    tokens: int  # real (non-padding) tokens
    padded: int  # rows x width


def build_records(
    examples: list[Example],
    render: Callable[[str], str],
    answer: Callable[[Any], str],
    tokenizer,
    max_seq_tokens: int,
) -> tuple[list[Record], list[str]]:
    """Tokenise examples; return the records and the ids left out for not fitting.

    Raises DataError when an answer alone takes more than half of `max_seq_tokens`: such an
    output cannot be learned in this context, and dropping it silently would hide the problem.
    """
    prompts = tokenizer([render(e.input) for e in examples]).input_ids
    answers = tokenizer([answer(e.output) for e in examples], add_special_tokens=False).input_ids
    eos = tokenizer.eos_token_id
    records, skipped = [], []
    for ex, p, a in zip(examples, prompts, answers):
        a = [*a, eos]
        if len(a) > max_seq_tokens // 2:
            where = f" (line {ex.line})" if ex.line else ""
            raise DataError(
                f"example {ex.id!r}{where}: its output is {len(a)} tokens, more than half of the "
                f"training context ({max_seq_tokens} tokens).",
                fix="raise `rungs.lora.max_seq_tokens` in task.yaml, or shorten the outputs.",
            )
        if len(p) + len(a) > max_seq_tokens:
            skipped.append(ex.id)
            continue
        records.append(Record(ex.id, list(p), a))
    return records, skipped


def records_hash(records: list[Record]) -> str:
    """What the model is trained on, token for token: checkpoints and adapters carry it."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.id}\0{r.prompt}\0{r.answer}\n".encode())
    return h.hexdigest()[:16]


def length_batches(
    records: list[Record], max_rows: int, max_tokens: int, seed: int
) -> list[list[int]]:
    """Record indices in batches of similar length under a padded-token budget, seeded order.

    Sorting by length (ties broken at random) keeps padding to a few percent; the budget lets
    short records travel in larger batches; the batch order is shuffled with `seed`.
    """
    rng = random.Random(seed)
    order = sorted(range(len(records)), key=lambda i: (records[i].length, rng.random()))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = records[i].length  # ascending: the newest record is the widest
        if cur and (len(cur) >= max_rows or width * (len(cur) + 1) > max_tokens):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def collate(records: list[Record], pad_id: int, device: str = "cpu") -> Batch:
    import torch

    width = max(r.length for r in records)
    ids = torch.full((len(records), width), pad_id, dtype=torch.long)
    rows: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    for row, r in enumerate(records):
        ids[row, : r.length] = torch.tensor(r.prompt + r.answer)
        start = len(r.prompt) - 1  # the hidden state at the answer cue predicts answer[0]
        rows += [row] * len(r.answer)
        positions += range(start, start + len(r.answer))
        targets += r.answer
    return Batch(
        ids.to(device),
        torch.tensor(rows, dtype=torch.long, device=device),
        torch.tensor(positions, dtype=torch.long, device=device),
        torch.tensor(targets, dtype=torch.long, device=device),
        sum(r.length for r in records),
        len(records) * width,
    )
