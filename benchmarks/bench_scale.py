"""Ray's cost against in-process embedding, and 1 against 2 embedding actors, on this machine.

    .venv/bin/python benchmarks/bench_scale.py                 # 24 pydoc topics, 3 rounds
    .venv/bin/python benchmarks/bench_scale.py --docs 79 --rounds 2

The job is the same in every path: chunk (fixed 64 tokens), late-chunk with all-MiniLM-L6-v2
(float32), and write the vectors into a fresh Milvus Lite collection.

* ``in-process`` (baseline): ``lc.store.ingest_batches(client, name, lc.iter_embed_corpus(...))``,
  the single-process way, with the model already loaded.
* ``ray, 1 actor`` / ``ray, 2 actors``: ``lc.scale.embed_to_milvus`` on a local Ray with 2 CPUs
  (started once, before the rounds), writing through the driver as Milvus Lite requires. Each
  run starts its actors, and each actor loads the model: that start-up is part of a Ray job, so
  the wall-time ratio includes it. The "steady" columns leave it out: document tokens written
  after the first output batch, over the time from that batch to the last.

The goal of issue 13: at one actor, Ray's throughput >= 0.85x in-process. Paths run interleaved,
with a canary forward before and after each round (``benchmarks/_common.py``). Results go to
``outputs/bench/scale.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import _common  # benchmarks/ is on sys.path when a script in it runs

import lc_utils as lc

CHUNKING = {"strategy": "fixed", "chunk_options": {"chunk_size": 64}}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=24, help="first N topics by id; 0 means all")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--documents-per-batch", type=int, default=4)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import ray

    model = lc.load_model(args.model, device="cpu")
    topics = lc.datasets.load_pydoc_topics()
    ids = sorted(topics)[: args.docs or None]
    documents = {doc_id: topics[doc_id] for doc_id in ids}
    print(f"{len(documents)} documents, {sum(map(len, documents.values())):,} characters")
    workdir = tempfile.mkdtemp(prefix="lcbench", dir="/tmp")
    uri = f"{workdir}/scale.db"
    lc.scale.start_ray(num_cpus=2, object_store_memory=300 * 2**20, temp_dir=workdir)
    client = lc.store.connect(uri)
    marks: dict[str, list] = {}

    def fresh(name):
        lc.store.create_collection(client, name, model.dim, overwrite=True)

    def in_process():
        fresh("in_process")
        parts = lc.iter_embed_corpus(model, documents, method="late", progress=False, **CHUNKING)
        return lc.store.ingest_batches(client, "in_process", parts, progress=False)

    def on_ray(actors):
        def run():
            name = f"ray_{actors}"
            fresh(name)
            seen = marks.setdefault(name, [])
            seen.clear()
            stats = lc.scale.embed_to_milvus(
                documents, model, uri=uri, collection=name, method="late", actors=actors,
                documents_per_batch=args.documents_per_batch, progress=False,
                on_progress=lambda s: seen.append((time.perf_counter(), s.tokens)), **CHUNKING,
            )  # fmt: skip
            steady = None
            if len(seen) > 1 and seen[-1][0] > seen[0][0]:
                steady = (seen[-1][1] - seen[0][1]) / (seen[-1][0] - seen[0][0])
            return {"stats": stats.as_dict(), "steady_tokens_per_second": steady}

        return run

    paths = {"in-process": in_process, "ray, 1 actor": on_ray(1), "ray, 2 actors": on_ray(2)}
    canary = _common.Canary(model)
    timing = _common.interleave(paths, rounds=args.rounds, canary=canary.measure)
    total = timing["last"]["ray, 1 actor"]["stats"]["tokens"]
    base = timing["seconds"]["in-process"]
    base_rate = total / sorted(base)[len(base) // 2]
    rows = []
    for name in paths:
        seconds = timing["seconds"][name]
        row = {
            "path": name,
            "median s": sorted(seconds)[len(seconds) // 2],
            "tokens/s": total / sorted(seconds)[len(seconds) // 2],
            "ratio": _common.median_ratio(base, seconds),
        }
        if name != "in-process":
            steady = timing["last"][name]["steady_tokens_per_second"]
            row["steady tokens/s (last round)"] = steady or float("nan")
            row["steady ratio"] = (steady or float("nan")) / base_rate
        rows.append(row)
    columns = ["path", "median s", "tokens/s", "ratio", "steady tokens/s (last round)"]
    columns.append("steady ratio")
    _common.print_table(rows, columns, "Late chunking into Milvus Lite, document tokens/s")
    print(_common.host_note(timing))
    print("The CPU is shared with other jobs: compare ratios, not tokens/s.")
    stored = {name: lc.store.count_chunks(client, n) for name, n in _collections().items()}
    assert len(set(stored.values())) == 1, f"the paths stored different chunk counts: {stored}"
    lc.store.close(client)
    ray.shutdown()
    path = _common.write_json(
        "scale",
        {
            "environment": _common.environment(),
            "documents": len(documents),
            "tokens": total,
            "rows": rows,
            "timing": {k: v for k, v in timing.items() if k != "last"},
            "last": timing["last"],
            "stored_chunks": stored,
        },
    )
    print(f"written to {path}")


def _collections() -> dict[str, str]:
    return {"in-process": "in_process", "ray, 1 actor": "ray_1", "ray, 2 actors": "ray_2"}


if __name__ == "__main__":
    main()
