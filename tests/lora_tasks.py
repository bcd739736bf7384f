"""Fixtures for training tests: a tiny random model, one torch thread, and classify tasks the
tiny model can learn (inputs made of its word-level vocabulary)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import write_classify_task
from tiny_model import build_tiny_model

CUES = {
    "spam": "lottery password urgent refund invoice",
    "work": "meeting contract budget review monday",
    "personal": "dinner family friend tomorrow thanks",
}
FILLER = ["the", "a", "of", "to", "and", "with", "this", "that"]
LORA = "{epochs: 3, lr: 0.01, min_examples: 8, batch_size: 4, data_curve: [12]}"


def rows(n=90, seed=0) -> list[tuple[str, str]]:
    """Inputs made of the tiny vocabulary: three cue words of the label among filler."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = list(CUES)[i % 3]
        words = rng.sample(CUES[label].split(), 3) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        out.append((" ".join(words) + f" {i % 10}", label))
    return out


def model_yaml(tiny: Path) -> str:
    """The tiny model as task.yaml's `tiny`, on one thread (see `one_thread`)."""
    return (
        f"model: tiny\nmodels: {{tiny: {{engine: hf, path: '{tiny}', options: {{threads: 1}}}}}}\n"
    )


def task_dir(root: Path, tiny: Path, lora: str = LORA, extra: str = "") -> Path:
    yaml = f"{model_yaml(tiny)}rungs:\n  lora: {lora}\n{extra}"
    return write_classify_task(root, rows=rows(), extra_yaml=yaml)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and never stall at thread barriers on a busy CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))
