"""Everything the host does for a group of documents before the model sees them.

For each document: chunk it, tokenize it once, and map its chunks to token spans; for the naive
method, also the ids of each chunk embedded alone. Then, given the model's ``PassShape``, the
group's forward batches, padded, with the chunk row of every position for late pooling
(``late_batches``). The result (``PreparedGroup``) is plain numpy arrays, so a ``Preparer`` runs
as well in a worker process as in the caller's thread (``lc_utils.workers``) while the model is
busy with the group before; the caller only runs the batches and adds up the states.

The work that each document needs alone (``Preparer.prepare_documents``) is split from what a
whole group needs (``Preparer.combine``: its records and batches), so that several workers can
prepare parts of one group and the result is the same as one call over it.

One tokenization serves everything: fixed chunks are cut from the same token offsets that late
pooling uses, the tokens of a whole group go through the tokenizer's Rust backend in one batched
call, and a naive chunk reuses its document's tokens wherever that is provably what tokenizing the
chunk alone would give (``_reusable``); the other chunks are tokenized together in one more call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..models.batching import PackedBatch, PassShape, TextStats, pack_jobs, text_jobs
from ..text.chunking import Chunk, fixed_spans, sentence_chunk_spans, validate_chunks
from ..text.strategies import chunk_text, chunking_label
from ..text.tokens import (
    TokenizedDocument,
    check_encodable,
    encode_texts,
    mostly_unknown,
    token_spans,
    tokenize_documents,
    word_local,
)
from .pooling import LateBatches, late_batches

__all__ = [
    "Preparer",
    "PreparedDocument",
    "PreparedGroup",
    "chunk_records",
    "name_document",
    "split_group",
]

# The named strategies whose spans the preparer computes as arrays, with no Chunk objects.
_ARRAY_STRATEGIES = ("fixed", "sentences")


@dataclass
class PreparedDocument:
    """One document, ready for the model.

    Attributes:
        doc_id: the document's id.
        spans: int64 ``(n_chunks, 2)``, character spans of the chunks that hold a token.
        token_spans: int64 ``(n_chunks, 2)``, their half-open token spans.
        input_ids: int32 content ids of the whole document (its prefix included), for late
            chunking; empty for the naive method, which does not need them.
        n_tokens: how many tokens the document has.
    """

    doc_id: str
    spans: np.ndarray
    token_spans: np.ndarray
    input_ids: np.ndarray
    n_tokens: int


@dataclass
class PreparedGroup:
    """A group of prepared documents, in input order.

    Attributes:
        documents: one ``PreparedDocument`` per input document.
        skipped: ``(doc_id, chunk_index, start, end)`` of chunks left out for holding no token.
        n_unknown: late chunks that are mostly the unknown token (for the warning).
        naive_ids: int32, the ids of every kept chunk embedded alone (prefix included),
            concatenated in record order; ``naive_bounds[i]:naive_bounds[i + 1]`` is chunk i's.
        reused: naive chunks whose ids were taken from their document's tokens.
        late: the late method's batches (``Preparer.shape`` given), else None.
        naive: the naive method's batches, one job per kept chunk in record order, and what
            the model's warnings need (``Preparer.shape`` given), else None.
        records: the chunk records (``chunk_records``), built with the batches by the worker
            that prepared the group (``Preparer.shape`` given), so that the model's thread need
            not; else None, as for a group that ``regroup`` rebuilt without the texts.
    """

    documents: list[PreparedDocument]
    skipped: list[tuple] = field(default_factory=list)
    n_unknown: int = 0
    naive_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    naive_bounds: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    reused: int = 0
    late: LateBatches | None = None
    naive: tuple[list[PackedBatch], TextStats] | None = None
    records: list[dict] | None = None

    def naive_chunk_ids(self) -> list[np.ndarray]:
        """The naive ids split per chunk (views into ``naive_ids``)."""
        bounds = self.naive_bounds
        return [self.naive_ids[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def chunk_records(documents: Sequence[PreparedDocument], texts: Sequence[str]) -> list[dict]:
    """One record per kept chunk, in document order: ``doc_id``, ``chunk_index`` (among the
    document's kept chunks), half-open character ``start`` and ``end``, and the chunk's
    ``text``; ``texts`` are the documents' texts, in the same order."""
    records = []
    for document, text in zip(documents, texts, strict=True):
        doc_id = document.doc_id
        for index, (a, b) in enumerate(document.spans.tolist()):
            records.append(
                {"doc_id": doc_id, "chunk_index": index, "start": a, "end": b, "text": text[a:b]}
            )
    return records


def _concatenate(parts: Sequence[PreparedGroup]) -> PreparedGroup:
    """Parts of a group, prepared apart (``Preparer.prepare_documents``), as one group."""
    ids = [part.naive_ids for part in parts]
    lengths = [np.diff(part.naive_bounds) for part in parts]
    return PreparedGroup(
        [document for part in parts for document in part.documents],
        [chunk for part in parts for chunk in part.skipped],
        sum(part.n_unknown for part in parts),
        np.concatenate(ids).astype(np.int32, copy=False),
        np.concatenate([np.zeros(1, np.int64), np.cumsum(np.concatenate(lengths))]),
        sum(part.reused for part in parts),
    )


def split_group(group: Sequence, parts: int) -> list[Sequence]:
    """``group`` cut into at most ``parts`` consecutive, non-empty runs of about equal text
    (what ``Preparer.prepare_documents`` costs grows with it); ``[group]`` for one part."""
    if parts <= 1 or len(group) <= 1:
        return [group]
    # before[c]: the characters of the first c documents; each cut is the c nearest its target.
    before = np.concatenate(([0], np.cumsum([len(text) for _, text, _ in group])))
    targets = before[-1] * np.arange(1, parts) / parts
    above = np.maximum(np.searchsorted(before, targets, side="left"), 1)
    nearer_below = targets - before[above - 1] <= before[np.minimum(above, len(group))] - targets
    cuts = np.unique(np.clip(np.where(nearer_below, above - 1, above), 1, len(group) - 1))
    bounds = [0, *cuts.tolist(), len(group)]
    return [group[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def name_document(error: Exception, doc_id: str) -> Exception:
    """``error`` with its message prefixed by the document it came from, same type; for a type
    that cannot be rebuilt from a message, the original with a note naming the document."""
    message = f"document {doc_id!r}: {error}"
    try:
        named = type(error)(message)
    except Exception:  # an exception class with a signature of its own
        error.add_note(f"(in document {doc_id!r})")
        return error
    named.__cause__ = error.__cause__
    return named


@dataclass
class Preparer:
    """Chunks, tokenizes and maps a group of documents: ``Preparer(...)(group)``.

    Attributes:
        tokenizer: the model's fast tokenizer.
        prefix: the model's document prefix (prepended before tokenizing).
        strategy: a ``chunk_text`` strategy name or a callable ``text -> list[Chunk]``.
        options: the strategy's options.
        method: ``"late"`` or ``"naive"``.
        unknown_id: the tokenizer's unknown-token id (None for byte-level tokenizers).
        shape: the model's ``PassShape``; given, the group's forward batches are built too.
        content_tokens: content tokens per pass: late chunking's windows, or where the naive
            method cuts a chunk (``model.window(...).content_tokens``); needed with ``shape``.
        overlap: late chunking's window overlap (None: the default).
    Each item of a group is ``(doc_id, text, chunks)``, with ``chunks`` None unless the caller
    gave them. An error names the document it came from.
    """

    tokenizer: object
    prefix: str
    strategy: str | Callable[[str], list[Chunk]]
    options: dict
    method: str
    unknown_id: int | None = None
    shape: PassShape | None = None
    content_tokens: int | None = None
    overlap: int | None = None
    _reusable: bool | None = field(default=None, repr=False)

    def __call__(self, group: Sequence[tuple[str, str, Sequence | None]]) -> PreparedGroup:
        return self.combine(group, [self.prepare_documents(group)])

    def prepare_documents(self, group: Sequence[tuple[str, str, Sequence | None]]) -> PreparedGroup:
        """The work of ``__call__`` that each document needs alone (chunking, tokenizing, span
        mapping, naive ids), without the records and batches, which belong to a whole group:
        ``combine`` of the results for consecutive parts of a group is ``__call__`` of it."""
        for doc_id, text, _ in group:
            try:
                check_encodable(text)
            except (TypeError, ValueError) as error:
                raise name_document(error, doc_id) from None
        texts = [text for _, text, _ in group]
        naive = self.method == "naive"
        if naive and self._reusable is None:
            self._reusable = not self.prefix and word_local(self.tokenizer)
        tokens = tokenize_documents(
            self.tokenizer, texts, self.prefix, words=naive and bool(self._reusable)
        )
        named = None if callable(self.strategy) else self.strategy
        if named in _ARRAY_STRATEGIES:  # the options' names and the size's type, once per group
            chunking_label(named, **self.options)
        fixed = named == "fixed"
        plain = tokens
        if fixed and self.prefix:  # fixed chunks count the text's own tokens, without a prefix
            plain = tokenize_documents(self.tokenizer, texts)
        out = PreparedGroup([])
        pending: list[tuple[int, str]] = []  # (record row, chunk text) to tokenize alone
        reused: list[tuple[int, np.ndarray]] = []
        row = 0
        for (doc_id, text, given), document, own in zip(group, tokens, plain, strict=True):
            try:
                spans = self._spans(text, given, own, fixed)
            except Exception as error:  # a user's chunker may raise anything; say where
                named = name_document(error, doc_id)
                if named is error:
                    raise
                raise named from error
            in_tokens = token_spans(document.starts, spans)
            has_tokens = in_tokens[:, 1] > in_tokens[:, 0]
            for i in np.flatnonzero(~has_tokens):
                out.skipped.append((doc_id, int(i), int(spans[i, 0]), int(spans[i, 1])))
            spans, in_tokens = spans[has_tokens], in_tokens[has_tokens]
            if naive:
                local = self._reusable_chunks(document, spans, in_tokens)
                for k, (a, b) in enumerate(spans.tolist()):
                    if local[k]:
                        a_token, b_token = in_tokens[k]
                        reused.append((row + k, document.input_ids[a_token:b_token]))
                    else:
                        pending.append((row + k, self.prefix + text[a:b]))
                ids = np.zeros(0, np.int32)
            else:
                ids = document.input_ids
                if self.unknown_id is not None:
                    out.n_unknown += int(mostly_unknown(ids, in_tokens, self.unknown_id).sum())
            row += len(spans)
            out.documents.append(PreparedDocument(doc_id, spans, in_tokens, ids, len(document)))
        if naive:
            self._gather_naive(out, row, reused, pending)
        return out

    def combine(
        self, group: Sequence[tuple[str, str, Sequence | None]], parts: Sequence[PreparedGroup]
    ) -> PreparedGroup:
        """One group from ``prepare_documents`` of its consecutive parts, in order; with
        ``shape``, its records and forward batches too (built here, for the whole group, so that
        they do not depend on how the group was cut)."""
        out = parts[0] if len(parts) == 1 else _concatenate(parts)
        if self.shape is not None:  # this group goes to a model next: its records with it
            out.records = chunk_records(out.documents, [text for _, text, _ in group])
            self._pack(out)
        return out

    def _pack(self, out: PreparedGroup) -> None:
        if self.method == "late":
            pairs = [(d.input_ids, d.token_spans) for d in out.documents]
            out.late = late_batches(pairs, self.content_tokens, self.overlap, self.shape)
        else:
            jobs, stats = text_jobs(out.naive_chunk_ids(), self.content_tokens, self.unknown_id)
            out.naive = (pack_jobs(jobs, self.shape), stats)

    def _spans(self, text: str, given, own: TokenizedDocument, fixed: bool) -> np.ndarray:
        # Fixed chunks (from the tokens) and sentences come as arrays, valid by construction.
        if given is None and fixed:
            return fixed_spans(text, own.starts, int(self.options.get("chunk_size", 64)))
        if given is None and self.strategy == "sentences":
            return sentence_chunk_spans(text, **self.options)
        if given is not None:
            chunks = list(given)
        elif callable(self.strategy):
            chunks = self.strategy(text)
        else:
            chunks = chunk_text(text, self.strategy, tokenizer=self.tokenizer, **self.options)
        return validate_chunks(text, chunks)

    def _reusable_chunks(
        self, document: TokenizedDocument, spans: np.ndarray, in_tokens: np.ndarray
    ) -> np.ndarray:
        """True for chunks whose ids alone equal their slice of the document's ids: the chunk's
        first token and the token after it both start words, no token runs into the chunk from
        before it, and its last token ends inside it."""
        if not self._reusable or document.word_starts is None or not len(spans):
            return np.zeros(len(spans), dtype=bool)
        words = np.append(document.word_starts, True)  # past the last token: a new word
        first, last = in_tokens[:, 0], in_tokens[:, 1]
        before = np.append(-1, document.ends)[first]  # the end of the token before the first
        inside = (before <= spans[:, 0]) & (document.ends[last - 1] <= spans[:, 1])
        return words[first] & words[last] & inside

    def _gather_naive(self, out: PreparedGroup, n_rows: int, reused, pending) -> None:
        pieces: list[np.ndarray | None] = [None] * n_rows
        for row, ids in reused:
            pieces[row] = ids
        if pending:
            rows, texts = zip(*pending, strict=True)
            for row, ids in zip(rows, encode_texts(self.tokenizer, list(texts)), strict=True):
                pieces[row] = ids
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        out.naive_bounds = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        out.naive_ids = (
            np.concatenate(pieces).astype(np.int32, copy=False) if pieces else np.zeros(0, np.int32)
        )
        out.reused = len(reused)

    def regroup(
        self,
        documents: Sequence[PreparedDocument],
        naive_ids: np.ndarray | None = None,
        naive_lengths: np.ndarray | None = None,
    ) -> PreparedGroup:
        """The ``PreparedGroup`` of documents prepared earlier, rebuilt without the tokenizer.

        For a process that received the prepared arrays from another (``lc.scale``'s embedding
        actors get them from the chunking tasks): ``documents`` as ``__call__`` made them, and
        for the naive method every kept chunk's ids, concatenated in record order, with each
        chunk's length. The unknown-token count is taken again from the ids, and the forward
        batches are packed for exactly these documents when ``shape`` is set, as ``__call__``
        does. ``skipped`` stays empty: the chunks without tokens were left out before.
        """
        out = PreparedGroup(list(documents))
        if self.method == "naive":
            lengths = np.zeros(0, np.int64) if naive_lengths is None else naive_lengths
            lengths = np.asarray(lengths, dtype=np.int64)
            ids = np.zeros(0, np.int32) if naive_ids is None else naive_ids
            out.naive_ids = np.asarray(ids, dtype=np.int32)
            out.naive_bounds = np.r_[0, np.cumsum(lengths)].astype(np.int64)
            n_chunks = sum(len(d.spans) for d in out.documents)
            if len(lengths) != n_chunks or int(out.naive_bounds[-1]) != len(out.naive_ids):
                raise ValueError(
                    f"{len(lengths)} naive chunk lengths (summing to {int(out.naive_bounds[-1])}) "
                    f"for {n_chunks} chunks and {len(out.naive_ids)} ids; they must agree"
                )
        elif self.unknown_id is not None:
            for document in out.documents:
                unknown = mostly_unknown(document.input_ids, document.token_spans, self.unknown_id)
                out.n_unknown += int(unknown.sum())
        if self.shape is not None:
            self._pack(out)
        return out
