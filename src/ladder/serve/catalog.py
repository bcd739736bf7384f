"""What `ladder serve` exposes, built from a run (or a bare model) and the options given.

Model names:
- `TASK`: the run's winner; with a large model configured, the hybrid route (winner, else the
  best prompt on the large model below a calibrated confidence);
- `TASK/RUNG`: each rung the run finished, rebuilt from what the store recorded;
- `TASK/RUNG@LARGE`: the best prompting rung's prompt on the large model;
- the base model (`gemma-3-270m`, ...) and every LoRA adapter, by name, raw text in and out;
- the large model itself (`LARGE`), proxied to its OpenAI-compatible endpoint.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ladder.engines.base import capability
from ladder.errors import LadderError, ModelError
from ladder.progress import Progress
from ladder.rungs.context import Context
from ladder.serve.adapters import AdapterSet, AdapterView, adapter_meta, check_adapter_folder
from ladder.serve.router import Calibration
from ladder.serve.schemas import ApiError
from ladder.serve.targets import LocalModel
from ladder.serve.upstream import Health, Upstream
from ladder.serve.worker import Gate, Worker
from ladder.store.db import Store
from ladder.task import ModelSpec

if TYPE_CHECKING:
    from ladder.serve.embeddings import EmbeddingModel


@dataclass
class Limits:
    max_body_bytes: int = 1_000_000  # request body
    max_tokens: int = 1024  # tokens a request may ask to generate
    max_choices: int = 16  # `n` a request may ask for
    default_max_tokens: int = 256
    max_prompt_tokens: int = 8192
    max_queue: int = 256  # requests waiting for the local model before 503s
    max_batch: int = 8
    request_timeout_s: float = 120.0
    upstream_timeout_s: float = 30.0
    upstream_concurrency: int = 16
    cache_entries: int = 1024  # temperature-0 answers kept (0 = no cache)
    key_cache_s: float = 5.0  # a revoked key stops working within this time
    log_queue: int = 10000


@dataclass
class ServeOptions:
    run: str | None = None  # run id, or a run folder (runs/TASK/RUN_ID)
    runs_dir: str | None = None
    model: str | None = None  # the base model when no run is given
    adapters: dict[str, str] = field(default_factory=dict)  # name -> PEFT folder
    large: str | None = None  # [NAME=]URL, or a model name (task.yaml `models:`, openai:X)
    large_model: str | None = None  # the model name the large endpoint expects
    small: str | None = None  # the rung the route answers with (default: the best local one)
    target_quality: float | None = None
    target_share: float | None = None
    threshold: float | None = None  # route below this confidence, as set (no target)
    price_hour: float | None = None  # $/hour of this machine (default: the price book's)
    large_price: tuple[float, float] | None = None  # $ per 1M tokens in, out (default: the book's)
    price_files: list[str] = field(default_factory=list)  # price files over the task's
    limits: Limits = field(default_factory=Limits)
    engines: dict[str, Any] = field(default_factory=dict)  # prebuilt engines by model name
    engine: str = "hf"  # hf: the base model and adapters in this process; vllm: on a vLLM server
    vllm: Any = None  # ladder.serve.vllm.VLLMOptions (with engine="vllm")


class Catalog:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.targets: dict = {}
        self.worker = Worker(max_queue=limits.max_queue, max_batch=limits.max_batch)
        self.pool = ThreadPoolExecutor(
            limits.upstream_concurrency, thread_name_prefix="ladder-upstream"
        )
        # remote task models share the pool; this bounds how many may wait for it
        self.remote_gate = Gate(limits.upstream_concurrency + limits.max_queue, "remote models")
        self.upstreams: list[Upstream] = []
        self.ctx: Context | None = None
        self.engines: list[Any] = []
        self.task: str | None = None
        self.run_id: str | None = None
        self.calibration: Calibration | None = None
        self.price_hour = 0.0  # $/hour of local compute, for the cost log
        self.large_price = (0.0, 0.0)  # $ per 1M tokens in, out of the large model
        self.lines: list[str] = []  # what is served, for the startup banner
        # the embedding model behind /v1/embeddings, when installed
        self.embeddings: EmbeddingModel | None = None
        self.closers: list[Any] = []  # run last by close(): a vLLM server Ladder started

    def add(self, target) -> None:
        self.targets[target.name] = target

    def get(self, name: str):
        target = self.targets.get(name)
        if target is None and self.embeddings is not None and name == self.embeddings.name:
            raise ApiError(
                400,
                f"'{name}' is an embedding model: send its input to /v1/embeddings.",
                param="model",
                code="invalid_value",
            )
        if target is None:
            raise ApiError(
                404,
                f"The model '{name}' does not exist. Served here: {', '.join(self.targets)}.",
                param="model",
                code="model_not_found",
            )
        return target

    async def aclose(self) -> None:
        for up in self.upstreams:
            await up.aclose()

    def close(self) -> None:
        self.worker.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.ctx is not None:
            self.ctx.close()
        for eng in self.engines:
            eng.close()
        while self.closers:
            self.closers.pop()()


def add_embeddings(cat: Catalog) -> None:
    """The rag index's embedder, shared with the run's retrieval, behind /v1/embeddings."""
    from ladder.serve.embeddings import EmbeddingModel

    if not EmbeddingModel.available():
        cat.lines.append("no /v1/embeddings: the embedding model is not installed ([hf] extra)")
        return
    if cat.ctx is not None:
        embedder = cat.ctx.embedder()
    else:
        from ladder.retrieval.embed import Embedder

        embedder = Embedder()
    cat.embeddings = EmbeddingModel(embedder, cat.worker, cat.limits.request_timeout_s)
    cat.lines.append(f"{embedder.name}: embeddings ({embedder.dim} dimensions)")


# ---------------------------------------------------------------- pieces


def is_local(engine) -> bool:
    """The run's own model, priced per machine hour (in this process, on vLLM, or a server on
    loopback), as the engine declares and economics prices it."""
    return capability(engine, "price_basis") == "hour"


def in_process(engine) -> bool:
    """Runs on the gateway's engine worker (one thread, batched), not behind HTTP."""
    return bool(capability(engine, "in_process"))


