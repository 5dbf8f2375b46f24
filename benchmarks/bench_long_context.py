"""Long context measured: one 8192-token pass against windows and naive chunks, jina-v2-base-en.

    .venv/bin/python benchmarks/bench_long_context.py            # full size, ~5-10 min on 2 cores
    .venv/bin/python benchmarks/bench_long_context.py --quick    # 2 layers, 2048 tokens
    .venv/bin/python benchmarks/bench_long_context.py --device cuda --dtype float16
    .venv/bin/python benchmarks/bench_long_context.py --interleaved --layers 2 --rounds 3

The model is the full jina-embeddings-v2-base-en architecture (12 layers, hidden 768, 12 heads,
intermediate 3072, 8192 positions) run by ``lc_utils.jina_v2`` with random weights: the weights
do not change the cost, and the real ones cannot be downloaded here. The tokenizer is the packaged
MiniLM's (the same uncased WordPiece family). The document is Python's reference topics joined
and cut to exactly 8190 tokens (8192 positions with [CLS] and [SEP]); chunks are fixed 256-token
spans. Four paths make the same chunk vectors:

* ``late, one 8192 pass``: the whole document in one forward pass;
* ``late, 2048 windows``: windows of 2048 positions overlapping by 127 tokens (the default 1/16);
* ``late, 512 windows``: windows of 512 positions overlapping by 31 tokens;
* ``naive, 256-token chunks``: every chunk embedded alone (batched).

Each path runs in a fresh Python process (like ``bench_memory.py``), so its peak RSS is its own:
the peak is read from ``VmHWM`` after the kernel counter was reset once the model was built,
and is reported with the model's own RSS. Each process first times a canary (one 512-token
forward) before and after its path, to show whether the host changed speed in between.

FLOPs are counted analytically per path (multiply-adds count two): the dense layers cost
``2 * (4 D^2 + 3 D I)`` per token per layer, which grows with the tokens computed; attention
costs ``4 L^2 D`` per pass of length ``L`` per layer (``Q K^T`` and ``P V``), which grows with the
square of the pass length. Time per FLOP is each path's seconds divided by its FLOPs, as a ratio
to the most efficient path of the same run (goal: every path within 1.1x). Results go to
``outputs/bench/long_context.json``.

A path run once in a fresh process pays for its first large allocations and for whatever the
host is doing at that moment. ``--interleaved`` measures time per FLOP the way the other scripts
measure time: all paths in one process, round by round in rotating order, with a canary around
each round, the ratio to the round's most efficient path taken within each round and the median
over rounds reported (``--layers`` shortens the model; the ratios do not depend on the depth,
since every layer costs the same). Results go to ``outputs/bench/long_context_interleaved.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import _common  # benchmarks/ is on sys.path when a script in it runs

PATHS = {
    "late, one 8192 pass": {"method": "late", "window": None},
    "late, 2048 windows": {"method": "late", "window": 2048},
    "late, 512 windows": {"method": "late", "window": 512},
    "naive, 256-token chunks": {"method": "naive", "window": None},
}
CHUNK_TOKENS = 256
GOAL_SINGLE_PASS_BYTES = 4 * 1024**3
MIB = 1024**2


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 layers and a 2048-token document")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument(
        "--interleaved", action="store_true", help="time per FLOP, all paths in one process"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds for --interleaved")
    parser.add_argument("--layers", type=int, help="number of layers (default: the model's 12)")
    parser.add_argument("--worker", metavar="PATH", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def shape(quick: bool, layers: int | None = None) -> dict:
    """The architecture: jina-embeddings-v2-base-en, or 2 of its layers with --quick."""
    return {
        "layers": layers or (2 if quick else 12),
        "hidden": 768,
        "heads": 12,
        "intermediate": 3072,
        "positions": 8192,
        "document_tokens": 2046 if quick else 8190,
    }


def _status(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def build_model(arch: dict, device: str, dtype: str):
    """An ``EmbeddingModel`` over a randomly initialised ``JinaV2Model`` of shape ``arch``."""
    import torch

    import lc_utils as lc
    from lc_utils.models.jina_v2 import JinaV2Config, JinaV2Model

    config = JinaV2Config(
        vocab_size=30528,
        hidden_size=arch["hidden"],
        num_hidden_layers=arch["layers"],
        num_attention_heads=arch["heads"],
        intermediate_size=arch["intermediate"],
        max_position_embeddings=arch["positions"],
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        feed_forward_type="geglu",
    )
    torch.manual_seed(0)
    network = JinaV2Model(config).to(device=device, dtype=getattr(torch, dtype)).eval()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(lc.packaged_minilm_path())
    tokenizer.model_max_length = arch["positions"]
    return lc.EmbeddingModel(
        name="jina-v2-base-en architecture, random weights",
        tokenizer=tokenizer,
        model=network,
        max_length=arch["positions"],
        dim=arch["hidden"],
        source="local",
        device=torch.device(device),
    )


def build_document(tokenizer, n_tokens: int) -> str:
    """Python's reference topics joined, cut at a token boundary to exactly ``n_tokens`` tokens."""
    import lc_utils as lc

    text = "\n\n".join(lc.datasets.load_pydoc_topics().values())
    tokens = lc.tokenize_document(tokenizer, text)
    cut = n_tokens
    while True:
        document = text[: int(tokens.ends[cut - 1])]
        count = len(lc.tokenize_document(tokenizer, document))
        if count == n_tokens:
            return document
        cut += n_tokens - count


