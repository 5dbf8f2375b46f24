"""Sentence splitting: spaCy's sentencizer against the fast path, both against the tokenizer.

    .venv/bin/python benchmarks/bench_sentences.py              # 79 pydoc topics, 7 rounds
    .venv/bin/python benchmarks/bench_sentences.py --rounds 3 --docs 20

Every path makes one pass over the same documents (Python's reference topics), one call per
document:

* ``tokenizer`` (baseline): the model's fast tokenizer, ``model.tokenizer(text,
  add_special_tokens=False, return_offsets_mapping=True)``, all-MiniLM-L6-v2: the call that
  every chunking of a document pays anyway, and the unit the other paths are priced in.
* ``spacy``: ``lc.text.sentences.sentence_spans(text, splitter="spacy")``, the reference: spaCy's
  blank English pipeline with the rule-based sentencizer.
* ``fast``: ``sentence_spans(text)``, the default path, which keeps what it learnt about each
  distinct run of text for the next document and the next round.
* ``fast, fresh memo``: the same with that memory emptied before every pass, as on a corpus
  seen for the first time (spaCy keeps its own tokenizer cache in every path).
* ``chunk_sentences``: ``lc.chunk_sentences(text)``, the fast path as callers meet it, with the
  input check and the ``Chunk`` objects.

Before the rounds each path runs once, so one-time costs stay out of the medians (the fast path
builds a class table for the code points and reads spaCy's special cases, about 0.1 s, or 0.6 s
with emoji in the text); that first pass is timed and printed on its own. Times are µs per
model token (the tokenizer's tokens, no special tokens), and ratios the median over rounds of
the path's time over the tokenizer's time in the same round. The goal: the fast path at most
~0.6x the tokenizer.

After the timing the script checks that the fast path agrees with spaCy: documents whose spans
are identical, and spaCy's sentences found with the same span, and counts the documents on which
the fast path fell back to spaCy. Paths run interleaved with a canary forward around each round
(``benchmarks/_common.py``). Results go to ``outputs/bench/sentences.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common  # benchmarks/ is on sys.path when a script in it runs
import numpy as np

import lc_utils as lc
from lc_utils.text import sentences

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=0, help="first N topics by id; 0 means all")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    return parser.parse_args(argv)


def forget_runs() -> None:
    """Empty the fast path's memory of tokenized runs for the default pipeline."""
    nlp = sentences.sentencizer()
    rules = nlp.tokenizer.rules
    stops = frozenset(nlp.get_pipe("sentencizer").punct_chars)
    sentences._profile(nlp, tuple(nlp.pipe_names), stops, id(rules), len(rules)).memo.clear()


def main(argv=None) -> None:
    args = parse_args(argv)
    model = lc.load_model(MODEL, device="cpu")
    tokenizer = model.tokenizer
    topics = lc.datasets.load_pydoc_topics()
    texts = [topics[doc_id] for doc_id in sorted(topics)[: args.docs or None]]
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    print(f"{len(texts)} documents, {sum(map(len, texts)):,} characters, {tokens:,} tokens")

    started = time.perf_counter()
    sentences.sentencizer()
    spacy_load = time.perf_counter() - started
    started = time.perf_counter()
    first_fast = [sentences.sentence_spans(t) for t in texts]
    first_call = time.perf_counter() - started
    print(
        f"spaCy imported and its pipeline built in {spacy_load:.3f} s; the fast path's first pass "
        f"(its tables built, every run new to it and to spaCy): {first_call:.3f} s"
    )

    def tokenize():
        return [tokenizer(t, add_special_tokens=False, return_offsets_mapping=True) for t in texts]

    def spacy():
        return [sentences.sentence_spans(t, splitter="spacy") for t in texts]

    def fast():
        return [sentences.sentence_spans(t) for t in texts]

    def fast_fresh():
        forget_runs()
        return fast()

    def chunks():
        return [lc.chunk_sentences(t) for t in texts]

    paths = {
        "tokenizer": tokenize,
        "spacy": spacy,
        "fast": fast,
        "fast, fresh memo": fast_fresh,
        "chunk_sentences": chunks,
    }
    for path in paths.values():  # warm-up: spaCy's cache, the tokenizer's first calls
        path()
    canary = _common.Canary(model)
    timing = _common.interleave(paths, rounds=args.rounds, canary=canary.measure)
    seconds = timing["seconds"]

    rows = []
    for name in paths:
        median = statistics.median(seconds[name])
        rows.append(
            {
                "path": name,
                "ms per pass": 1e3 * median,
                "µs per token": 1e6 * median / tokens,
                "x tokenizer": _common.median_ratio(seconds[name], seconds["tokenizer"]),
                "x spacy": _common.median_ratio(seconds[name], seconds["spacy"]),
            }
        )
    _common.print_table(
        rows,
        ["path", "ms per pass", "µs per token", "x tokenizer", "x spacy"],
        title=f"sentence splitting, {len(texts)} pydoc topics, median of {args.rounds} rounds",
    )

    reference, fast_spans = timing["last"]["spacy"], timing["last"]["fast"]
    same_documents = sum(np.array_equal(a, b) for a, b in zip(reference, fast_spans, strict=True))
    same_first = sum(np.array_equal(a, b) for a, b in zip(reference, first_fast, strict=True))
    reference_count = sum(len(a) for a in reference)
    same_sentences = sum(
        len(set(map(tuple, a.tolist())) & set(map(tuple, b.tolist())))
        for a, b in zip(reference, fast_spans, strict=True)
    )
    fallbacks = sum(sentences.fast_sentence_spans(t) is None for t in texts)
    print(
        f"\nagreement: {same_documents}/{len(texts)} documents identical "
        f"({same_first}/{len(texts)} on the first pass), {same_sentences}/{reference_count} "
        f"sentences identical; the fast path fell back to spaCy on {fallbacks} documents"
    )
    print(_common.host_note(timing))

    payload = {
        "environment": _common.environment("cpu"),
        "model": MODEL,
        "documents": len(texts),
        "characters": sum(map(len, texts)),
        "tokens": tokens,
        "rounds": args.rounds,
        "spacy_load_seconds": spacy_load,
        "first_fast_pass_seconds": first_call,
        "rows": rows,
        "agreement": {
            "documents_identical": same_documents,
            "documents_identical_first_pass": same_first,
            "documents": len(texts),
            "sentences_identical": same_sentences,
            "sentences": reference_count,
            "fallback_documents": fallbacks,
        },
        "seconds": seconds,
        "canary_before": timing["canary_before"],
        "canary_after": timing["canary_after"],
        "slow_rounds": timing["slow_rounds"],
    }
    print(f"wrote {_common.write_json('sentences', payload)}")


if __name__ == "__main__":
    main()
