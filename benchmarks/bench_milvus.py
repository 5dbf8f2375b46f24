"""Ingestion rate and search latency of the store on Milvus Lite and, if given, a Milvus server.

    .venv/bin/python benchmarks/bench_milvus.py [--chunks 100000] [--dim 384] [--index HNSW]
    bash scripts/test_server.sh --bench          # the same, with a real server on loopback

Both backends get the same chunks (random unit vectors with realistic metadata and ~300
characters of text each) through the same calls (``ingest``, ``search``). Work is interleaved,
block by block and query by query, so that a slow spell of the host hits both alike; figures are
also given as ratios against Milvus Lite measured in the same run. A fixed numpy canary is timed
before and after to show whether the host changed speed during the run. Results go to
``outputs/bench/milvus.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lc_utils import store

WORDS = (
    "milvus vector index chunk late pooling token embedding document query search recall "
    "cosine segment release note model window overlap span sentence paragraph context retrieval "
    "the a of to and in is that for with as on by this be are from at or it an which"
).split()


def make_corpus(n: int, dim: int, seed: int):
    """``n`` chunk records (50 per document, ~300 characters each) and unit float32 vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    words = np.array(WORDS)[rng.integers(0, len(WORDS), size=(n, 48))]
    records, offset = [], 0
    for i in range(n):
        text = " ".join(words[i]).capitalize() + "."
        if i % 50 == 0:
            offset = 0
        records.append(
            {
                "doc_id": f"corpus/doc-{i // 50:06d}.txt",
                "chunk_index": i % 50,
                "start": offset,
                "end": offset + len(text),
                "text": text,
            }
        )
        offset += len(text) + 1
    return records, vectors


