"""Chunk and embed a whole corpus, late or naive, in batches with a progress bar.

The result pairs chunk records (document id, chunk index, character offsets, text) with a vector
matrix whose rows follow the records, ready for ``pandas.DataFrame(records)`` and for Milvus.

Introduced in notebook 05_milvus_validation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .late.naive import naive_chunking
from .late.pooling import pool_prepared, prepare_document
from .models.batching import NonFiniteStatesError
from .models.model import EmbeddingModel
from .progress import progress_bar
from .text.chunking import Chunk, check_integer
from .text.strategies import chunk_text, chunking_label
from .text.tokens import mostly_unknown, warn_unknown_chunks

__all__ = [
    "CorpusEmbeddings",
    "embed_corpus",
    "iter_embed_corpus",
    "iter_documents",
    "as_documents",
    "METHODS",
]

METHODS = ("late", "naive")


class DuplicateDocumentError(ValueError):
    """A document id appears more than once in the input; the message names it."""


@dataclass
class CorpusEmbeddings:
    """Chunk records and their vectors, row for row.

    Attributes:
        records: one dict per chunk with ``doc_id`` (str), ``chunk_index`` (int, 0-based within
            the document), ``start`` and ``end`` (half-open character offsets into the document)
            and ``text``.
        vectors: float32 ``(len(records), dim)``.
        method: ``"late"`` or ``"naive"``.
        model: the model's name.
        skipped: ``(doc_id, chunk_index, start, end)`` of chunks left out because they hold no
            model token (for example a chunk of only zero-width characters).
        chunking: how the documents were chunked, e.g. ``"fixed-64"`` or ``"sentences"`` (see
            ``chunking.chunking_label``); None when the chunks were given precomputed or by a
            function without a ``chunking=`` label. The Milvus store keys rows on it.
        doc_ids: every document embedded, in order, including any that gave no chunk, so that
            storing the corpus also clears such a document's old chunks.
    Introduced in notebook 05_milvus_validation.
    """

    records: list[dict]
    vectors: np.ndarray
    method: str
    model: str
    skipped: list[tuple] = field(default_factory=list)
    chunking: str | None = None
    doc_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def to_dataframe(self):
        """The records as a pandas DataFrame (vectors not included)."""
        import pandas as pd

        return pd.DataFrame(self.records, columns=["doc_id", "chunk_index", "start", "end", "text"])

    @classmethod
    def concatenate(cls, parts: Sequence[CorpusEmbeddings]) -> CorpusEmbeddings:
        """Join parts produced by ``iter_embed_corpus`` into one."""
        if not parts:
            raise ValueError("nothing to concatenate")
        for label in ("method", "model", "chunking"):
            values = {getattr(p, label) for p in parts}
            if len(values) > 1:
                raise ValueError(f"the parts have different {label}s {sorted(map(str, values))}")
        return cls(
            records=[r for p in parts for r in p.records],
            vectors=np.concatenate([p.vectors for p in parts]),
            method=parts[0].method,
            model=parts[0].model,
            skipped=[s for p in parts for s in p.skipped],
            chunking=parts[0].chunking,
            doc_ids=[d for p in parts for d in p.doc_ids],
        )


def iter_documents(documents) -> Iterator[tuple[str, str]]:
    """Yield ``(doc_id, text)`` pairs from any corpus form, checking each one lazily.

    Accepts a mapping ``{doc_id: text}``, or an iterable (a generator too) of ``(doc_id, text)``
    pairs or of strings (ids become ``"0"``, ``"1"``, ...). Raises as soon as an item is not a
    text or an id repeats, so a streamed corpus is checked without being held in memory.
    """
    if isinstance(documents, str):
        raise TypeError("documents must be a collection of texts, not one str; wrap it in a list")
    items = documents.items() if isinstance(documents, Mapping) else documents
    seen = set()
    for i, item in enumerate(items):
        if isinstance(item, str):
            doc_id, text = str(i), item
        elif isinstance(item, tuple | list) and len(item) == 2:
            doc_id, text = str(item[0]), item[1]
        else:
            raise TypeError(
                f"document {i} is {type(item).__name__}; expected a str or a (doc_id, text) pair"
            )
        if not isinstance(text, str):
            raise TypeError(f"document {doc_id!r} is a {type(text).__name__}, not a str")
        if doc_id in seen:
            raise DuplicateDocumentError(
                f"document id {doc_id!r} appears twice; ids must be unique"
            )
        seen.add(doc_id)
        yield doc_id, text


def as_documents(documents) -> list[tuple[str, str]]:
    """Normalise a corpus to ``[(doc_id, text), ...]``; see ``iter_documents``."""
    return list(iter_documents(documents))


def _groups(pairs: Iterator, size: int) -> Iterator[list]:
    group = []
    for pair in pairs:
        group.append(pair)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def chunker(strategy, tokenizer, options: dict) -> Callable[[str], list[Chunk]]:
    """``text -> list[Chunk]``: ``strategy`` itself if it is a callable, else ``chunk_text`` with
    that strategy, the model's tokenizer and ``options``."""
    if callable(strategy):
        return strategy
    return lambda text: chunk_text(text, strategy, tokenizer=tokenizer, **options)


