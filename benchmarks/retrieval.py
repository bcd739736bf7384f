"""Index build rate and query latency: the embedded sqlite-vec index vs brute-force numpy.

Both sides hold the very same vectors and answer the same queries (top 10 by cosine). The index
side goes through Ladder's store API (`SqliteVecStore.apply` / `.search`: documents, chunks and
vectors written in one transaction, as ingestion does); the baseline is a float32 matrix in
memory, `X @ q` and `argpartition`. recall@10 is the index's top 10 against the exact top 10.
With `--pg`, PostgreSQL + pgvector (HNSW, started from the `pgserver` package) runs too; with
`--lancedb`, LanceDB (the other embedded candidate: flat scan, then an IVF-PQ index), which is
how the embedded index was chosen.

Embeddings: real all-MiniLM-L6-v2 vectors of the 13,102 banking77 sentences
(../shared/datasets, about a minute to embed on 2 cores), expanded to the requested size by
mixing two random real vectors (weights 0.5-1.0 and 0-0.5) plus a little Gaussian noise, then
renormalising. That keeps the anisotropy and cluster structure of real sentence embeddings
(what approximate indexes are sensitive to) without embedding 100k texts this machine does not
have. Queries are 200 further banking77 sentences, embedded the same way but never added.

    python benchmarks/retrieval.py --sizes 10000,100000 --pg --lancedb   # the full run
    python benchmarks/retrieval.py --sizes 2000 --queries 50        # a quick check

Writes benchmarks/results/retrieval.json with machine info.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "banking77"


def real_embeddings(data: Path, n_queries: int, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    from ladder.retrieval.embed import Embedder

    texts = []
    for name in ("train.csv", "test.csv"):
        with (data / name).open(newline="") as f:
            texts += [row["text"] for row in csv.DictReader(f)]
    rng = np.random.default_rng(0)
    rng.shuffle(texts)
    texts = texts[: limit + n_queries] if limit else texts
    t0 = time.perf_counter()
    vecs = Embedder().embed(texts)
    print(f"embedded {len(texts)} sentences in {time.perf_counter() - t0:.0f} s")
    return vecs[n_queries:], vecs[:n_queries]


def expand(base: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """n vectors: the real ones first, then mixes of two real ones plus noise, unit length."""
    if n <= len(base):
        return base[:n].copy()
    rng = np.random.default_rng(seed)
    extra = n - len(base)
    i, j = rng.integers(0, len(base), extra), rng.integers(0, len(base), extra)
    a, b = rng.uniform(0.5, 1.0, (extra, 1)), rng.uniform(0.0, 0.5, (extra, 1))
    mixed = a * base[i] + b * base[j] + rng.normal(0, 0.02, (extra, base.shape[1]))
    out = np.concatenate([base, mixed.astype(np.float32)])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def upserts(vectors: np.ndarray, per_doc: int = 100):
    """The vectors as chunks of synthetic documents, as ingestion would hand them to a store."""
    from ladder.retrieval.chunk import Chunk
    from ladder.retrieval.index import DocRecord, Upsert

    out = []
    for d, start in enumerate(range(0, len(vectors), per_doc)):
        block = vectors[start : start + per_doc]
        doc = f"doc{d:05d}.md"
        chunks = [
            Chunk(f"{doc}#{k}", doc, k, "", f"chunk {start + k}", 0, 0) for k in range(len(block))
        ]
        out.append(Upsert(DocRecord(doc, "0" * 64, "markdown", doc, 0, len(block)), chunks, block))
    return out


def measure(search, queries: np.ndarray, exact: list[set[str]]) -> dict:
    times, recalls = [], []
    for q, truth in zip(queries, exact):
        t0 = time.perf_counter()
        got = search(q)
        times.append(time.perf_counter() - t0)
        recalls.append(len(set(got) & truth) / len(truth))
    ms = np.array(times) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "recall_at_10": round(float(np.mean(recalls)), 4),
    }


def run_size(
    n: int, base: np.ndarray, queries: np.ndarray, pg_url: str | None, lance: bool
) -> dict:
    from ladder.retrieval.index import SqliteVecStore

    vectors = expand(base, n)
    ids = np.array([f"doc{i // 100:05d}.md#{i % 100}" for i in range(n)])
    t0 = time.perf_counter()
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    numpy_build = time.perf_counter() - t0

    def brute(q):
        scores = matrix @ q
        top = np.argpartition(-scores, 10)[:10]
        return list(ids[top[np.argsort(-scores[top])]])

    exact = [set(brute(q)) for q in queries]
    result = {
        "chunks": n,
        "numpy": {"build_s": round(numpy_build, 4), **measure(brute, queries, exact)},
    }
    meta = {
        "embedder": "all-MiniLM-L6-v2",
        "dim": str(vectors.shape[1]),
        "chunking": "{}",
        "schema": "1",
    }
    stores = [("sqlite_vec", SqliteVecStore(Path(tempfile.mkdtemp()) / "index.sqlite"))]
    if pg_url:
        from ladder.retrieval.pgstore import PgVectorStore

        stores.append(("pgvector_hnsw", PgVectorStore(pg_url, f"bench-{n}")))
    for name, store in stores:
        batch = upserts(vectors)
        t0 = time.perf_counter()
        store.apply(batch, [], meta, reset=True)
        build = time.perf_counter() - t0
        stats = measure(lambda q, s=store: [c for c, _ in s.search(q, 10)], queries, exact)
        result[name] = {"build_s": round(build, 2), "chunks_per_s": round(n / build), **stats}
        store.close()
        print(f"{n:>7} chunks  {name:<14} build {build:7.1f} s  {result[name]}")
    print(f"{n:>7} chunks  numpy          {result['numpy']}")
    if lance:
        result["lancedb"] = run_lancedb(vectors, ids, queries, exact)
        print(f"{n:>7} chunks  lancedb        {result['lancedb']}")
    return result


def run_lancedb(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, exact) -> dict:
    """LanceDB on the same vectors: a flat scan, then an IVF-PQ index (refined) if n allows."""
    import lancedb

    db = lancedb.connect(tempfile.mkdtemp())
    rows = [{"id": str(i), "vector": v} for i, v in zip(ids, vectors)]
    t0 = time.perf_counter()
    table = db.create_table("chunks", data=rows)
    out: dict = {"build_s": round(time.perf_counter() - t0, 2)}
    out["chunks_per_s"] = round(len(ids) / out["build_s"])

    def search(q, **kw):
        query = table.search(q).metric("cosine").limit(10)
        for name, value in kw.items():
            query = getattr(query, name)(value)
        return query.to_arrow()["id"].to_pylist()

    out["flat"] = measure(search, queries, exact)
    if len(ids) >= 10_000:  # IVF-PQ needs enough rows to train its partitions
        t0 = time.perf_counter()
        table.create_index(metric="cosine", vector_column_name="vector")
        out["ivf_pq_index_s"] = round(time.perf_counter() - t0, 2)
        out["ivf_pq"] = measure(lambda q: search(q, nprobes=20, refine_factor=10), queries, exact)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--texts", type=int, default=None, help="real sentences to embed (default all)")
    ap.add_argument("--pg", action="store_true", help="also PostgreSQL + pgvector (pgserver)")
    ap.add_argument("--lancedb", action="store_true", help="also LanceDB (if installed)")
    ap.add_argument("--data", default=str(DATA), help="the banking77 folder of shared datasets")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()
    if args.lancedb:
        import importlib.util

        if importlib.util.find_spec("lancedb") is None:  # not a Ladder dependency
            print("lancedb is not installed: its row is skipped (pip install lancedb)")
            args.lancedb = False

    from ladder import provenance
    from ladder.fsutil import atomic_write_json

    base, queries = real_embeddings(Path(args.data), args.queries, args.texts)
    pg_url, server = None, None
    if args.pg:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(), cleanup_mode="stop")
        pg_url = server.get_uri()
    try:
        sizes = [
            run_size(int(s), base, queries, pg_url, args.lancedb) for s in args.sizes.split(",")
        ]
    finally:
        if server is not None:
            server.cleanup()
    result = {
        "benchmark": "retrieval",
        "embeddings": "all-MiniLM-L6-v2 of banking77 sentences, expanded by mixing (see docstring)",
        "queries": len(queries),
        "k": 10,
        "sizes": sizes,
        "machine": provenance.hardware(),
        "packages": provenance.versions(),
        "git": provenance.git_info(ROOT),
    }
    path = atomic_write_json(Path(args.out) / "retrieval.json", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
