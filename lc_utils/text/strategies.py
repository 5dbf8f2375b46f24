"""Choosing a chunker by name: ``chunk_text(text, strategy)`` and the label a chunking is stored
under (``chunking_label``).

Introduced in notebook 01_chunking.
"""

from __future__ import annotations

import inspect

from .chunking import Chunk, check_integer, chunk_fixed, chunk_paragraphs, chunk_sentences
from .semantic import chunk_semantic
from .tokens import check_encodable

__all__ = ["STRATEGIES", "chunk_text", "chunking_label"]


STRATEGIES = {
    "sentences": chunk_sentences,
    "paragraphs": chunk_paragraphs,
    "fixed": chunk_fixed,
    "semantic": chunk_semantic,
}


def chunk_text(text: str, strategy: str = "sentences", *, tokenizer=None, **options) -> list[Chunk]:
    """Split ``text`` into ordered, non-overlapping chunks with exact character spans.

    Strategies:
      - ``"sentences"``: spaCy's sentencizer's sentences; options ``sentences_per_chunk`` and
        ``splitter`` (``"fast"``, the default, gives spaCy's boundaries exactly at a fraction of
        the cost; ``"spacy"`` runs spaCy's pipeline itself; see ``lc_utils.text.sentences``).
      - ``"fixed"``: ``chunk_size`` model tokens per chunk; needs ``tokenizer``.
      - ``"paragraphs"``: split on blank lines; option ``paragraphs_per_chunk``.
      - ``"semantic"``: runs of sentences split where neighbouring sentences are least alike;
        needs ``model`` (an ``EmbeddingModel``), option ``percentile`` (see
        ``lc_utils.text.semantic.chunk_semantic``).

    Every chunk satisfies ``text[c.start:c.end] == c.text``, holds no leading or trailing
    whitespace, and chunks are sorted and disjoint. Empty or whitespace-only text gives ``[]``.
    Introduced in notebook 01_chunking.
    """
    check_encodable(text)
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"unknown chunking strategy {strategy!r}; valid: {sorted(STRATEGIES)}")
    function = STRATEGIES[strategy]
    try:
        if strategy == "fixed":
            return function(text, tokenizer, **options)
        return function(text, **options)
    except TypeError as error:
        if "unexpected keyword argument" in str(error):
            valid = [
                name
                for name, p in inspect.signature(function).parameters.items()
                if p.kind == p.KEYWORD_ONLY
            ]
            raise TypeError(
                f"chunk_text: {error}; options valid for strategy {strategy!r}: {valid}"
            ) from None
        raise


_SIZE_OPTIONS = {
    "sentences": "sentences_per_chunk",
    "paragraphs": "paragraphs_per_chunk",
    "fixed": "chunk_size",
}


def chunking_label(strategy: str, **options) -> str:
    """A short name for a chunking, as the Milvus store records it: ``"fixed-64"``,
    ``"sentences"``, ``"sentences-3"`` (three sentences a chunk), ``"paragraphs"``.

    Takes the arguments of ``chunk_text`` (without the text and tokenizer); the size defaults to
    the strategy's own. Introduced in notebook 05_milvus_validation.
    """
    if strategy == "semantic":  # "semantic-90": its model is an input, not part of the name
        unknown = sorted(set(options) - {"model", "percentile"})
        if unknown:
            raise TypeError(f"chunking_label: options {unknown} are not valid for 'semantic'")
        return f"semantic-{options.get('percentile', 90):g}"
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"unknown chunking strategy {strategy!r}; valid: {sorted(STRATEGIES)}")
    option = _SIZE_OPTIONS[strategy]
    # How sentences are found does not change them (``splitter``), so it is not in the name.
    unknown = sorted(set(options) - {option} - ({"splitter"} if strategy == "sentences" else set()))
    if unknown:
        raise TypeError(f"chunking_label: options {unknown} are not valid for {strategy!r}")
    default = 64 if strategy == "fixed" else 1
    size = check_integer(option, options.get(option, default), minimum=1)
    return strategy if strategy != "fixed" and size == 1 else f"{strategy}-{size}"