def flops(arch: dict, pass_lengths: list[int]) -> dict:
    """Analytic FLOPs of forward passes of the given lengths (special tokens included)."""
    d, i, layers = arch["hidden"], arch["intermediate"], arch["layers"]
    dense = sum(pass_lengths) * layers * 2 * (4 * d * d + 3 * d * i)
    attention = sum(length * length for length in pass_lengths) * layers * 4 * d
    return {"dense": dense, "attention": attention, "total": dense + attention}


def pass_lengths(model, text: str, chunks, path: dict) -> list[int]:
    """The length of every forward pass a path makes, special tokens included."""
    import lc_utils as lc

    if path["method"] == "naive":
        ids = model.tokenizer([c.text for c in chunks], add_special_tokens=True, verbose=False)[
            "input_ids"
        ]
        return [len(x) for x in ids]
    tokens = lc.tokenize_document(model.tokenizer, text)
    shape = model.window(path["window"])
    window, content = shape.positions, shape.content_tokens
    plan = lc.plan_windows(len(tokens), content)
    return [b - a + (window - content) for a, b in plan.windows]


def interleaved(args) -> int:
    """All paths in one process, round by round; time per FLOP relative within each round."""
    import statistics

    import lc_utils as lc

    arch = shape(args.quick, args.layers)
    print(f"architecture: {arch}, {args.dtype} on {args.device}, {args.rounds} rounds")
    model = build_model(arch, args.device, args.dtype)
    text = build_document(model.tokenizer, arch["document_tokens"])
    chunks = lc.chunk_text(text, "fixed", tokenizer=model.tokenizer, chunk_size=CHUNK_TOKENS)

    def run(path):
        if path["method"] == "late":
            return lambda: lc.late_chunking(
                model, text, chunks, window=path["window"], progress=False
            )
        return lambda: lc.naive_chunking(model, chunks, progress=False)

    work = {
        name: flops(arch, pass_lengths(model, text, chunks, PATHS[name])) for name in args.paths
    }
    canary = _common.Canary(model, length=512, repeats=3)
    timing = _common.interleave(
        {name: run(PATHS[name]) for name in args.paths},
        rounds=args.rounds,
        canary=canary.measure,
        device=args.device,
    )
    seconds = timing["seconds"]
    per_flop = {n: [t / work[n]["total"] for t in seconds[n]] for n in args.paths}
    best = [min(per_flop[n][r] for n in args.paths) for r in range(args.rounds)]
    rows = []
    for name in args.paths:
        ratios = [per_flop[name][r] / best[r] for r in range(args.rounds)]
        rows.append(
            {
                "path": name,
                "GFLOP": work[name]["total"] / 1e9,
                "attention share": work[name]["attention"] / work[name]["total"],
                "median seconds": statistics.median(seconds[name]),
                "time/FLOP vs best (median of rounds)": statistics.median(ratios),
                "per round": " ".join(f"{x:.2f}" for x in ratios),
            }
        )
    _common.print_table(rows, list(rows[0]), title="time per FLOP, interleaved in one process")
    print(_common.host_note(timing))
    timing.pop("last")
    path = _common.write_json(
        "long_context_interleaved",
        {
            "environment": _common.environment(args.device),
            "architecture": arch,
            "rows": rows,
            "timing": timing,
        },
    )
    print(f"wrote {path}")
    return 0


