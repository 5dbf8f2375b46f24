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
  the wall-time ratio includes it.
* ``ray, 1 actor, 1 document``: the same job on the first document alone, which is almost only
  that fixed start-up. The "without start-up" columns take it away: (tokens of the corpus minus
  tokens of that document) / (wall time of the corpus minus wall time of that document), per
  round, which is the throughput a long job approaches.

The goal of issue 13: at one actor, Ray's throughput >= 0.85x in-process. Paths run interleaved,
with a canary forward before and after each round (``benchmarks/_common.py``). Results go to
``outputs/bench/scale.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

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

    def fresh(name):
        lc.store.create_collection(client, name, model.dim, overwrite=True)

    def in_process():
        fresh("in_process")
        parts = lc.iter_embed_corpus(model, documents, method="late", progress=False, **CHUNKING)
        return lc.store.ingest_batches(client, "in_process", parts, progress=False)

    def on_ray(actors, corpus=documents):
        def run():
            name = f"ray_{actors}" if corpus is documents else "ray_one"
            fresh(name)
            stats = lc.scale.embed_to_milvus(
                corpus, model, uri=uri, collection=name, method="late", actors=actors,
                documents_per_batch=args.documents_per_batch, progress=False, **CHUNKING,
            )  # fmt: skip
            return stats.as_dict()

        return run

    first = dict([next(iter(documents.items()))])
    paths = {
        "in-process": in_process,
        "ray, 1 actor": on_ray(1),
        "ray, 2 actors": on_ray(2),
        "ray, 1 actor, 1 document": on_ray(1, first),
    }
    canary = _common.Canary(model)
    timing = _common.interleave(paths, rounds=args.rounds, canary=canary.measure)
    total = timing["last"]["ray, 1 actor"]["tokens"]
    one = timing["last"]["ray, 1 actor, 1 document"]["tokens"]
    seconds = timing["seconds"]
    base = seconds["in-process"]
    start_up = seconds["ray, 1 actor, 1 document"]
    rows = []
    for name in ("in-process", "ray, 1 actor", "ray, 2 actors"):
        median = statistics.median(seconds[name])
        row = {
            "path": name,
            "median s": median,
            "tokens/s": total / median,
            "ratio": _common.median_ratio(base, seconds[name]),
        }
        if name != "in-process":
            # Per round: the corpus without the fixed start-up, against in-process.
            net = [
                ((total - one) / max(t - s0, 1e-9)) / (total / b)
                for t, s0, b in zip(seconds[name], start_up, base, strict=True)
            ]
            row["start-up s"] = statistics.median(start_up)
            row["ratio without start-up"] = statistics.median(net)
        rows.append(row)
    columns = ["path", "median s", "tokens/s", "ratio", "start-up s", "ratio without start-up"]
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
