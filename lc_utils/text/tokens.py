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
from functools import lru_cache
from itertools import chain

import numpy as np

__all__ = [
    "check_encodable",
    "TokenizedDocument",
    "whitespace_mask",
    "tokenize_document",
    "tokenize_documents",
    "encode_texts",
    "backend_tokenizer",
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
        input_ids: int32 ``(n_tokens,)``.
        starts: int32 ``(n_tokens,)``, character of each token's first non-whitespace character,
            relative to the text (negative for tokens of a prepended prefix).
        ends: int32 ``(n_tokens,)``, character end of each token.
        word_starts: bool ``(n_tokens,)`` or None: True where a token begins one of the
            tokenizer's pre-tokenized words (not a continuation such as WordPiece's ``##ing``);
            filled only when asked for (``tokenize_documents(..., words=True)``).
    """

    input_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    word_starts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


@lru_cache(maxsize=8)
def _backend_copy(tokenizer, n_added: int):
    """A private copy of ``tokenizer``'s Rust backend, set up as ``tokenize_document`` needs.

    The checkpoint's own settings may truncate or pad (all-MiniLM-L6-v2's tokenizer.json pads
    and truncates to 128), and ``split_special_tokens`` has to hold for every call, so the
    package tokenizes with a copy of its own rather than changing the user's tokenizer.
    ``n_added`` (the vocabulary size with added tokens) is part of the key so that tokens added
    after a first call are seen.
    """
    backend = type(tokenizer._tokenizer).from_str(tokenizer._tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    backend.encode_special_tokens = True  # a user's literal "[SEP]" is text, not a control token
    return backend


def backend_tokenizer(tokenizer):
    """The package's copy of a fast tokenizer's Rust backend (``tokenizers.Tokenizer``), or
    None for a tokenizer without one; see ``_backend_copy``."""
    raw = getattr(tokenizer, "_tokenizer", None)
    if raw is None or not hasattr(raw, "encode_batch"):
        return None
    return _backend_copy(tokenizer, raw.get_vocab_size(with_added_tokens=True))


def _check_fast(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            "late chunking needs a fast tokenizer (tokenizer.is_fast) for character offsets"
        )


def _encode(tokenizer, texts: list[str]) -> list[tuple[list, list, list | None]]:
    """``(ids, offsets, encoding)`` per text: one batched call to the Rust backend where there
    is one, else the tokenizer's own call per text (offsets as lists of pairs)."""
    backend = backend_tokenizer(tokenizer)
    if backend is not None:
        encodings = backend.encode_batch(texts, add_special_tokens=False)
        return [(e.ids, e.offsets, e) for e in encodings]
    out = []
    for text in texts:
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
            verbose=False, split_special_tokens=True,
        )  # fmt: skip
        out.append((encoding["input_ids"], encoding["offset_mapping"], None))
    return out


def encode_texts(tokenizer, texts: list[str]) -> list[np.ndarray]:
    """int32 content ids of each text (no special tokens, no truncation), in one batched call;
    literal special-token strings are split like ordinary text, as in ``tokenize_document``."""
    _check_fast(tokenizer)
    return [np.asarray(ids, dtype=np.int32) for ids, _, _ in _encode(tokenizer, list(texts))]


def _offsets_array(offsets) -> np.ndarray:
    pairs = np.fromiter(chain.from_iterable(offsets), dtype=np.int32, count=2 * len(offsets))
    return pairs.reshape(-1, 2)


def tokenize_documents(
    tokenizer, texts: list[str], prefix: str = "", *, words: bool = False
) -> list[TokenizedDocument]:
    """Tokenize ``prefix + text`` for every text in one batched call; see ``tokenize_document``.

    Ids and offsets become int32 arrays per document straight from the tokenizer's Rust
    backend, so no Python list of a corpus's tokens outlives the call. ``words`` also fills
    ``word_starts`` (what ``naive_ids`` needs to reuse a document's tokens for its chunks).
    """
    _check_fast(tokenizer)
    for text in texts:
        check_encodable(text)
    documents = []
    for (ids, offsets, encoding), text in zip(
        _encode(tokenizer, [prefix + t for t in texts]), texts, strict=True
    ):
        input_ids = np.asarray(ids, dtype=np.int32)
        pairs = _offsets_array(offsets)
        starts = _first_visible(prefix + text, pairs[:, 0], pairs[:, 1])
        word_starts = None
        if words:
            word_starts = _word_starts(encoding, len(input_ids))
        shift = np.int32(len(prefix))
        documents.append(
            TokenizedDocument(input_ids, starts - shift, pairs[:, 1] - shift, word_starts)
        )
    return documents


def _word_starts(encoding, n_tokens: int) -> np.ndarray | None:
    if encoding is None:
        return None
    # None (no word) becomes -1; a token starts a word where its word index changes.
    word_ids = np.fromiter(
        (-1 if w is None else w for w in encoding.word_ids), dtype=np.int64, count=n_tokens
    )
    return np.r_[True, word_ids[1:] != word_ids[:-1]] if n_tokens else np.zeros(0, bool)


def _first_visible(full: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each token's start moved to its first non-whitespace character.

    Some tokenizers (SentencePiece's "▁word", byte-level BPE) start a token on the space before
    a word; moving the start keeps a token out of the whitespace between two chunks. WordPiece
    never does, so the whole-text scan runs only when some token starts on whitespace.
    """
    if not len(full) or not len(starts):
        return starts
    codepoints = np.frombuffer(full.encode("utf-32-le"), dtype=np.uint32)
    inside = starts < len(full)
    at = codepoints[np.minimum(starts, len(full) - 1)]
    if not np.isin(at[inside], _WHITESPACE_CODEPOINTS).any():
        return starts
    space = np.isin(codepoints, _WHITESPACE_CODEPOINTS)
    position = np.where(space, len(full), np.arange(len(full)))
    next_non_space = np.minimum.accumulate(position[::-1])[::-1]
    moved = next_non_space[np.minimum(starts, len(full) - 1)]
    return np.where(inside & (moved < ends), moved, starts).astype(np.int32)


def tokenize_document(tokenizer, text: str, prefix: str = "") -> TokenizedDocument:
    """Tokenize ``prefix + text`` once, without special tokens, keeping character offsets.

    Literal special-token strings in the text (a user's "[SEP]") are split like ordinary text,
    so no document can inject control tokens. Introduced in notebook 01_chunking.
    """
    return tokenize_documents(tokenizer, [text], prefix)[0]


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
