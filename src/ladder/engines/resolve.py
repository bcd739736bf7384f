"""Model names and the engines built for them: the model registry's entries and resolution.

Names a user can give:
- a registered name: `gemma-3-270m` (the embedded default), `fake` (no model, for tests);
- a name defined in task.yaml under `models:`;
- `openai:<model>`: an OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY);
- `hf:<folder>`: a local transformers model folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ladder.engines.gguf import EMBEDDED, embedded_dir, embedded_ready, prepare_embedded
from ladder.errors import ModelError
from ladder.progress import NullProgress, Progress
from ladder.task import ModelSpec, Task


@dataclass
class ModelEntry:
    name: str
    spec: ModelSpec
    description: str = ""
    prepare: Callable[[Progress], Path] | None = None  # makes the model available locally, once
    is_prepared: Callable[[], bool] | None = None
    locate: Callable[[], Path] | None = None  # where a prepared model lives (resolved late)
    extra: dict[str, Any] = field(default_factory=dict)


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


def make_engine(entry: ModelEntry, progress: Progress | None = None, dtype: str | None = None):
    """Build the engine for a model, preparing it first when needed.

    `dtype` (auto | float32 | bfloat16, from `--dtype`) reaches engines whose factory declares
    `takes_dtype`: a forced format overrides the model's `options.dtype`, `auto` fills it in
    only where task.yaml set none.
    """
    from ladder.registry import registries

    if entry.prepare is not None and not (entry.is_prepared and entry.is_prepared()):
        entry.prepare(progress or NullProgress())
    factory = registries().engines.get(entry.spec.engine)
    if dtype is not None and getattr(factory, "takes_dtype", False):
        options = dict(entry.spec.options)
        if dtype != "auto" or "dtype" not in options:
            options["dtype"] = dtype
        entry = replace(entry, spec=entry.spec.model_copy(update={"options": options}))
    return factory(entry)


# engine factories, registered under the `engine:` names task.yaml uses


def hf_factory(entry: ModelEntry):
    from ladder.engines.hf import HFEngine

    path = str(entry.locate()) if entry.locate else entry.spec.path or ""
    return HFEngine(entry.name, path, **dict(entry.spec.options))


hf_factory.takes_dtype = True  # type: ignore[attr-defined]


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
        check=bool(s.options.get("check", True)),  # a gateway's upstream keeps its own health
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
