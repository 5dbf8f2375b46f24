"""Chunking a document into character spans: sentences, paragraphs, fixed token counts.

Every chunker here returns `Chunk` objects whose `start` and `end` are half-open character offsets
into the original string, so `text[chunk.start:chunk.end] == chunk.text` always holds. Character
spans are the one currency of the package: token positions are derived from them later through the
tokenizer's offset mapping (see `lc_utils.text.tokens`), never from a chunker's own word indices.

Introduced in notebook 01_chunking.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .sentences import sentence_spans
from .sentences import sentencizer as sentencizer
from .tokens import check_encodable, token_offsets, whitespace_mask

__all__ = [
    "Chunk",
    "check_integer",
    "chunk_sentences",
    "sentence_chunk_spans",
    "chunk_fixed",
    "fixed_chunks",
    "fixed_spans",
    "chunk_paragraphs",
    "validate_chunks",
    "strip_span",
    "sentencizer",
]


def check_integer(name: str, value, *, minimum: int | None = None) -> int:
    """``value`` as an int if it is an integer (Python or numpy, not bool) of at least
    ``minimum``; otherwise a one-line error naming ``name``.

    Floats are refused rather than rounded: ``chunk_size=2.5`` or a span ``(0.9, 27.9)`` is a
    mistake upstream, and truncating it silently would drop text.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r} is a {type(value).__name__}; it must be an int")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value}; it must be an int >= {minimum}")
    return int(value)