def add_vllm(
    cat: Catalog,
    opts: ServeOptions,
    name: str,
    wanted: dict[str, Path],
    *,
    task=None,
    log: Path,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], dict[Path, str]]:
    """The base model and every adapter on vLLM (started here, or at --vllm-url), exposed as raw
    models; returns the engines by model name and {adapter folder: adapter name}."""
    from ladder.serve.vllm import VLLMOptions, serve_on_vllm

    served, engines = serve_on_vllm(
        name, wanted, opts.vllm or VLLMOptions(), task=task, log=log, progress=progress
    )
    if served.server is not None:
        cat.closers.append(served.server.stop)
    cat.engines.extend(engines.values())
    price_local(cat, opts, task, engines[name])  # this machine's rate (--price-hour for another)
    if served.max_model_len:  # vLLM refuses longer prompts; the gateway says so first
        cat.limits.max_prompt_tokens = min(cat.limits.max_prompt_tokens, served.max_model_len - 1)
    local = partial(
        LocalModel,
        worker=cat.worker,
        price_hour=cat.price_hour,
        timeout=cat.limits.request_timeout_s,
        pool=cat.pool,
        gate=cat.remote_gate,
    )
    cat.add(local(name, engines[name]))
    for ad_name in wanted:
        cat.add(local(ad_name, engines[ad_name], role="adapter"))
    cat.lines.extend(served.lines)
    return engines, {Path(path).resolve(): ad_name for ad_name, path in wanted.items()}


def add_adapters(cat: Catalog, base, name: str, wanted: dict[str, Path]):
    """Load every adapter on the base engine; expose the base and each adapter as raw models.

    Returns {adapter folder: adapter name}.
    """
    local = partial(
        LocalModel,
        worker=cat.worker,
        price_hour=cat.price_hour,
        timeout=cat.limits.request_timeout_s,
    )
    if not wanted:
        cat.add(local(name, base))
        return {}
    if not (capability(base, "supports_adapters") and in_process(base)):
        raise ModelError(
            f"LoRA adapters need a transformers base model; {name!r} runs on {base.info().get('engine')}."
        )
    aset = AdapterSet(base)
    for ad_name, path in wanted.items():
        aset.load(ad_name, path)
    cat.add(local(name, AdapterView(name, aset, None)))
    for ad_name in wanted:
        cat.add(local(ad_name, AdapterView(ad_name, aset, ad_name), role="adapter"))
    cat.lines.append(f"adapters: {', '.join(wanted)} on one {name} (switched per request)")
    return {Path(path).resolve(): ad_name for ad_name, path in wanted.items()}


def wanted_adapters(
    opts: ServeOptions, store: Store | None, run: dict | None, task: str | None
) -> dict[str, Path]:
    wanted: dict[str, Path] = {}
    if store is not None and run is not None:
        for art in store.artifacts(run["id"]):
            if art["kind"] == "adapter":
                folder = check_adapter_folder(art["path"])
                meta = {**adapter_meta(folder), **(art.get("meta") or {})}
                wanted[str(meta.get("name") or f"{task}-{art['rung']}")] = folder
    for name, path in opts.adapters.items():
        wanted[name] = check_adapter_folder(path)
    return wanted


