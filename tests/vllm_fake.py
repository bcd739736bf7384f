"""A stand-in for vLLM's OpenAI server, as far as Ladder uses it: `/v1/models` (base + LoRA
cards with `root`/`parent`), `/health`, `/v1/load_lora_adapter` (only when runtime loading is
allowed, as vLLM does), and `/v1/completions` with echoed prompt log-probabilities (one token
per character after a `<bos>` token) and structured `choice` output. Log-probabilities depend on
the model asked for, so a test can tell which adapter answered. Every completions request is
recorded.

`python -m vllm.entrypoints.openai.api_server ...` runs it when tests/vllm_stub is first on
PYTHONPATH (the package there forwards to `main`)."""

import argparse
import zlib
from dataclasses import dataclass, field
from typing import Any


def char_logprob(model: str, text: str, i: int) -> float:
    """The fake model's log-probability of character i of `text`: a function of the model."""
    return -((zlib.crc32(f"{model}|{text[i]}|{i % 3}".encode()) % 1000) / 250.0)


@dataclass
class FakeVLLM:
    base: str
    root: str
    loras: dict[str, str] = field(default_factory=dict)  # name -> path
    runtime_loading: bool = False
    max_model_len: int = 2048
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self):
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse

        app = FastAPI()

        @app.get("/health")
        def health():
            return {}

        @app.get("/v1/models")
        def models():
            data = [
                {
                    "id": self.base,
                    "root": self.root,
                    "parent": None,
                    "max_model_len": self.max_model_len,
                }
            ]
            data += [{"id": n, "root": p, "parent": self.base} for n, p in self.loras.items()]
            return {"object": "list", "data": [{"object": "model", **d} for d in data]}

        if self.runtime_loading:

            @app.post("/v1/load_lora_adapter")
            async def load(request: Request):
                body = await request.json()
                if body["lora_name"] in self.loras:
                    return JSONResponse({"error": {"message": "already loaded"}}, status_code=400)
                self.loras[body["lora_name"]] = body["lora_path"]
                return "Success"

        @app.post("/v1/completions")
        async def completions(request: Request):
            body = await request.json()
            self.requests.append(body)
            model = body["model"]
            if model != self.base and model not in self.loras:
                return JSONResponse({"error": {"message": f"no model {model}"}}, status_code=404)
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            choices = []
            for i, p in enumerate(prompts):
                allowed = (body.get("structured_outputs") or {}).get("choice")
                gen = allowed[0] if allowed else " ok"
                if body.get("echo"):
                    gen = " x"
                    text = p + gen
                    tokens = ["<bos>", *p, gen]
                    offsets, at = [], 0
                    for t in tokens:
                        offsets.append(at)
                        at += len(t)
                    values = [None, *(char_logprob(model, p, j) for j in range(len(p))), -1.0]
                    lp = {
                        "tokens": tokens,
                        "token_logprobs": values,
                        "text_offset": offsets,
                        "top_logprobs": None,
                    }
                else:
                    text, lp = gen, None
                choices.append({"index": i, "text": text, "logprobs": lp, "finish_reason": "stop"})
            tin = sum(len(p) + 1 for p in prompts)
            usage = {
                "prompt_tokens": tin,
                "completion_tokens": len(choices),
                "total_tokens": tin + len(choices),
            }
            return {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": 0,
                "model": model,
                "choices": choices,
                "usage": usage,
            }

        return app


def main() -> None:
    """`vllm serve`'s command line, as far as Ladder passes it."""
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--served-model-name", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lora-modules", nargs="*", default=[])
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--enable-lora", action="store_true")
    ap.add_argument("--max-lora-rank", type=int)
    ap.add_argument("--max-loras", type=int)
    ap.add_argument("--dtype")
    args = ap.parse_args()
    assert args.enable_lora or not args.lora_modules
    loras = dict(m.split("=", 1) for m in args.lora_modules)
    fake = FakeVLLM(args.served_model_name, args.model, loras, max_model_len=args.max_model_len)
    uvicorn.run(fake.app(), host=args.host, port=args.port, log_level="warning")
