"""`ladder serve`: a run's winner (and its rungs, adapters, a large model) behind an OpenAI-compatible API."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from ladder.cli.render import RichProgress, console
from ladder.errors import LadderError, require

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"use {flag} NAME=PATH (got {v!r})", param_hint=flag)
        out[name] = path
    return out


def _prices(value: str | None) -> tuple[float, float] | None:
    if not value:
        return None
    try:
        a, b = (float(x) for x in value.split(","))
    except ValueError:
        raise typer.BadParameter(
            "use IN,OUT in $ per 1M tokens, e.g. 0.15,0.60", param_hint="--large-price"
        ) from None
    return (a, b)


def serve_cmd(
    run: Annotated[
        str | None,
        typer.Argument(help="run id, or its folder (runs/TASK/RUN_ID); leave out to serve --model"),
    ] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    model: Annotated[
        str | None, typer.Option("--model", help="base model to serve when no run is given")
    ] = None,
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter",
            help="NAME=FOLDER of a PEFT LoRA adapter to serve on the base model; repeatable",
        ),
    ] = None,
    large: Annotated[
        str | None,
        typer.Option(
            "--large",
            help="[NAME=]URL of an OpenAI-compatible endpoint, or a model name (task.yaml models:, openai:X): the large model of the hybrid route",
        ),
    ] = None,
    large_model: Annotated[
        str | None,
        typer.Option(
            "--large-model",
            help="the model name the large endpoint expects (default: the first it lists)",
        ),
    ] = None,
    large_price: Annotated[
        str | None,
        typer.Option(
            "--large-price",
            help="IN,OUT $ per 1M tokens of the large model for the cost log (default: the price book's)",
        ),
    ] = None,
    small: Annotated[
        str | None,
        typer.Option(
            "--small", help="the rung the route answers with (default: the best local rung)"
        ),
    ] = None,
    target_quality: Annotated[
        float | None,
        typer.Option(
            "--target-quality",
            min=0,
            max=1,
            help="calibrate the route to this hold-out quality with the fewest large calls (default: the task's bar)",
        ),
    ] = None,
    target_share: Annotated[
        float | None,
        typer.Option(
            "--target-share",
            min=0,
            max=1,
            help="calibrate the route to at most this share of large calls",
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="route to the large model below this confidence, as given (no calibration target)",
        ),
    ] = None,
    price_hour: Annotated[
        float | None,
        typer.Option(
            "--price-hour",
            min=0,
            help="$ per hour of this machine for the cost log (default: the price book's)",
        ),
    ] = None,
    prices: Annotated[
        list[Path] | None,
        typer.Option("--prices", help="price file over the task's (ladder.prices); repeatable"),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="postgresql:// URL for the request log and keys (default: the run store, SQLite)",
        ),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="accept requests without an API key (loopback only)")
    ] = False,
    public_metrics: Annotated[
        bool,
        typer.Option(
            "--public-metrics", help="serve /metrics without an API key (for a keyless scraper)"
        ),
    ] = False,
    max_body: Annotated[int, typer.Option("--max-body-bytes", min=1024)] = 1_000_000,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="most tokens a request may generate")
    ] = 1024,
    max_prompt: Annotated[int, typer.Option("--max-prompt-tokens", min=16)] = 8192,
    max_queue: Annotated[
        int,
        typer.Option("--max-queue", min=1, help="requests waiting for the local model before 503s"),
    ] = 256,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1)] = 8,
    cache: Annotated[
        int,
        typer.Option("--cache", min=0, help="temperature-0 answers kept in memory (0: no cache)"),
    ] = 1024,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="seconds a request may wait for a local model")
    ] = 120.0,
    upstream_timeout: Annotated[
        float, typer.Option("--upstream-timeout", min=1, help="seconds to wait for the large model")
    ] = 30.0,
    runs: Annotated[
        str | None, typer.Option("--runs", help="run store folder (default ./runs or $LADDER_RUNS)")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="hf: the base model and adapters in this process; vllm: on a vLLM server (started here, or --vllm-url)",
        ),
    ] = "hf",
    vllm_url: Annotated[
        str | None,
        typer.Option(
            "--vllm-url",
            help="a running vLLM server (http://HOST:PORT/v1); leave out to start one from `make vllm-venv`'s environment",
        ),
    ] = None,
    vllm_python: Annotated[
        str | None,
        typer.Option(
            "--vllm-python",
            help="the Python with vllm installed (default $LADDER_VLLM_PYTHON, else `make vllm-venv`'s)",
        ),
    ] = None,
    vllm_port: Annotated[
        int | None,
        typer.Option(
            "--vllm-port",
            min=1,
            max=65535,
            help="port of the vLLM server Ladder starts (default: free)",
        ),
    ] = None,
    vllm_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--vllm-arg",
            help="one more flag for the vLLM server Ladder starts, e.g. --vllm-arg=--dtype=bfloat16; repeatable",
        ),
    ] = None,
) -> None:
    """Serve a run's winner behind an OpenAI-compatible API (chat, completions, streaming), with a request log."""
    require("fastapi", "serve", "The gateway")
    from ladder.serve.app import create_app
    from ladder.serve.build import build_catalog
    from ladder.serve.catalog import Limits, ServeOptions
    from ladder.serve.logs import open_db, safe_url
    from ladder.serve.runs import open_run
    from ladder.serve.server import run as run_server
    from ladder.serve.vllm import VLLMOptions

    if no_auth and host not in LOOPBACK:
        raise LadderError(
            f"--no-auth on {host} would let anyone on the network use the models.",
            fix="serve on 127.0.0.1, or create a key with `ladder keys create NAME`.",
        )
    if sum(x is not None for x in (target_quality, target_share, threshold)) > 1:
        raise LadderError("give one of --target-quality, --target-share or --threshold.")
    if engine not in ("hf", "vllm"):
        raise typer.BadParameter("use hf or vllm", param_hint="--engine")
    vllm_given = [
        f for f, v in (("--vllm-url", vllm_url), ("--vllm-python", vllm_python),
                       ("--vllm-port", vllm_port), ("--vllm-arg", vllm_arg)) if v
    ]  # fmt: skip
    if vllm_given and engine != "vllm":
        raise LadderError(f"{', '.join(vllm_given)} needs --engine vllm.")
    if vllm_url and (vllm_python or vllm_port or vllm_arg):
        raise LadderError(
            "--vllm-python, --vllm-port and --vllm-arg start a vLLM server; --vllm-url uses a running one.",
            fix="give one or the other.",
        )
    runs_dir = runs
    if run:  # an unknown run fails here, before anything loads
        store, _ = open_run(run, runs)
        runs_dir = str(store.runs_dir)
        store.close()
    log_db = open_db(db, runs_dir)
    if not no_auth and log_db.active_keys() == 0:
        raise LadderError(
            f"no API key exists in {safe_url(log_db.url)}.",
            fix="create one with `ladder keys create NAME` (same --runs/--db), or pass --no-auth to try it on loopback.",
        )
    limits = Limits(
        max_body_bytes=max_body,
        max_tokens=max_tokens,
        default_max_tokens=min(256, max_tokens),
        max_prompt_tokens=max_prompt,
        max_queue=max_queue,
        max_batch=max_batch,
        request_timeout_s=timeout,
        upstream_timeout_s=upstream_timeout,
        cache_entries=cache,
    )
    opts = ServeOptions(
        run=run,
        runs_dir=runs_dir,
        model=model,
        adapters=_pairs(adapter, "--adapter"),
        large=large,
        large_model=large_model,
        small=small,
        target_quality=target_quality,
        target_share=target_share,
        threshold=threshold,
        price_hour=price_hour,
        large_price=_prices(large_price),
        price_files=[str(p) for p in prices or []],
        limits=limits,
        engine=engine,
        vllm=VLLMOptions(url=vllm_url, python=vllm_python, port=vllm_port, args=vllm_arg or []),
    )
    with RichProgress() as progress:
        catalog = build_catalog(opts, progress)
    try:
        for line in catalog.lines:
            console.print(f"  {line}", highlight=False)
        console.print(f"[bold]Models[/]  {', '.join(catalog.targets)}")
        console.print(
            f"[bold]Log[/]     {safe_url(log_db.url)}{'' if not no_auth else '  ·  [yellow]no API key required[/]'}"
        )
        console.print(f"[bold]Serving[/] http://{host}:{port}/v1  (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutting down
            run_server(
                create_app(catalog, log_db, auth=not no_auth, public_metrics=public_metrics),
                host,
                port,
            )
        console.print("Stopped; the request log is flushed.")
    finally:
        catalog.close()