def corpus_chunking(strategy, options: dict, chunks, chunking: str | None) -> str | None:
    """The chunking label of a corpus: derived from a named strategy, else the one given."""
    if chunking is not None and (not isinstance(chunking, str) or not chunking):
        raise ValueError(f"chunking={chunking!r}; must be a non-empty label such as 'fixed-64'")
    if chunks is not None or callable(strategy):
        return chunking
    derived = chunking_label(strategy, **options)
    if chunking is not None and chunking != derived:
        raise ValueError(
            f"chunking={chunking!r} contradicts strategy={strategy!r} with options {options}, "
            f"which is {derived!r}; leave chunking out to use that"
        )
    return derived


def _check_given_chunks(chunks, documents) -> None:
    if chunks is None:
        return
    if not isinstance(chunks, Mapping):
        raise TypeError(f"chunks is a {type(chunks).__name__}; expected {{doc_id: [Chunk, ...]}}")
    if isinstance(documents, Mapping):
        missing = [doc_id for doc_id in documents if doc_id not in chunks]
        if missing:
            raise ValueError(_missing_chunks_message(missing[0], len(missing)))


def _missing_chunks_message(doc_id: str, n_missing: int = 1) -> str:
    more = f" (and {n_missing - 1} more)" if n_missing > 1 else ""
    return (
        f"chunks has no entry for document {doc_id!r}{more}; give the chunks of every "
        "document, or leave chunks out to chunk with strategy="
    )


