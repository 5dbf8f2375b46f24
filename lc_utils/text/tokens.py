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
    "word_local",
    "token_offsets",
    "token_spans",
    "chunk_of_tokens",
    "mostly_unknown",
    "warn_unknown_chunks",
]

# Whether str.isspace() holds, for every code point up to the last one for which it does
# (U+3000), and False one past it, where every higher code point is looked up: a table, so that
# the whitespace of a whole document is one numpy gather, not a Python loop over characters.
_LAST_SPACE = 0x3000
_IS_SPACE = np.array([chr(cp).isspace() for cp in range(_LAST_SPACE + 1)] + [False])


def _is_space(codepoints: np.ndarray) -> np.ndarray:
    return _IS_SPACE[np.minimum(codepoints, _LAST_SPACE + 1)]


def whitespace_mask(text: str) -> np.ndarray:
    """Boolean array of shape ``(len(text),)``: True where ``text[i].isspace()``.

    Vectorised through the UTF-32 code points, so it costs the same for a 5-million-character
    document as a handful of numpy calls. Introduced in notebook 01_chunking.
    """
    return _is_space(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32))


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


# The parts of a tokenizer under which the tokens of a stretch of text that starts and ends at word
# boundaries are the same alone as inside the document: normalizers that act on one character at
# a time, pre-tokenizers that cut at whitespace and punctuation, and a model run per word.
_LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFD", "NFKD", "StripAccents"}
_LOCAL_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
_WORD_MODELS = {"WordPiece"}


def word_local(tokenizer) -> bool:
    """Whether ``tokenizer`` tokenizes each whitespace- or punctuation-separated word on its
    own (BERT's WordPiece layout: MiniLM, jina-embeddings-v2), so that a text cut at a space, or
    a chunk that starts and ends on word boundaries, gets the tokens it has in context. Byte-level
    BPE and SentencePiece tokenizers, which carry the space into the next token, do not."""
    backend = backend_tokenizer(tokenizer)
    if backend is None:
        return False
    normalizer = backend.normalizer
    parts = [] if normalizer is None else [normalizer]
    if type(normalizer).__name__ == "Sequence":
        parts = list(normalizer)
    if any(type(p).__name__ not in _LOCAL_NORMALIZERS for p in parts):
        return False
    if type(backend.pre_tokenizer).__name__ not in _LOCAL_PRE_TOKENIZERS:
        return False
    if type(backend.model).__name__ not in _WORD_MODELS:
        return False
    # A non-special added token is matched in the raw text before the pre-tokenizer, and could
    # cover a cut; special ones are split like text here (encode_special_tokens).
    return all(t.special for t in backend.get_added_tokens_decoder().values())


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
    fulls = [prefix + t for t in texts]
    long = [i for i, full in enumerate(fulls) if len(full) > BLOCK_CHARACTERS]
    if long and not word_local(tokenizer):
        long = []  # one call over the whole text: exact, but its memory grows with the text
    short = [i for i in range(len(fulls)) if i not in set(long)]
    documents: list[TokenizedDocument | None] = [None] * len(fulls)
    for i, encoded in zip(short, _encode(tokenizer, [fulls[i] for i in short]), strict=True):
        documents[i] = _document(fulls[i], [encoded], [0], words)
    for i in long:
        cuts = _block_cuts(fulls[i])
        blocks = [fulls[i][a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        encoded = []
        for k in range(0, len(blocks), 4):  # a few blocks per call: bounded memory, few calls
            encoded.extend(_encode(tokenizer, blocks[k : k + 4]))
        documents[i] = _document(fulls[i], encoded, cuts[:-1], words)
    shift = np.int32(len(prefix))
    for document in documents:
        document.starts -= shift
        document.ends -= shift
    return documents


# Texts longer than this are tokenized in blocks cut at a space or a line break (with a tokenizer
# for which that is exact, ``word_local``), so the tokenizer's per-token Python objects never
# exist for the whole of a long document at once: 1M tokens in one call held ~340-680 MiB.
BLOCK_CHARACTERS = 1 << 17


def _block_cuts(text: str) -> list[int]:
    """Where to cut ``text`` into blocks of about ``BLOCK_CHARACTERS``: at a space or a newline
    (a word boundary for any ``word_local`` tokenizer); a block without either is not cut."""
    cuts, position = [0], 0
    while len(text) - position > BLOCK_CHARACTERS:
        target = position + BLOCK_CHARACTERS
        cut = max(text.rfind(" ", position + 1, target), text.rfind("\n", position + 1, target))
        if cut <= position:  # no break inside the block: look further on
            spaces = [j for j in (text.find(" ", target), text.find("\n", target)) if j > 0]
            if not spaces:
                break
            cut = min(spaces)
        cuts.append(cut)
        position = cut
    cuts.append(len(text))
    return cuts


def _document(full: str, encoded: list, block_starts: list[int], words: bool) -> TokenizedDocument:
    """One ``TokenizedDocument`` from the encodings of the blocks of ``full`` (one block for a
    text tokenized whole), offsets shifted back to the whole text."""
    ids, starts, ends, word_starts = [], [], [], []
    for (block_ids, offsets, encoding), at in zip(encoded, block_starts, strict=True):
        ids.append(np.asarray(block_ids, dtype=np.int32))
        pairs = _offsets_array(offsets) + np.int32(at)
        starts.append(pairs[:, 0])
        ends.append(pairs[:, 1])
        if words:
            word_starts.append(_word_starts(encoding, len(ids[-1])))
    input_ids = np.concatenate(ids) if len(ids) > 1 else ids[0]
    ends_all = np.concatenate(ends) if len(ends) > 1 else ends[0]
    starts_all = np.concatenate(starts) if len(starts) > 1 else starts[0]
    starts_all = _first_visible(full, starts_all, ends_all)
    flags = None
    if words and all(w is not None for w in word_starts):
        flags = np.concatenate(word_starts) if len(word_starts) > 1 else word_starts[0]
    return TokenizedDocument(input_ids, starts_all, ends_all, flags)


def _word_starts(encoding, n_tokens: int) -> np.ndarray | None:
    if encoding is None:
        return None
    # None (no word) becomes -1; a token starts a word where its word index changes. Without
    # special tokens there is seldom a None, and the list goes to numpy as it is.
    words = encoding.word_ids
    if None in words:
        words = [-1 if w is None else w for w in words]
    word_ids = np.fromiter(words, dtype=np.int64, count=n_tokens)
    return np.append(True, word_ids[1:] != word_ids[:-1]) if n_tokens else np.zeros(0, bool)


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
    if not _is_space(at[inside]).any():
        return starts
    space = _is_space(codepoints)
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
    unknown = np.append(0, np.cumsum(np.asarray(input_ids) == unknown_id))
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
