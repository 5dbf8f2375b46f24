"""``python -m lc_utils.eval.mteb``: MTEB retrieval tasks with naive, late and no chunking.

For example, the paper's four BEIR tasks and LongEmbed's needle and passkey tasks with the paper's
model and chunks (online; docs/evaluation.md)::

    python -m lc_utils.eval.mteb --model jinaai/jina-embeddings-v2-small-en \\
        --method naive late none --chunk-size 256
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from .search import METHODS
from .tasks import LONGEMBED_TASKS, PAPER_TASKS, evaluate_tasks


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE, e.g. percentile=90")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lc_utils.eval.mteb``: run MTEB tasks with naive, late and no chunking."""
    parser = argparse.ArgumentParser(
        prog="python -m lc_utils.eval.mteb",
        description="MTEB retrieval tasks with naive, late or no chunking (documents scored by "
        "their best chunk), scored by MTEB.",
    )
    parser.add_argument("--model", required=True, help="a registry model, hub id or folder")
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=[*PAPER_TASKS, *LONGEMBED_TASKS],
        help="MTEB task names or BEIR folder paths (default: the paper's four "
        "BEIR tasks and LongEmbed's needle and passkey)",
    )
    parser.add_argument("--method", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--strategy", default="fixed", help="a chunk_text strategy")
    parser.add_argument("--chunk-size", type=int, default=256, help="tokens per fixed chunk")
    parser.add_argument(
        "--chunk-option",
        type=_option,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another chunk_text option, e.g. sentences_per_chunk=3 or percentile=90 (repeatable)",
    )
    parser.add_argument("--window", type=int, help="positions per late-chunking pass")
    parser.add_argument("--overlap", type=int, help="tokens shared by consecutive windows")
    parser.add_argument("--max-tokens", type=int, help="where naive chunks and documents are cut")
    parser.add_argument(
        "--title-separator",
        default="\n\n",
        help="joins a title to its text (default: a blank line; MTEB: ' ')",
    )
    parser.add_argument("--output-dir", default="outputs/mteb", help="MTEB's result cache")
    parser.add_argument("--overwrite", action="store_true", help="recompute cached results")
    parser.add_argument("--device", help="e.g. cuda or cpu (default: CUDA when present)")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"])
    parser.add_argument(
        "--base-weights",
        action="store_true",
        help="run jina-v3 without its task adapters, on purpose",
    )
    args = parser.parse_args(argv)
    options = dict(args.chunk_option)
    if args.strategy == "fixed":
        options.setdefault("chunk_size", args.chunk_size)
    model_options = {"device": args.device, "base_weights": args.base_weights}
    if args.dtype:
        model_options["dtype"] = getattr(torch, args.dtype)
    try:
        table = evaluate_tasks(
            args.model,
            args.tasks,
            args.method,
            strategy=args.strategy,
            chunk_options=options,
            window=args.window,
            overlap=args.overlap,
            max_tokens=args.max_tokens,
            title_separator=args.title_separator,
            output_dir=args.output_dir,
            overwrite=args.overwrite,
            model_options=model_options,
        )
    except (ConnectionError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        table.pivot_table(
            index=["task", "split", "main_score"], columns="method", values="score", sort=False
        ).to_string()
    )
    print(f"MTEB's result files: {Path(args.output_dir).resolve()}/results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
