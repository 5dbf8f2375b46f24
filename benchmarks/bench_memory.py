"""Peak memory (RSS) of late chunking one very long document, stage by stage.

    .venv/bin/python benchmarks/bench_memory.py                      # 100k and 1M tokens
    .venv/bin/python benchmarks/bench_memory.py --tokens 100000 --strategies fixed

Each case runs in a fresh Python process, so nothing from an earlier case stays in memory. The
document is Python's reference topics joined end to end and repeated until it holds the requested
number of MiniLM tokens. The network is replaced by a stub that returns zeros (``--real-network``
runs MiniLM itself, about 4 minutes per million tokens on 2 CPU cores): the stub holds no more
than the network's own output would, and the point is what the pipeline around it holds. The
worker measures, each in turn (the pipeline first, so that memory the others leave with the
allocator does not count against it):

1. ``embed_corpus(model, {doc: text}, strategy=...)``, the user's path: chunking, tokenizing,
   windows, batches, the forward passes and the pooling;
2. ``chunk_text`` alone (spaCy's sentencizer for "sentences", the tokenizer's offsets for
   "fixed"), then freed;
3. the bare Hugging Face tokenizer call with offsets on the whole text, then freed: what a
   pipeline that tokenizes a long document in one call holds at its peak.

Before each step the kernel's peak-RSS counter is reset (``/proc/self/clear_refs``), so each
step's peak is its own; the case's peak is the pipeline's. The goal is < 1 GiB at
1M tokens with all-MiniLM-L6-v2 loaded. Memory does not drift with the host's speed, so absolute
figures are reported, and the summary also gives each peak as a ratio to the same process's RSS
once the model was loaded (interpreter, torch, transformers and the model: the baseline no
document can avoid). Results go to ``outputs/bench/memory.json``.
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

GOAL_BYTES = 1024**3
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MIB = 1024**2


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=["sentences", "fixed"],
        choices=["sentences", "fixed", "paragraphs"],
    )
    parser.add_argument(
        "--real-network", action="store_true", help="run MiniLM instead of the zero stub"
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("TOKENS", "STRATEGY", "REAL"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (VmRSS: now; VmHWM: peak since the last reset)."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def _reset_peak() -> None:
    gc.collect()
    # Writing 5 resets VmHWM to the current RSS (Linux >= 4.0), so a stage's peak is its own.
    Path("/proc/self/clear_refs").write_text("5")


def worker(n_tokens: int, strategy: str, real_network: bool) -> dict:
    stages = []

    def stage(name: str, function):
        _reset_peak()
        before = _status("VmRSS")
        started = time.perf_counter()
        result = function()
        seconds = time.perf_counter() - started
        stages.append(
            {
                "stage": name,
                "seconds": seconds,
                "rss_before": before,
                "peak": _status("VmHWM"),
                "rss_after": _status("VmRSS"),
            }
        )
        return result

    import lc_utils as lc

    stages.append({"stage": "python, torch, lc_utils imported", "peak": _status("VmHWM")})
    model = stage("model loaded", lambda: lc.load_model(MODEL, verbose=False))
    if not real_network:
        model.model = _common.ZeroNetwork(model.dim)
    text = stage("document built", lambda: build_document(model, n_tokens))
    pipeline_from = len(stages)
    result = stage(
        "embed_corpus (chunks, tokens, windows, forward, pooling)",
        lambda: lc.embed_corpus(
            model, {"long": text}, strategy=strategy, progress=False, workers=0
        ),
    )
    n_chunks = stage(
        f"chunk_text({strategy!r}) alone (freed)",
        lambda: len(lc.chunk_text(text, strategy, tokenizer=model.tokenizer)),
    )

    def bare_tokenizer_call():
        encoding = model.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
            verbose=False, split_special_tokens=True,
        )  # fmt: skip
        return len(encoding["input_ids"])

    n_tokens = stage("one tokenizer call on the whole text (freed)", bare_tokenizer_call)
    return {
        "tokens": n_tokens,
        "characters": len(text),
        "chunks": n_chunks,
        "vectors": list(result.vectors.shape),
        "windows": len(lc.plan_windows(n_tokens, model.window().content_tokens).windows),
        "network": "MiniLM" if real_network else "stub (zeros)",
        "stages": stages,
        "peak": stages[pipeline_from]["peak"],
    }


def build_document(model, n_tokens: int) -> str:
    """Python's reference topics end to end, repeated until ``n_tokens`` MiniLM tokens."""
    import lc_utils as lc

    topics = list(lc.datasets.load_pydoc_topics().values())
    counts = [len(lc.tokenize_document(model.tokenizer, t)) for t in topics]
    parts, total = [], 0
    while total < n_tokens:
        for topic, count in zip(topics, counts, strict=True):
            parts.append(topic)
            total += count
            if total >= n_tokens:
                break
    return "\n\n".join(parts)


def run_case(n_tokens: int, strategy: str, real_network: bool) -> dict:
    command = [sys.executable, __file__, "--worker", str(n_tokens), strategy, str(real_network)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = completed.stderr.strip().splitlines()[-15:]
        return {"error": f"worker exited with {completed.returncode}", "stderr": tail}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def summary_row(name: str, result: dict) -> dict:
    """One case: its peak, and the peak against the same process once the model was loaded."""
    if "peak" not in result:
        return {"case": name, "peak MiB": "failed"}
    loaded = next(s["rss_after"] for s in result["stages"] if s["stage"] == "model loaded")
    return {
        "case": name,
        "tokens": result["tokens"],
        "model loaded MiB": loaded / MIB,
        "peak MiB": result["peak"] / MIB,
        "peak / loaded": result["peak"] / loaded,
        "goal < 1024 MiB": "yes" if result["peak"] < GOAL_BYTES else "NO",
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1], args.worker[2] == "True")))
        return 0
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit(
            "this benchmark reads Linux's /proc/self/status and clear_refs; run it on Linux"
        )
    cases = {}
    for n_tokens in args.tokens:
        for strategy in args.strategies:
            name = f"{n_tokens} tokens, {strategy}"
            print(f"running {name} in a fresh process ...", flush=True)
            cases[name] = result = run_case(n_tokens, strategy, args.real_network)
            if "error" in result:
                print(f"  FAILED: {result['error']}\n  " + "\n  ".join(result["stderr"]))
                continue
            rows = [
                {
                    "stage": s["stage"],
                    "seconds": s.get("seconds", ""),
                    "RSS before MiB": s["rss_before"] / MIB if "rss_before" in s else "",
                    "peak MiB": s["peak"] / MIB,
                    "peak - before MiB": (s["peak"] - s["rss_before"]) / MIB
                    if "rss_before" in s
                    else "",
                    "RSS after MiB": s["rss_after"] / MIB if "rss_after" in s else "",
                }
                for s in result["stages"]
            ]
            _common.print_table(
                rows,
                list(rows[0]),
                f"{name}: {result['tokens']:,} tokens, {result['characters']:,} characters, "
                f"{result['chunks']:,} chunks, {result['windows']:,} windows; peak "
                f"{result['peak'] / MIB:,.0f} MiB",
            )
    summary = [summary_row(name, result) for name, result in cases.items()]
    columns = ["case", "tokens", "model loaded MiB", "peak MiB", "peak / loaded", "goal < 1024 MiB"]
    _common.print_table(summary, columns, "Peak RSS of embed_corpus per case (fresh process each)")
    payload = {
        "environment": _common.environment(),
        "goal_bytes": GOAL_BYTES,
        "summary": summary,
        "cases": cases,
    }
    print(f"wrote {_common.write_json('memory', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