def iter_embed_corpus(
    model: EmbeddingModel,
    documents,
    *,
    method: str = "late",
    strategy: str | Callable[[str], list[Chunk]] = "sentences",
    chunk_options: dict | None = None,
    chunks: Mapping[str, Sequence[Chunk]] | None = None,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    documents_per_batch: int = 32,
    progress: bool = True,
    chunking: str | None = None,
    max_tokens: int | None = None,
) -> Iterator[CorpusEmbeddings]:
    """Like ``embed_corpus``, but yields one ``CorpusEmbeddings`` per group of documents.

    Memory stays bounded by ``documents_per_batch`` documents, so a corpus of any size can be
    streamed into Milvus (``store.ingest_batches``); every part carries the corpus's
    ``chunking`` label and its documents. Introduced in notebook 05_milvus_validation.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}; valid: {METHODS}")
    check_integer("documents_per_batch", documents_per_batch, minimum=1)
    _check_given_chunks(chunks, documents)
    label = corpus_chunking(strategy, chunk_options or {}, chunks, chunking)
    chunk = chunker(strategy, model.tokenizer, chunk_options or {})
    bar = None
    if progress:
        total = len(documents) if hasattr(documents, "__len__") else None
        bar = progress_bar(total, f"{method} chunking", "doc")
    try:
        settings = dict(
            method=method, chunk=chunk, given_chunks=chunks, window=window, overlap=overlap,
            batch_tokens=batch_tokens, label=label, progress=progress, max_tokens=max_tokens,
        )  # fmt: skip
        for group in _groups(iter_documents(documents), documents_per_batch):
            yield _embed_group(model, group, **settings)
            if bar is not None:
                bar.update(len(group))
    finally:
        if bar is not None:
            bar.close()


def _embed_group(
    model, group, *, method, chunk, given_chunks, window, overlap, batch_tokens, label, progress,
    max_tokens,
):  # fmt: skip
    records, prepared, skipped, n_unknown = [], [], [], 0
    for doc_id, text in group:
        if given_chunks is not None and doc_id not in given_chunks:
            raise ValueError(_missing_chunks_message(doc_id))
        doc_chunks = list(given_chunks[doc_id]) if given_chunks is not None else chunk(text)
        tokens, spans, token_spans = prepare_document(model, text, doc_chunks, strict=False)
        # Chunks without tokens are dropped for both methods alike, so that late and naive
        # results always hold the same records and can be compared row for row.
        has_tokens = token_spans[:, 1] > token_spans[:, 0]
        for i in np.flatnonzero(~has_tokens):
            skipped.append((doc_id, int(i), int(spans[i, 0]), int(spans[i, 1])))
        for index, (a, b) in enumerate(spans[has_tokens].tolist()):
            records.append(
                {"doc_id": doc_id, "chunk_index": index, "start": a, "end": b, "text": text[a:b]}
            )
        prepared.append((tokens, token_spans[has_tokens]))
        if method == "late":
            unknown_id = model.tokenizer.unk_token_id
            n_unknown += int(mostly_unknown(tokens.input_ids, prepared[-1][1], unknown_id).sum())
    if skipped:
        warnings.warn(
            f"{len(skipped)} chunk(s) hold no model token and were left out "
            f"(first: document {skipped[0][0]!r}, characters {skipped[0][2]}–{skipped[0][3]})",
            stacklevel=4,
        )
    shown = None if progress else False
    try:
        if method == "late":
            warn_unknown_chunks(n_unknown, len(records), model, stacklevel=4)
            # The group's token bar (shown for groups of many passes) is what moves while a
            # long group runs; the runner echoes it to the console.
            vectors = pool_prepared(model, prepared, window, overlap, batch_tokens, progress=shown)
            matrix = np.concatenate(vectors) if vectors else np.empty((0, model.dim), np.float32)
        else:
            texts = [r["text"] for r in records]
            matrix = naive_chunking(
                model, texts, max_tokens=max_tokens, batch_tokens=batch_tokens, progress=shown
            )
    except NonFiniteStatesError as error:
        # The pass knows its index in this group; the caller wants the document id.
        index = error.document
        doc_id = group[index][0] if method == "late" else records[index]["doc_id"]
        raise NonFiniteStatesError(
            error.model_name, error.document, error.what, f"document {doc_id!r}"
        ) from None
    doc_ids = [doc_id for doc_id, _ in group]
    return CorpusEmbeddings(
        records, matrix.astype(np.float32), method, model.name, skipped, label, doc_ids
    )


def embed_corpus(
    model: EmbeddingModel,
    documents: Mapping[str, str] | Iterable,
    *,
    method: str = "late",
    strategy: str | Callable[[str], list[Chunk]] = "sentences",
    chunk_options: dict | None = None,
    chunks: Mapping[str, Sequence[Chunk]] | None = None,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    documents_per_batch: int = 32,
    progress: bool = True,
    chunking: str | None = None,
    max_tokens: int | None = None,
) -> CorpusEmbeddings:
    """Chunk every document and embed its chunks, late or naive.

    Args:
        documents: ``{doc_id: text}``, ``[(doc_id, text), ...]`` or ``[text, ...]``.
        method: ``"late"`` (whole document, then pooling) or ``"naive"`` (each chunk alone).
        strategy / chunk_options: passed to ``chunk_text`` (``"sentences"``, ``"fixed"``,
            ``"paragraphs"``), or a callable ``text -> list[Chunk]``.
        chunks: precomputed chunks per document id, to reuse one chunking for both methods;
            every document needs an entry.
        chunking: a label for how the chunks were made, such as ``"fixed-64"`` (see
            ``chunking.chunking_label``). Derived from ``strategy`` and ``chunk_options`` when
            those make the chunks; give it with ``chunks`` or a callable ``strategy`` so that
            the corpus can be stored in Milvus, which keys rows on it.
        window / overlap: long-document windows for the late method (see ``late_chunking``).
        batch_tokens: padded tokens per forward batch.
        max_tokens: where the naive method cuts each chunk (see ``naive_chunking``; default the
            model's trained length where declared). Late chunking never cuts a chunk.
    Returns:
        ``CorpusEmbeddings`` with records in document order and float32 vectors row for row.
        Chunks holding no model token are left out (listed in ``.skipped``) for both methods.
    Introduced in notebook 05_milvus_validation.
    """
    parts = list(
        iter_embed_corpus(
            model,
            documents,
            method=method,
            strategy=strategy,
            chunk_options=chunk_options,
            chunks=chunks,
            window=window,
            overlap=overlap,
            batch_tokens=batch_tokens,
            documents_per_batch=documents_per_batch,
            progress=progress,
            chunking=chunking,
            max_tokens=max_tokens,
        )
    )
    if not parts:
        label = corpus_chunking(strategy, chunk_options or {}, chunks, chunking)
        empty = np.empty((0, model.dim), np.float32)
        return CorpusEmbeddings([], empty, method, model.name, chunking=label)
    return CorpusEmbeddings.concatenate(parts)