def large_spec(opts: ServeOptions, task=None) -> tuple[str, ModelSpec]:
    """The large model's name and endpoint from `--large [NAME=]URL|MODEL`."""
    from ladder.engines.resolve import resolve_model

    assert opts.large is not None  # called only when --large is given
    name, _, ref = (
        opts.large.rpartition("=") if "=" in opts.large.split("://")[0] else ("", "", opts.large)
    )
    if ref.startswith(("http://", "https://")):
        return name or "large", ModelSpec(engine="openai", base_url=ref, model=opts.large_model)
    spec = resolve_model(ref, task).spec
    if spec.engine != "openai":
        raise ModelError(
            f"the large model {ref!r} is not an OpenAI-compatible endpoint (engine {spec.engine}).",
            fix="give --large URL or a task.yaml model with `engine: openai`.",
        )
    return name or ref, spec.model_copy(
        update={"model": opts.large_model or spec.model or ref.removeprefix("openai:")}
    )


def add_large(cat: Catalog, opts: ServeOptions, task=None):
    """The large model's engine (for prompts) and its proxy target, sharing one health record.

    The engine is built through the engine registry like every other; the proxy checks the
    endpoint's health itself, so the engine skips its start-up check."""
    from ladder.engines.resolve import ModelEntry, make_engine

    name, spec = large_spec(opts, task)
    base_url = spec.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    key = os.environ.get(spec.api_key_env or "OPENAI_API_KEY")
    remote = spec.model or _discover(base_url, key)
    cat.large_price = opts.large_price or _book_price(cat, opts, task, name, remote)
    timeout = min(spec.timeout, opts.limits.upstream_timeout_s)
    conc = min(spec.concurrency, opts.limits.upstream_concurrency)
    engine = make_engine(
        ModelEntry(
            name,
            spec.model_copy(
                update={
                    "base_url": base_url,
                    "model": remote,
                    "concurrency": conc,
                    "timeout": timeout,
                    "max_retries": 1,
                    "options": {**spec.options, "check": False},
                }
            ),
        )
    )
    health = Health()
    up = Upstream(
        name,
        base_url,
        remote,
        api_key=key,
        timeout=timeout,
        concurrency=conc,
        prices=cat.large_price,
        health=health,
        max_waiting=opts.limits.max_queue,
    )
    cat.upstreams.append(up)
    cat.add(up)
    cat.lines.append(f"{name}: upstream {remote} at {base_url}")
    return name, engine, health


def _discover(base_url: str, key: str | None) -> str:
    import httpx

    try:
        r = httpx.get(
            base_url.rstrip("/") + "/models",
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=5,
        )
        return r.json()["data"][0]["id"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        raise LadderError(
            f"cannot ask {base_url} which model it serves.", fix="name it with --large-model."
        ) from None


def from_model(cat: Catalog, opts: ServeOptions) -> None:
    from ladder.engines.resolve import make_engine, resolve_model

    name = opts.model or "gemma-3-270m"
    if opts.engine == "vllm":
        log = Path(tempfile.mkdtemp(prefix="ladder-vllm-")) / "vllm.log"
        add_vllm(cat, opts, name, wanted_adapters(opts, None, None, None), log=log)
        if opts.large:
            _, engine, _ = add_large(cat, opts)
            cat.engines.append(engine)
        return
    base = opts.engines.get(name) or make_engine(resolve_model(name))
    cat.engines.append(base)
    price_local(cat, opts, None, base)
    add_adapters(cat, base, name, wanted_adapters(opts, None, None, None))
    if opts.large:
        _, engine, _ = add_large(cat, opts)
        cat.engines.append(engine)


# ---------------------------------------------------------------- prices for the cost log


def price_book(opts: ServeOptions, task=None):
    from ladder.prices import load_price_book

    return load_price_book(
        task.spec.prices if task else None, task.dir if task else None, opts.price_files
    )


def price_local(cat: Catalog, opts: ServeOptions, task, engine) -> None:
    """$/hour of local compute: --price-hour, else this machine in the price book."""
    from ladder import provenance
    from ladder.economics import machine_rate
    from ladder.prices import PriceError

    if opts.price_hour is not None:
        cat.price_hour = opts.price_hour
        return
    info = engine.info()
    try:
        device = info.get("device") if info.get("device") != "none" else "cpu"
        rate = machine_rate(
            price_book(opts, task), provenance.hardware(), device, info.get("threads")
        )
    except PriceError as exc:
        cat.lines.append(f"cost of local answers logged as $0: {exc}")
        return
    cat.price_hour = rate["per_hour"]
    cat.lines.append(
        f"local answers cost ${rate['per_hour']:.4g}/hour ({rate['kind']}, price book)"
    )


def _book_price(
    cat: Catalog, opts: ServeOptions, task, name: str, remote: str
) -> tuple[float, float]:
    found = price_book(opts, task).model(name, remote)
    if found is None:
        cat.lines.append(
            f"cost of {name} logged as $0: no price for {remote!r} in the price book (--large-price IN,OUT sets one)"
        )
        return (0.0, 0.0)
    return (found[1].input, found[1].output)
