"""Tokens with character offsets: the bridge between character spans and model positions.

A document is tokenized once, without special tokens. Each content token keeps the character
position of its first non-whitespace character, so a chunk's tokens are those whose position lies
in the chunk's half-open character span ``[start, end)``; since chunks are sorted and disjoint,
they form a contiguous half-open *token span*. Special tokens belong to no chunk.

This module depends on nothing else in the package; chunking (fixed token counts) and late
pooling both build on it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "check_encodable",
    "TokenizedDocument",
    "whitespace_mask",
    "tokenize_document",
    "token_offsets",
    "token_spans",
    "chunk_of_tokens",
    "mostly_unknown",
    "warn_unknown_chunks",
]

# Codepoints for which str.isspace() is true. Kept as an array so whitespace tests over a whole
# document run in numpy rather than in a Python loop over characters.
_WHITESPACE_CODEPOINTS = np.array(
    [cp for cp in range(0x3000 + 1) if chr(cp).isspace()], dtype=np.uint32
)


def whitespace_mask(text: str) -> np.ndarray:
    """Boolean array of shape ``(len(text),)``: True where ``text[i].isspace()``.

    Vectorised through the UTF-32 code points, so it costs the same for a 5-million-character
    document as a handful of numpy calls. Introduced in notebook 01_chunking.
    """
    codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.isin(codepoints, _WHITESPACE_CODEPOINTS)


def check_encodable(text, label: str = "text") -> str:
    """Return ``text`` if it is a str that UTF-8 can encode; else raise naming ``label``.

    A lone surrogate (``"\ud800"``, left by decoding bytes with ``errors="surrogateescape"`` or
    by slicing a UTF-16 string) cannot reach a tokenizer or spaCy: raised here as one line
    that says where it is and how to clean the source.
    """
    if not isinstance(text, str):
        raise TypeError(f"{label} must be a str, not {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{label} holds {text[error.start : error.end]!r} at character {error.start}, which "
            "UTF-8 cannot encode (a lone surrogate); decode the source with errors='replace'"
        ) from None
    return text


@dataclass
class TokenizedDocument:
    """A document's content tokens (no special tokens) and where they sit in the text.

    Attributes:
        input_ids: int64 ``(n_tokens,)``.
        starts: int64 ``(n_tokens,)``, character of each token's first non-whitespace character,
            relative to the text (negative for tokens of a prepended prefix).
        ends: int64 ``(n_tokens,)``, character end of each token.
    """

    input_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize_document(tokenizer, text: str, prefix: str = "") -> TokenizedDocument:
    """Tokenize ``prefix + text`` once, without special tokens, keeping character offsets.

    Literal special-token strings in the text (a user's "[SEP]") are split like ordinary text,
    so no document can inject control tokens. Introduced in notebook 01_chunking.
    """
    check_encodable(text)
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            "late chunking needs a fast tokenizer (tokenizer.is_fast) for character offsets"
        )
    full = prefix + text
    encoding = tokenizer(
        full,
        add_special_tokens=False,
        return_offsets_mapping=True,
        truncation=False,
        verbose=False,
        split_special_tokens=True,
    )
    input_ids = np.asarray(encoding["input_ids"], dtype=np.int64)
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    starts, ends = offsets[:, 0].copy(), offsets[:, 1].copy()
    if len(full):
        # Some tokenizers (SentencePiece's "▁word", byte-level BPE) start a token on the space
        # before a word; move each start to the token's first non-whitespace character so that
        # a token never falls into the whitespace between two chunks.
        space = whitespace_mask(full)
        position = np.where(space, len(full), np.arange(len(full)))
        next_non_space = np.minimum.accumulate(position[::-1])[::-1]
        inside = starts < len(full)
        moved = next_non_space[np.minimum(starts, len(full) - 1)]
        starts = np.where(inside & (moved < ends), moved, starts)
    shift = len(prefix)
    return TokenizedDocument(input_ids, starts - shift, ends - shift)


def token_offsets(tokenizer, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Character ``(starts, ends)`` of the content tokens of ``text``; see ``tokenize_document``."""
    document = tokenize_document(tokenizer, text)
    return document.starts, document.ends


def token_spans(starts: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Half-open token spans ``(n_chunks, 2)`` of chunks given by character ``spans``.

    Token ``t`` is in chunk ``i`` iff ``spans[i, 0] <= starts[t] < spans[i, 1]``. ``starts``
    must be non-decreasing (tokenizers emit tokens in text order) and ``spans`` sorted and
    disjoint. Introduced in notebook 01_chunking.
    """
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    first = np.searchsorted(starts, spans[:, 0], side="left")
    last = np.searchsorted(starts, spans[:, 1], side="left")
    return np.stack([first, last], axis=1).astype(np.int64)


def chunk_of_tokens(n_tokens: int, token_spans: np.ndarray) -> np.ndarray:
    """int64 ``(n_tokens,)``: the chunk index of each token, or -1 for tokens in no chunk.

    ``token_spans`` is int ``(n_chunks, 2)``, half-open, sorted and disjoint.
    """
    token_spans = np.asarray(token_spans, dtype=np.int64).reshape(-1, 2)
    owner = np.full(n_tokens, -1, dtype=np.int64)
    lengths = token_spans[:, 1] - token_spans[:, 0]
    positions = np.repeat(token_spans[:, 0], lengths) + (
        np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    owner[positions] = np.repeat(np.arange(len(token_spans)), lengths)
    return owner


def mostly_unknown(input_ids: np.ndarray, token_spans: np.ndarray, unknown_id) -> np.ndarray:
    """bool ``(n_chunks,)``: True where more than half of a chunk's tokens are the unknown token.

    MiniLM's WordPiece tokenizer turns any run of over 100 characters without a space (a long
    identifier, a URL, a string of emoji) into one ``[UNK]``, and all such chunks then get the
    same vector. ``unknown_id`` None (a byte-level tokenizer has none) gives all False.
    """
    token_spans = np.asarray(token_spans, dtype=np.int64).reshape(-1, 2)
    if unknown_id is None or not len(token_spans):
        return np.zeros(len(token_spans), dtype=bool)
    unknown = np.r_[0, np.cumsum(np.asarray(input_ids) == unknown_id)]
    counts = unknown[token_spans[:, 1]] - unknown[token_spans[:, 0]]
    lengths = token_spans[:, 1] - token_spans[:, 0]
    return (lengths > 0) & (2 * counts > lengths)


def warn_unknown_chunks(n_unknown: int, n_chunks: int, model, stacklevel: int):
    """Warn that ``n_unknown`` of ``n_chunks`` chunks are mostly ``model``'s unknown token, if any
    (``model``: an ``EmbeddingModel``, for its name and tokenizer)."""
    if n_unknown:
        warnings.warn(
            f"{n_unknown} of {n_chunks} chunk(s) are mostly {model.tokenizer.unk_token} tokens "
            f"({model.name}'s tokenizer turns a run of over 100 characters without a space, such "
            "as a URL or a long identifier, into one unknown token), so their vectors say little "
            "and are alike",
            stacklevel=stacklevel + 1,
        )
