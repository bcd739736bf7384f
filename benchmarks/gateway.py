"""The gateway under a bounded load, against the same work done without it, in one run.

Each part sends N requests from C concurrent clients (the official `openai` client, loopback,
in a separate client process so they do not share the server's interpreter):

- `http`: the gateway alone, on the fake engine (no model): its own latency and ceiling.
- `engine`: the email-triage task answered by the embedded model (zero-shot label scoring),
  through the gateway vs the same solution called directly in-process on the same inputs (waves
  of C requests answered in batches of the gateway's batch size, on one dedicated thread as the
  gateway's engine worker is): the overhead over its engine.
- `llama`: llama-cpp-python's own OpenAI-compatible server on the same GGUF, called directly
  vs through the gateway (proxying it as an upstream model): the overhead of the extra hop.

Direct and gateway alternate over `--rounds` slices of the requests (ABBA), so a change in
machine load affects both sides alike. The overhead is the difference in wall time for the
same requests; latency percentiles are per request as the clients saw them. For `engine`,
`engine_idle_pct` is the share of the gateway's wall time its engine sat idle while requests
were in flight: the gateway's own cost, apart from batch composition (emails vary in length,
so which ones share a batch changes the padding) and load noise.

    python benchmarks/gateway.py                        # 500 requests, 32 clients, all parts
    python benchmarks/gateway.py --requests 48 --concurrency 16 --rounds 2

Writes benchmarks/results/gateway-<N>x<C>.json with machine info. Any failed request is
counted in the results and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
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
        "mean_ms": round(float(ms.mean()), 2),
    }


def interleaved(direct, gateway, n: int, rounds: int) -> dict:
    """Alternate the two sides over `rounds` slices (ABBA...); compare the same requests."""
    raw: dict[str, list[Raw]] = {"direct": [], "gateway": []}
    bounds = np.linspace(0, n, rounds + 1).astype(int)
    for r, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        order = [("direct", direct), ("gateway", gateway)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            raw[name].append(fn(range(lo, hi)))
    d, g = summary(raw["direct"]), summary(raw["gateway"])
    over = {
        "wall_pct": round(100 * (g["wall_s"] / d["wall_s"] - 1), 2),
        "p50_ms_added": round(g["p50_ms"] - d["p50_ms"], 2),
    }
    return {"direct": d, "gateway": g, "overhead": over}


def start(catalog):
    from ladder.serve.app import create_app
    from ladder.serve.server import ServerThread

    return ServerThread(create_app(catalog, None, auth=False)).start()


def part_http(args) -> dict:
    from ladder.serve.catalog import Limits, ServeOptions, build_catalog

    limits = Limits(cache_entries=0, max_queue=4 * args.concurrency, max_batch=args.batch)
    cat = build_catalog(ServeOptions(model="fake", limits=limits))
    srv = start(cat)
    bodies = [
        {"model": "fake", "messages": [{"role": "user", "content": f"hello {i}"}], "max_tokens": 4}
        for i in range(args.requests)
    ]
    ask = clients(srv.url, "chat", bodies, args.concurrency)
    try:
        ask(range(min(args.concurrency, args.requests)))  # warm-up
        return {"gateway": summary([ask(range(args.requests))])}
    finally:
        srv.stop()
        cat.close()


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
    from ladder.dataset import Example
    from ladder.serve.catalog import Catalog, Limits
    from ladder.serve.router import confidences
    from ladder.serve.targets import TaskModel

    sol, inputs = email_solution(Path(tempfile.mkdtemp()))
    texts = [inputs[i % len(inputs)] for i in range(args.requests)]

    def direct_here(idx) -> Raw:
        """The same inputs, no HTTP: waves of `concurrency` requests, answered batch by batch."""
        idx, lat, t0 = list(idx), [], time.perf_counter()
        for w in range(0, len(idx), args.concurrency):
            wave, w0 = idx[w : w + args.concurrency], time.perf_counter()
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
            max_queue=4 * args.concurrency,
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
    send = clients(srv.url, "chat", bodies, args.concurrency)
    busy = []

    def ask(idx) -> Raw:
        b0, n0 = cat.worker.busy_s, cat.worker.batches
        raw = send(idx)
        busy.append((cat.worker.busy_s - b0, cat.worker.batches - n0))
        return raw

    try:
        direct(range(args.batch))  # warm-up: weights in cache, the shared prefix computed
        send(range(args.batch))
        out = interleaved(direct, ask, args.requests, args.rounds)
        # the gateway's own cost: time its engine sat idle while requests were in flight
        idle = out["gateway"]["wall_s"] - sum(b for b, _ in busy)
        out["gateway"]["engine_busy_s"] = round(sum(b for b, _ in busy), 3)
        out["gateway"]["engine_batches"] = sum(n for _, n in busy)
        out["overhead"]["engine_idle_pct"] = round(100 * idle / out["gateway"]["wall_s"], 2)
    finally:
        srv.stop()
        cat.worker.close()
        engine_thread.shutdown()
    return {**out, "batch": args.batch, "engine": sol.engine.info()}


def part_llama(args) -> dict:
    from ladder.serve.catalog import Limits, ServeOptions, build_catalog
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
        "--rounds", type=int, default=4, help="direct and gateway alternate this many times"
    )
    ap.add_argument("--parts", default="http,engine,llama")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()

    from ladder import provenance
    from ladder.fsutil import atomic_write_json

    CLIENTS = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    parts = {"http": part_http, "engine": part_engine, "llama": part_llama}
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
            results[name] = parts[name](args)
            print(f"  {results[name]}", file=sys.stderr)
    finally:
        CLIENTS.shutdown()
    out = Path(args.out) / f"gateway-{args.requests}x{args.concurrency}.json"
    atomic_write_json(out, results)
    print(f"wrote {out}", file=sys.stderr)
    errors = sum(
        v[k]["errors"]
        for v in results.values()
        if isinstance(v, dict)
        for k in ("gateway", "direct")
        if k in v
    )
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
