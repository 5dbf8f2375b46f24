"""lc_utils against the late-chunking peers on PyPI: afterthoughts and chonkie.

    make bench-peers                 # builds .venv-bench as below, then runs this script
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0        # first, or pip pulls a multi-GB CUDA build
    .venv-bench/bin/pip install -e . afterthoughts chonkie accelerate sentence-transformers
    HF_HUB_OFFLINE=1 .venv-bench/bin/python benchmarks/bench_peers.py [--quick | --docs N]

The peers are benchmark dependencies, not project dependencies, so they live in their own venv
(``accelerate`` because afterthoughts 0.1.2 loads its model with a ``device_map`` and does not
declare it). Every path gets the same model files (the packaged all-MiniLM-L6-v2 directory,
``lc.packaged_minilm_path()``), the same documents (Python's reference topics) and, where the
peer allows it, the same chunks (fixed 64-token chunks from ``lc.chunk_text``):

* **lc_utils**: ``embed_corpus(method="late")``, windows of 512 positions overlapping by 127.
* **afterthoughts, defaults**: ``LateEncoder.encode`` as shipped: its own sentence chunks
  (BlingFire, one sentence per chunk), pre-chunks overlapping by half a window, batches of 16384
  tokens.
* **afterthoughts, our chunks**: our fixed-64 chunks passed as its "sentences", overlap 127 and
  batches of 2048 tokens like ours, and ``return_text=False`` (no decoding of chunk texts): its
  configuration closest to ours. The 1.2x goal is judged against the faster of the two
  afterthoughts paths. afterthoughts 0.1.2 documents a callable ``sent_tokenizer``, but its
  parameter check rejects any callable; this script lets callables through that one check
  (``afterthoughts.validation.validate_sent_tokenizer``) and changes nothing else.
* **chonkie**: ``LateChunker(chunk_size=64)``. It cannot take given chunks (it runs its own
  recursive chunker), and it embeds a long document in windows of the sentence-transformers
  ``max_seq_length`` (256 for this model) with no overlap, each with its own [CLS] and [SEP].
  Those windows compute fewer tokens (no overlap) with cheaper attention (256 positions, not
  512), so lc_utils also runs with chonkie's windows (``window=256, overlap=0``) on its fixed-64
  chunks: that row is the like-for-like speed comparison. chonkie (1.7.0) gives chunks their
  tokens by count, not by offsets: each run of 256 token ids is decoded to text and encoded
  again with [CLS] and [SEP], which sentence-transformers truncates to 256 positions, so every
  full window drops its last two content tokens and holds its [CLS] and [SEP] in their place
  (700 content tokens give 702 token vectors); chunks then take their tokens one position off.

Throughput is in document tokens per second (the same text for every path); the ratio is how many
times faster lc_utils is (peer's time / ours, per round, median). After the timing the script
checks whether the vectors agree: afterthoughts' chunk vectors against ours for the same chunks,
and chonkie's against ours computed for chonkie's chunks. Results go to
``outputs/bench/peers.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import traceback

import _common  # benchmarks/ is on sys.path when a script in it runs
import numpy as np

import lc_utils as lc

CHUNK_SIZE = 64
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL = (
    "create the benchmark venv: python3 -m venv .venv-bench && .venv-bench/bin/pip install "
    "torch==2.13.0 && .venv-bench/bin/pip install -e . afterthoughts chonkie accelerate "
    "sentence-transformers"
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_topic_arguments(parser)
    args = parser.parse_args(argv)
    _common.apply_quick(args)
    return args


def describe(values: list[float]) -> dict:
    if not values:
        return {"chunks": 0}
    array = np.asarray(values)
    return {"chunks": len(array), "mean": float(array.mean()), "min": float(array.min())}


def afterthoughts_paths(path, documents, chunks, texts, problems):
    """The two afterthoughts paths, or none with the reason in ``problems``."""
    try:
        import torch
        from afterthoughts import LateEncoder
        from afterthoughts import validation as afterthoughts_validation
    except ImportError as error:
        problems["afterthoughts"] = f"cannot import afterthoughts ({error}); {INSTALL}"
        return {}
    checked = afterthoughts_validation.validate_sent_tokenizer

    def accept_callables(sent_tokenizer):
        # The documented callable API, blocked by the 0.1.2 parameter check; see the docstring.
        if not callable(sent_tokenizer):
            checked(sent_tokenizer)

    afterthoughts_validation.validate_sent_tokenizer = accept_callables
    try:
        encoder = LateEncoder(str(path), device="cpu")
    except Exception as error:  # noqa: BLE001 - a peer failing is a result to report
        problems["afterthoughts"] = f"LateEncoder({path}) failed: {error!r}"
        return {}
    spans = {text: torch.tensor([[c.start, c.end] for c in chunks[d]]) for d, text in texts}

    def our_chunks(text: str):
        return spans[text]

    docs = list(documents.values())

    def defaults():
        return encoder.encode(docs, show_progress=False, return_frame="pandas")

    def given():
        return encoder.encode(
            docs,
            sent_tokenizer=our_chunks,
            max_chunk_sents=1,
            # An int is documented as a token count, but 0.1.2 only accepts a fraction of the
            # window: 127 / 512 is our overlap.
            prechunk_overlap_tokens=127 / 512,
            max_batch_tokens=2048,
            # Its documented switch to skip decoding chunk texts; our records slice the text.
            return_text=False,
            show_progress=False,
            return_frame="pandas",
        )

    try:  # warm-up: afterthoughts starts tokenizer worker processes on first use
        encoder.encode(docs[:2], show_progress=False)
        encoder.encode(docs[:2], sent_tokenizer=our_chunks, show_progress=False)
    except Exception:  # noqa: BLE001
        problems["afterthoughts"] = "encode failed:\n" + traceback.format_exc(limit=3)
        return {}
    return {"afterthoughts, defaults": defaults, "afterthoughts, our chunks": given}


def chonkie_path(path, documents, problems):
    try:
        from chonkie import LateChunker
        from chonkie.embeddings.sentence_transformer import SentenceTransformerEmbeddings
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        problems["chonkie"] = f"cannot import chonkie ({error}); {INSTALL}"
        return {}, None
    try:
        model = SentenceTransformer(str(path), device="cpu")
        chunker = LateChunker(
            embedding_model=SentenceTransformerEmbeddings(model), chunk_size=CHUNK_SIZE
        )
        chunker.chunk(next(iter(documents.values())))  # warm-up
    except Exception:  # noqa: BLE001
        problems["chonkie"] = "LateChunker failed:\n" + traceback.format_exc(limit=3)
        return {}, None

    def run():
        return [chunker.chunk(text) for text in documents.values()]

    return {"chonkie LateChunker": run}, model.get_max_seq_length()


def agreement(model, documents, ours, results, content_window, n_tokens):
    """Cosine between the peers' chunk vectors and ours, for documents that fit one window and
    for longer ones."""
    report = {}
    fits = {d: n_tokens[d] <= content_window for d in documents}
    doc_ids = list(documents)
    our_rows: dict[str, list[int]] = {}
    for row, record in enumerate(ours.records):
        our_rows.setdefault(record["doc_id"], []).append(row)

    if "afterthoughts, our chunks" in results:
        frame, vectors = results["afterthoughts, our chunks"]
        cosines = {True: [], False: []}
        mismatched, misordered, as_labelled = [], [], []
        for index, doc_id in enumerate(doc_ids):
            mine = ours.vectors[our_rows[doc_id]]
            part = frame[frame["document_idx"] == index]
            rows = np.sort(part["idx"].to_numpy())
            if len(rows) != len(mine):
                mismatched.append(doc_id)
                continue
            # The frame's chunk_idx should give the rows in document order. For some long
            # documents it does not, while the rows themselves are in document order (they match
            # ours at 0.83+, the labels at 0.4): compare by row order, and count those documents.
            labelled = part.sort_values("chunk_idx")["idx"].to_numpy()
            if not np.array_equal(labelled, rows):
                misordered.append(doc_id)
                as_labelled.extend(_common.cosine_rows(vectors[labelled], mine))
            cosines[fits[doc_id]].extend(_common.cosine_rows(vectors[rows], mine))
        report["afterthoughts, our chunks"] = {
            "fit one window": describe(cosines[True]),
            "longer": describe(cosines[False]),
            "documents with a different number of chunks": mismatched,
            "documents whose chunk_idx order is not their row order": misordered,
            "those documents compared as labelled": describe(as_labelled),
        }

    if "chonkie LateChunker" in results:
        cosines = {True: [], False: []}
        wrong_span = overlapping = 0
        for doc_id, chunk_list in zip(doc_ids, results["chonkie LateChunker"], strict=True):
            text = documents[doc_id]
            # chonkie's start/end indices do not always point at the chunk's text, and a chunk
            # can start before the previous one ends: compare only chunks whose span is right
            # and disjoint from the last one kept.
            kept, end = [], 0
            for chunk in chunk_list:
                if text[chunk.start_index : chunk.end_index] != chunk.text:
                    wrong_span += 1
                elif chunk.start_index < end:
                    overlapping += 1
                else:
                    kept.append(chunk)
                    end = chunk.end_index
            if not kept:
                continue
            spans = [(c.start_index, c.end_index) for c in kept]
            tokens, _, in_tokens = lc.prepare_document(model, text, spans, strict=False)
            mine = lc.late.pooling.pool_prepared(model, [(tokens, in_tokens)], progress=False)[0]
            theirs = np.stack([np.asarray(c.embedding) for c in kept])
            keep = ~np.isnan(mine).any(axis=1)
            cosines[fits[doc_id]].extend(_common.cosine_rows(theirs[keep], mine[keep]))
        report["chonkie LateChunker, against lc_utils on chonkie's chunks"] = {
            "fit one window": describe(cosines[True]),
            "longer": describe(cosines[False]),
            "chunks": sum(len(chunks) for chunks in results["chonkie LateChunker"]),
            "chunks whose text[start:end] is not their text": wrong_span,
            "chunks starting before the previous one ends": overlapping,
        }
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    path = lc.packaged_minilm_path()
    model = lc.load_model(MODEL, verbose=False)
    documents = lc.datasets.load_pydoc_topics()
    if args.docs:
        documents = dict(list(documents.items())[: args.docs])
    n_tokens = {d: len(lc.tokenize_document(model.tokenizer, t)) for d, t in documents.items()}
    total = sum(n_tokens.values())
    content_window = model.window().content_tokens
    chunks = {
        d: lc.chunk_text(t, "fixed", tokenizer=model.tokenizer, chunk_size=CHUNK_SIZE)
        for d, t in documents.items()
    }
    print(f"{len(documents)} topics, {total:,} tokens, model files {path}")

    def ours():
        return lc.embed_corpus(model, documents, chunks=chunks, progress=False)

    problems: dict[str, str] = {}
    paths = {"lc_utils late, fixed-64": ours}
    paths.update(afterthoughts_paths(path, documents, chunks, documents.items(), problems))
    chonkie_paths, chonkie_window = chonkie_path(path, documents, problems)
    if chonkie_paths:
        # The same fixed-64 chunks in chonkie's windows: its length, no overlap. This row, not
        # the default one, is the like-for-like speed comparison with chonkie.
        matched = f"lc_utils late, fixed-64, chonkie's windows ({chonkie_window}, no overlap)"
        paths[matched] = lambda: lc.embed_corpus(
            model, documents, chunks=chunks, window=chonkie_window, overlap=0, progress=False
        )
    paths.update(chonkie_paths)
    for peer, reason in problems.items():
        print(f"SKIPPED {peer}: {reason}")

    canary = _common.Canary(model)
    timing = _common.interleave(paths, rounds=args.rounds, canary=canary.measure)
    seconds = timing.pop("seconds")
    results = timing.pop("last")
    baseline = seconds["lc_utils late, fixed-64"]
    notes = {
        "lc_utils late, fixed-64": "windows 512 positions, overlap 127; specials not pooled",
        "afterthoughts, defaults": "own chunks: BlingFire sentences; overlap 256; 16384-token "
        "batches; chunks seen twice are averaged",
        "afterthoughts, our chunks": "our chunks; overlap 127; 2048-token batches; no texts",
        "chonkie LateChunker": f"own recursive chunks <= {CHUNK_SIZE} tokens; windows of "
        f"{chonkie_window} positions, no overlap; tokens assigned by count, [CLS]/[SEP] pooled",
    }
    if chonkie_paths:
        notes[matched] = f"windows {chonkie_window} positions, no overlap; specials not pooled"
    rows = []
    for name, values in seconds.items():
        rows.append(
            {
                "path": name,
                "median s": statistics.median(values),
                "tokens/s": total / statistics.median(values),
                "lc_utils speed-up": _common.median_ratio(values, baseline),
                "conventions": notes.get(name, ""),
            }
        )
    _common.print_table(
        rows,
        ["path", "median s", "tokens/s", "lc_utils speed-up", "conventions"],
        "Throughput on the same documents (speed-up = peer time / lc_utils time; goal >= 1.2 "
        "against afterthoughts)",
    )
    agree = agreement(
        model, documents, results["lc_utils late, fixed-64"], results, content_window, n_tokens
    )
    print("\nVector agreement (cosine with lc_utils' late vectors for the same chunks):")
    for name, parts in agree.items():
        print(f"  {name}: {parts}")
    afterthoughts = [row["lc_utils speed-up"] for row in rows if row["path"].startswith("after")]
    goal = {"lc_utils_over_fastest_afterthoughts": min(afterthoughts)} if afterthoughts else {}
    if goal:
        speedup = goal["lc_utils_over_fastest_afterthoughts"]
        goal["met"] = speedup >= 1.2
        print(
            f"\ngoal: lc_utils >= 1.2x the faster afterthoughts path: {speedup:.2f}x "
            f"({'met' if goal['met'] else 'NOT met'})"
        )
    print(f"\n{_common.host_note(timing)}")
    payload = {
        "goal": goal,
        "environment": _common.environment(),
        "model_path": str(path),
        "documents": len(documents),
        "tokens": total,
        "chunk_size": CHUNK_SIZE,
        "rounds": args.rounds,
        "seconds": seconds,
        "table": rows,
        "agreement": agree,
        "skipped": problems,
        "peer_versions": _versions(),
        **timing,
    }
    print(f"wrote {_common.write_json('peers', payload)}")
    return 0


def _versions() -> dict:
    from importlib import metadata

    versions = {}
    for name in ("afterthoughts", "chonkie", "sentence-transformers", "accelerate"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


if __name__ == "__main__":
    sys.exit(main())