def canary_seconds() -> float:
    """Median time of a fixed matrix product: the host's speed, independent of Milvus."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1000, 384)).astype(np.float32), rng.normal(size=(384, 20000))
    b = b.astype(np.float32)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def wait_until_indexed(client, name: str, n: int, timeout: float = 600) -> float:
    """Flush, then wait until the index covers every row; returns the seconds it took."""
    started = time.perf_counter()
    client.flush(name)
    while time.perf_counter() - started < timeout:
        info = client.describe_index(name, "vector")
        if int(info.get("indexed_rows", n)) >= n and not int(info.get("pending_index_rows", 0)):
            break
        time.sleep(0.5)
    return time.perf_counter() - started


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.array(seconds) * 1000, q))


def alternate(backends: dict, step: int) -> list:
    """Backends in turn, the first one changing every step, so neither always goes first."""
    items = list(backends.items())
    return items if step % 2 == 0 else items[::-1]


def run_index(index: str, backends: dict, records, vectors, args) -> dict:
    name = f"bench_{index.lower()}"
    n = len(records)
    for client in backends.values():
        store.create_collection(client, name, args.dim, index=index, overwrite=True)

    ingest_seconds = dict.fromkeys(backends, 0.0)
    for step, first in enumerate(range(0, n, args.block)):
        block = slice(first, first + args.block)
        for label, client in alternate(backends, step):
            started = time.perf_counter()
            store.ingest(
                client,
                name,
                records[block],
                vectors[block],
                method="late",
                model="bench",
                chunking="bench",
                batch_size=args.batch_size,
                progress=False,
            )
            ingest_seconds[label] += time.perf_counter() - started
    print(f"  {index}: ingested {n:,} chunks into {', '.join(backends)}", flush=True)
    prepare_seconds = {
        label: wait_until_indexed(client, name, n) for label, client in backends.items()
    }
    counts = {label: store.count_chunks(client, name) for label, client in backends.items()}

    rng = np.random.default_rng(args.seed + 1)
    queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    queries[: args.queries // 2] = vectors[rng.integers(0, n, size=args.queries // 2)]
    params = {"ef": max(args.ef, args.k)} if index == "HNSW" else {}
    search_params = {"metric_type": "COSINE", "params": params}
    for client in backends.values():  # warm caches and connections
        for query in queries[:10]:
            store.search(client, name, query, k=args.k, search_params=params)
    layer = {label: [] for label in backends}
    raw = {label: [] for label in backends}
    for step, query in enumerate(queries):
        for label, client in alternate(backends, step):
            started = time.perf_counter()
            store.search(client, name, query, k=args.k, search_params=params)
            layer[label].append(time.perf_counter() - started)
            started = time.perf_counter()
            client.search(
                name,
                [query],
                limit=args.k,
                search_params=search_params,
                output_fields=list(store.OUTPUT_FIELDS),
            )
            raw[label].append(time.perf_counter() - started)
    batch_seconds = {}
    for label, client in backends.items():
        started = time.perf_counter()
        store.search(client, name, queries, k=args.k, search_params=params)
        batch_seconds[label] = time.perf_counter() - started

    ids = store.chunk_ids(records, method="late", model="bench", chunking="bench")
    results = {}
    for label, client in backends.items():
        check = store.validate_against_brute_force(
            client,
            name,
            queries[: args.validate_queries],
            vectors,
            ids,
            k=args.k,
            search_params=params,
        )
        results[label] = {
            "rows": counts[label],
            "ingest_seconds": ingest_seconds[label],
            "ingest_chunks_per_s": n / ingest_seconds[label],
            "flush_and_index_seconds": prepare_seconds[label],
            "search_params": params,
            "search_median_ms": percentile_ms(layer[label], 50),
            "search_p95_ms": percentile_ms(layer[label], 95),
            "raw_search_median_ms": percentile_ms(raw[label], 50),
            "raw_search_p95_ms": percentile_ms(raw[label], 95),
            "batch_queries_per_s": len(queries) / batch_seconds[label],
            "agreement_at_k": check["agreement_at_k"],
            "max_abs_score_diff": check["max_abs_score_diff"],
        }
        client.drop_collection(name)
    return results


def print_table(index: str, results: dict) -> None:
    base = results["lite"]
    columns = [
        ("ingest chunks/s", "ingest_chunks_per_s"),
        ("search median ms", "search_median_ms"),
        ("search p95 ms", "search_p95_ms"),
        ("raw median ms", "raw_search_median_ms"),
        ("raw p95 ms", "raw_search_p95_ms"),
        ("batch queries/s", "batch_queries_per_s"),
        ("agreement@k", "agreement_at_k"),
    ]
    print(f"\n{index} index, {base['rows']:,} chunks")
    print(f"{'backend':<8}" + "".join(f"{title:>20}" for title, _ in columns))
    for label, figures in results.items():
        cells = []
        for _, key in columns:
            value = figures[key]
            ratio = (
                "" if label == "lite" or key == "agreement_at_k" else f" ({value / base[key]:.2f}x)"
            )
            cells.append(f"{value:,.1f}{ratio}" if key != "agreement_at_k" else f"{value:.3f}")
        print(f"{label:<8}" + "".join(f"{cell:>20}" for cell in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument(
        "--index",
        action="append",
        choices=store.INDEX_TYPES,
        default=None,
        help="repeatable; default FLAT",
    )
    parser.add_argument("--queries", type=int, default=200, help="single-query searches timed")
    parser.add_argument("--validate-queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ef", type=int, default=64, help="HNSW search breadth (default 64)")
    parser.add_argument("--block", type=int, default=10_000, help="rows per interleaved block")
    parser.add_argument("--batch-size", type=int, default=1000, help="rows per upsert call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--server-uri", default=os.environ.get("LC_MILVUS_SERVER_URI", ""))
    parser.add_argument("--output", type=Path, default=Path("outputs/bench/milvus.json"))
    args = parser.parse_args(argv)
    indexes = args.index or ["FLAT"]

    print(f"building {args.chunks:,} chunks of dim {args.dim} ...", flush=True)
    records, vectors = make_corpus(args.chunks, args.dim, args.seed)
    canary_before = canary_seconds()
    workdir = tempfile.TemporaryDirectory(prefix="bench-milvus-")
    backends = {"lite": store.connect(Path(workdir.name) / "bench.db")}
    if args.server_uri:
        backends["server"] = store.connect(args.server_uri)
        server_version = backends["server"].get_server_version()
    else:
        server_version = None
        print(
            "no server: set LC_MILVUS_SERVER_URI or --server-uri (or run "
            "`bash scripts/test_server.sh --bench`) to compare one"
        )

    results = {index: run_index(index, backends, records, vectors, args) for index in indexes}
    canary_after = canary_seconds()
    for index in indexes:
        print_table(index, results[index])
    drift = canary_after / canary_before
    warning = "" if 0.67 < drift < 1.5 else "  <- the host changed speed; rerun"
    print(
        f"\nhost canary: {canary_before * 1000:.1f} ms before, "
        f"{canary_after * 1000:.1f} ms after ({drift:.2f}x){warning}"
    )

    import pymilvus

    report = {
        "chunks": args.chunks,
        "dim": args.dim,
        "k": args.k,
        "queries": args.queries,
        "block": args.block,
        "batch_size": args.batch_size,
        "hnsw_ef": args.ef,
        "server_uri": args.server_uri or None,
        "server_version": server_version,
        "pymilvus": pymilvus.__version__,
        "python": sys.version.split()[0],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "canary_ms": {"before": canary_before * 1000, "after": canary_after * 1000},
        "results": results,
        "notes": "search_* go through lc_utils.store.search (schema check included); raw_* call "
        "MilvusClient.search directly. Ratios in the printed table are against Milvus Lite.",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")
    for client in backends.values():
        store.close(client)
    workdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