def worker(name: str, quick: bool, device: str, dtype: str, layers: int | None = None) -> dict:
    import numpy as np

    import lc_utils as lc

    arch = shape(quick, layers)
    path = PATHS[name]
    model = build_model(arch, device, dtype)
    text = build_document(model.tokenizer, arch["document_tokens"])
    chunks = lc.chunk_text(text, "fixed", tokenizer=model.tokenizer, chunk_size=CHUNK_TOKENS)
    lengths = pass_lengths(model, text, chunks, path)
    canary = _common.Canary(model, length=512, repeats=3)
    canary_before = canary.measure()
    gc.collect()
    model_rss = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak from here on is the path's own
    on_gpu = device.startswith("cuda")
    if on_gpu:
        import torch

        torch.cuda.reset_peak_memory_stats()
        gpu_base = torch.cuda.memory_allocated()
    _common.synchronize(device)
    started = time.perf_counter()
    if path["method"] == "late":
        vectors = lc.late_chunking(model, text, chunks, window=path["window"], progress=False)
    else:
        vectors = lc.naive_chunking(model, chunks, progress=False)
    _common.synchronize(device)
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    gpu_peak = torch.cuda.max_memory_allocated() - gpu_base if on_gpu else None
    canary_after = canary.measure()
    assert vectors.shape == (len(chunks), arch["hidden"]) and np.isfinite(vectors).all()
    return {
        "path": name,
        "seconds": seconds,
        "document_tokens": arch["document_tokens"],
        "chunks": len(chunks),
        "passes": len(lengths),
        "tokens_computed": sum(lengths),
        "longest_pass": max(lengths),
        "flops": flops(arch, lengths),
        "model_rss": model_rss,
        "peak_rss": peak,
        "gpu_peak_above_model": gpu_peak,
        "canary_before": canary_before,
        "canary_after": canary_after,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.quick, args.device, args.dtype, args.layers)
        print("RESULT " + json.dumps(result))
        return 0
    if args.interleaved:
        return interleaved(args)
    arch = shape(args.quick, args.layers)
    print(f"architecture: {arch}, {args.dtype} on {args.device}")
    results = []
    for name in args.paths:
        command = [sys.executable, __file__, "--worker", name, "--device", args.device]
        command += ["--dtype", args.dtype] + (["--quick"] if args.quick else [])
        command += ["--layers", str(args.layers)] if args.layers else []
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"worker for {name!r} failed with exit code {done.returncode}")
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
        r = results[-1]
        print(
            f"  {name:<26} {r['seconds']:8.2f} s  peak {r['peak_rss'] / MIB:,.0f} MiB  "
            f"canary {r['canary_before']:.3f} -> {r['canary_after']:.3f} s  "
            f"(process {time.perf_counter() - started:.0f} s)"
        )
    best = min(r["seconds"] / r["flops"]["total"] for r in results)
    # The same, with each path's time in units of its own process's canary (the mean of the
    # canary before and after): a host that changes speed between processes cancels out.
    for r in results:
        r["canary"] = (r["canary_before"] + r["canary_after"]) / 2
    best_canary = min(r["seconds"] / r["canary"] / r["flops"]["total"] for r in results)
    rows = []
    for r in results:
        f = r["flops"]
        rows.append(
            {
                "path": r["path"],
                "passes": r["passes"],
                "tokens computed": r["tokens_computed"],
                "seconds": r["seconds"],
                "doc tokens/s": r["document_tokens"] / r["seconds"],
                "GFLOP dense": f["dense"] / 1e9,
                "GFLOP attention": f["attention"] / 1e9,
                "attention share": f["attention"] / f["total"],
                "GFLOP/s": f["total"] / r["seconds"] / 1e9,
                "time/FLOP vs best": r["seconds"] / f["total"] / best,
                "same, canary-scaled": r["seconds"] / r["canary"] / f["total"] / best_canary,
                "peak RSS MiB": r["peak_rss"] / MIB,
                "model RSS MiB": r["model_rss"] / MIB,
            }
            | (
                {"GPU peak above model MiB": r["gpu_peak_above_model"] / MIB}
                if r["gpu_peak_above_model"] is not None
                else {}
            )
        )
    _common.print_table(rows, list(rows[0]), title="long context (each path in its own process)")
    single = [r for r in results if r["path"] == "late, one 8192 pass"]
    if single and not args.quick and args.device == "cpu":
        held = single[0]["peak_rss"] < GOAL_SINGLE_PASS_BYTES
        print(f"single 8192 pass peak RSS < 4 GB: {'met' if held else 'NOT met'}")
    worst = max(row["time/FLOP vs best"] for row in rows)
    scaled = max(row["same, canary-scaled"] for row in rows)
    print(
        f"worst time per FLOP vs the most efficient path: {worst:.2f}x, canary-scaled "
        f"{scaled:.2f}x (goal <= 1.1x)"
    )
    canaries = [r[k] for r in results for k in ("canary_before", "canary_after")]
    print(f"canary (512-token forward) {min(canaries):.3f}-{max(canaries):.3f} s across the run")
    path = _common.write_json(
        "long_context" + ("_quick" if args.quick else ""),
        {
            "environment": _common.environment(args.device),
            "architecture": arch,
            "rows": rows,
            "results": results,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