@dataclass(frozen=True)
class Chunk:
    """One chunk of a document: the half-open character span ``[start, end)`` and its text.

    Introduced in notebook 01_chunking.
    """

    text: str
    start: int
    end: int

    @property
    def span(self) -> tuple[int, int]:
        """The half-open character span ``(start, end)``."""
        return (self.start, self.end)

    def __len__(self) -> int:
        return self.end - self.start


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` of ``text`` so it holds no leading or trailing whitespace.

    The result may be empty (``start == end``). Introduced in notebook 01_chunking.
    """
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _chunks_from_spans(text: str, spans: Sequence[tuple[int, int]]) -> list[Chunk]:
    chunks = []
    for start, end in spans:
        start, end = strip_span(text, start, end)
        if start < end:
            chunks.append(Chunk(text[start:end], start, end))
    return chunks


def chunk_sentences(
    text: str, *, sentences_per_chunk: int = 1, splitter: str = "fast"
) -> list[Chunk]:
    """Sentences as spaCy's blank English pipeline with the rule-based ``sentencizer`` finds them.

    The whole text is split at once, so no sentence is ever cut by an arbitrary slice boundary.
    ``splitter="fast"`` (the default) gives exactly spaCy's sentences while tokenizing only the
    few runs of text that can decide a sentence start, and runs spaCy itself on a document it
    cannot vouch for; ``splitter="spacy"`` runs spaCy alone, the reference (see
    ``lc_utils.text.sentences``). ``sentences_per_chunk`` groups n consecutive sentences into
    one chunk. Returns chunks in order with exact character spans. Introduced in notebook
    01_chunking.
    """
    spans = sentence_chunk_spans(text, sentences_per_chunk=sentences_per_chunk, splitter=splitter)
    return [Chunk(text[a:b], a, b) for a, b in spans.tolist()]


def sentence_chunk_spans(
    text: str, *, sentences_per_chunk: int = 1, splitter: str = "fast"
) -> np.ndarray:
    """The spans of ``chunk_sentences`` as an int64 array ``(n, 2)``: the form a pipeline uses,
    with no ``Chunk`` objects and nothing to validate (the sentence spans come sorted, disjoint
    and stripped, and a group of them runs from its first sentence's start to its last one's
    end, so it is stripped too)."""
    sentences_per_chunk = check_integer("sentences_per_chunk", sentences_per_chunk, minimum=1)
    check_encodable(text)
    if not text.strip():
        return np.zeros((0, 2), dtype=np.int64)
    spans = sentence_spans(text, splitter=splitter).astype(np.int64, copy=False).reshape(-1, 2)
    if sentences_per_chunk == 1 or not len(spans):
        return spans
    firsts = np.arange(0, len(spans), sentences_per_chunk)
    lasts = np.minimum(firsts + sentences_per_chunk, len(spans)) - 1
    return np.stack([spans[firsts, 0], spans[lasts, 1]], axis=1)


_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")


def chunk_paragraphs(text: str, *, paragraphs_per_chunk: int = 1) -> list[Chunk]:
    """Paragraphs: text separated by one or more blank lines (lines holding only whitespace).

    ``paragraphs_per_chunk`` groups n consecutive paragraphs. Introduced in notebook 01_chunking.
    """
    paragraphs_per_chunk = check_integer("paragraphs_per_chunk", paragraphs_per_chunk, minimum=1)
    spans = []
    position = 0
    for separator in _BLANK_LINE.finditer(text):
        spans.append((position, separator.start()))
        position = separator.end()
    spans.append((position, len(text)))
    paragraphs = _chunks_from_spans(text, spans)
    if paragraphs_per_chunk == 1:
        return paragraphs
    grouped = [
        (paragraphs[i].start, paragraphs[min(i + paragraphs_per_chunk, len(paragraphs)) - 1].end)
        for i in range(0, len(paragraphs), paragraphs_per_chunk)
    ]
    return _chunks_from_spans(text, grouped)


def chunk_fixed(text: str, tokenizer, *, chunk_size: int = 64) -> list[Chunk]:
    """Chunks of ``chunk_size`` model tokens each (the last may be shorter).

    Token positions come from the fast tokenizer's offset mapping, without special tokens. A
    chunk runs from the first character of its first token up to the first character of the next
    chunk's first token, with surrounding whitespace stripped. Boundaries fall on token starts, so
    the token-to-chunk rule of ``late_chunking`` (a token belongs to the chunk whose span holds its
    first non-whitespace character) puts exactly ``chunk_size`` tokens in every chunk but the
    last, except where several tokens share one character (BERT splits a Hangul syllable into
    jamo, byte-level BPE splits an emoji into bytes): those stay together, and the chunk before
    them grows by fewer tokens than share that character. Introduced in notebook 01_chunking.
    """
    chunk_size = check_integer("chunk_size", chunk_size, minimum=1)
    if tokenizer is None:
        raise ValueError(
            'strategy "fixed" counts model tokens, so it needs the tokenizer: '
            'chunk_text(text, "fixed", tokenizer=model.tokenizer, chunk_size=64)'
        )
    if not text.strip():
        return []
    return fixed_chunks(text, token_offsets(tokenizer, text)[0], chunk_size)


def fixed_chunks(text: str, starts: np.ndarray, chunk_size: int) -> list[Chunk]:
    """``chunk_fixed`` from token starts already at hand (``TokenizedDocument.starts`` of the
    text, without a prefix), so that a pipeline that tokenizes a document once for late pooling
    also cuts its fixed chunks from that one pass."""
    return [Chunk(text[a:b], a, b) for a, b in fixed_spans(text, starts, chunk_size).tolist()]


def fixed_spans(text: str, starts: np.ndarray, chunk_size: int) -> np.ndarray:
    """The spans of ``fixed_chunks`` as an int64 array ``(n, 2)``, sorted, disjoint and stripped
    of surrounding whitespace, computed with array operations only: the form a pipeline uses,
    which needs no ``Chunk`` objects and no validation of spans built this way."""
    if len(starts) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # Tokens sharing one character (BERT's jamo for a Hangul syllable, byte-level BPE pieces of
    # an emoji) must stay in one chunk, so a boundary may only fall where a new character starts.
    shared = starts[1:] == starts[:-1]
    if not shared.any():
        first_tokens = np.arange(0, len(starts), chunk_size)
    else:
        new_character = np.flatnonzero(np.r_[True, ~shared])
        first_tokens = [0]
        while True:
            k = np.searchsorted(new_character, first_tokens[-1] + chunk_size)
            if k == len(new_character):
                break
            first_tokens.append(int(new_character[k]))
    boundaries = np.append(starts[first_tokens].astype(np.int64), len(text))
    # Strip: a span runs from its first to past its last non-whitespace character.
    visible = np.flatnonzero(~whitespace_mask(text))
    if not len(visible):
        return np.zeros((0, 2), dtype=np.int64)
    first = np.searchsorted(visible, boundaries[:-1], side="left")
    last = np.searchsorted(visible, boundaries[1:], side="left") - 1
    begin = visible[np.minimum(first, len(visible) - 1)]
    end = visible[np.maximum(last, 0)] + 1
    keep = (first < len(visible)) & (last >= 0) & (begin < end)
    return np.stack([begin[keep], end[keep]], axis=1).astype(np.int64)


def validate_chunks(text: str, chunks: Sequence) -> np.ndarray:
    """Check chunks against ``text`` and return their spans as an int64 array ``(n, 2)``.

    Accepts ``Chunk`` objects or ``(start, end)`` pairs of ints (numpy ints too; a float is
    refused, since truncating it would move the span). Each span must satisfy
    ``0 <= start < end <= len(text)``, spans must be sorted and disjoint, and a ``Chunk``'s text
    must equal ``text[start:end]`` (which catches chunks taken from a different document).
    Raises ``ValueError`` naming the first offending chunk. Introduced in notebook 01_chunking.
    """
    if isinstance(chunks, str) or not isinstance(chunks, Sequence | np.ndarray):
        raise TypeError(
            f"chunks is a {type(chunks).__name__}; expected a list of Chunk objects or of "
            "(start, end) pairs, as chunk_text returns"
        )
    spans = np.empty((len(chunks), 2), dtype=np.int64)
    previous_end = 0
    for i, chunk in enumerate(chunks):
        pair = (chunk.start, chunk.end) if isinstance(chunk, Chunk) else chunk
        try:
            start, end = pair
        except (TypeError, ValueError):
            raise TypeError(
                f"chunk {i} is {chunk!r}; expected a Chunk or a (start, end) pair of ints"
            ) from None
        start = check_integer(f"chunk {i} start", start)
        end = check_integer(f"chunk {i} end", end)
        if not 0 <= start < end <= len(text):
            raise ValueError(
                f"chunk {i} spans characters {start}–{end}; a span must satisfy "
                f"0 <= start < end <= len(text) = {len(text)}"
            )
        if start < previous_end:
            raise ValueError(
                f"chunk {i} starts at character {start}, before the previous chunk ends at "
                f"{previous_end}; chunks must be sorted and must not overlap"
            )
        if isinstance(chunk, Chunk) and text[start:end] != chunk.text:
            raise ValueError(
                f"chunk {i} says its text is {chunk.text[:40]!r} but the document holds "
                f"{text[start:end][:40]!r} at {start}–{end}; were these chunks made from another "
                "document?"
            )
        spans[i] = (start, end)
        previous_end = end
    return spans
