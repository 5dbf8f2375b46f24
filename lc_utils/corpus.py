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

from .late.pooling import pool_packed_table
from .late.prepare import PreparedGroup, Preparer, chunk_records, split_group
from .late.windows import plan_windows
from .models.batching import NonFiniteStatesError, PassShape
from .models.model import EmbeddingModel, Window
from .progress import progress_bar
from .text.chunking import Chunk, check_integer
from .text.strategies import chunking_label
from .text.tokens import warn_unknown_chunks
from .workers import default_workers, ordered_split_map

__all__ = [
    "CorpusEmbeddings",
    "embed_corpus",
    "iter_embed_corpus",
    "embed_prepared",
    "corpus_preparer",
    "iter_documents",
    "as_documents",
    "windowing",
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
        window / overlap: the pass shape the vectors were made with, defaults resolved
            (``windowing``): positions per pass, special tokens included (late chunking's
            document windows, or where naive chunking cuts each chunk), and the tokens
            consecutive late windows share (0 for naive). None when not known. The Milvus store
            keeps both on every row, so that a re-run of ``lc.scale.embed_to_milvus`` with
            other windows embeds the documents again instead of skipping them.
    Introduced in notebook 05_milvus_validation.
    """

    records: list[dict]
    vectors: np.ndarray
    method: str
    model: str
    skipped: list[tuple] = field(default_factory=list)
    chunking: str | None = None
    doc_ids: list[str] = field(default_factory=list)
    window: int | None = None
    overlap: int | None = None

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
        for label in ("method", "model", "chunking", "window", "overlap"):
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
            window=parts[0].window,
            overlap=parts[0].overlap,
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


def windowing(
    model: EmbeddingModel,
    method: str = "late",
    window: int | None = None,
    overlap: int | None = None,
    max_tokens: int | None = None,
) -> tuple[int, int]:
    """``(positions, overlap)`` of ``embed_corpus`` with these arguments, defaults resolved.

    ``positions`` is ``model.window(...).positions`` of ``window`` (late) or ``max_tokens``
    (naive); ``overlap`` is the late windows' overlap (``plan_windows``'s default when None) and
    0 for naive, which has no windows. Over the same chunks, two runs with equal answers give
    the same vectors; ``lc.scale.embed_to_milvus`` compares them with what each stored row was
    made with. Raises ``ValueError`` as ``embed_corpus`` would for a bad window or overlap.
    """
    shape, shared = _resolved_pass(model, method, window, overlap, max_tokens)
    return shape.positions, shared


def _resolved_pass(model, method, window, overlap, max_tokens):
    """``(model.window(...), overlap)``: the pass ``embed_corpus`` runs (late chunking's windows,
    or where naive chunking cuts a chunk) and the resolved overlap (0 for naive)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}; valid: {METHODS}")
    if method == "naive":
        return model.window(max_tokens, argument="max_tokens"), 0
    shape = model.window(window, argument="window")
    return shape, plan_windows(0, shape.content_tokens, overlap).overlap


def corpus_preparer(
    model: EmbeddingModel,
    method: str = "late",
    strategy: str | Callable[[str], list[Chunk]] = "sentences",
    chunk_options: dict | None = None,
    *,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    max_tokens: int | None = None,
) -> Preparer:
    """The ``Preparer`` that ``embed_corpus`` runs with these arguments: the model's tokenizer,
    prefix and unknown token, its pass shape for ``batch_tokens``, and the resolved window.

    ``lc.scale`` builds its chunking tasks' and embedding actors' preparers here too, so that
    what they prepare is what ``embed_corpus`` would. Raises ``ValueError`` for a bad method,
    window, overlap or batch budget.
    """
    shape, _ = _resolved_pass(model, method, window, overlap, max_tokens)
    return Preparer(
        model.tokenizer, model.document_prefix, strategy, dict(chunk_options or {}), method,
        model.tokenizer.unk_token_id, PassShape.of(model, batch_tokens), shape.content_tokens,
        overlap,
    )  # fmt: skip


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
    workers: int | None = None,
) -> Iterator[CorpusEmbeddings]:
    """Like ``embed_corpus``, but yields one ``CorpusEmbeddings`` per group of documents.

    Memory stays bounded by ``documents_per_batch`` documents (times the groups in flight: at
    most ``2 * workers``, or one with ``workers=0``), so a corpus of any size can be streamed
    into Milvus (``store.ingest_batches``); every part carries the corpus's ``chunking`` label
    and its documents. Introduced in notebook 05_milvus_validation.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}; valid: {METHODS}")
    check_integer("documents_per_batch", documents_per_batch, minimum=1)
    _check_given_chunks(chunks, documents)
    options = dict(chunk_options or {})
    label = corpus_chunking(strategy, options, chunks, chunking)
    # The window and the batch budget are checked here, once, before any worker starts.
    shape, shared = _resolved_pass(model, method, window, overlap, max_tokens)
    resolved = (shape.positions, shared)
    preparer = corpus_preparer(
        model, method, strategy, options, window=window, overlap=overlap,
        batch_tokens=batch_tokens, max_tokens=max_tokens,
    )  # fmt: skip
    workers = _workers_for(workers, strategy, options, documents, documents_per_batch)
    bar = None
    if progress:
        total = len(documents) if hasattr(documents, "__len__") else None
        bar = progress_bar(total, f"{method} chunking", "doc")
    settings = dict(method=method, label=label, progress=progress, window=shape, resolved=resolved)
    groups = _groups(_with_given_chunks(iter_documents(documents), chunks), documents_per_batch)
    try:
        # While the model embeds one group, the workers prepare the next ones.
        # With two or more workers a group is prepared in parts, one per worker, and combined
        # by the worker that finishes its last part, so that the stream's last group (or a
        # corpus of one group) keeps every worker busy; the result is the same.
        stream = ordered_split_map(
            lambda group: split_group(group, workers), preparer.prepare_documents,
            preparer.combine, groups, workers,
        )  # fmt: skip
        for group, prepared in stream:
            pairs = [(doc_id, text) for doc_id, text, _ in group]
            yield _embed_group(model, pairs, prepared, **settings)
            if bar is not None:
                bar.update(len(group))
    finally:
        if bar is not None:
            bar.close()


def _with_given_chunks(pairs: Iterator[tuple[str, str]], chunks) -> Iterator[tuple]:
    for doc_id, text in pairs:
        if chunks is None:
            yield doc_id, text, None
        elif doc_id not in chunks:
            raise ValueError(_missing_chunks_message(doc_id))
        else:
            yield doc_id, text, list(chunks[doc_id])


def _workers_for(workers, strategy, options: dict, documents, documents_per_batch: int) -> int:
    """How many workers prepare the documents: ``workers`` if given; else none for a corpus of
    one group (a pool would cost more than it saves) and ``default_workers()`` otherwise. The
    semantic chunker runs the model, so it always prepares in the caller's thread."""
    if strategy == "semantic" or any(isinstance(v, EmbeddingModel) for v in options.values()):
        return 0
    if workers is not None:
        return check_integer("workers", workers, minimum=0)
    if hasattr(documents, "__len__") and len(documents) <= documents_per_batch:
        return 0
    return default_workers()


def embed_prepared(
    model: EmbeddingModel,
    documents: Sequence[tuple[str, str]],
    prepared: PreparedGroup,
    *,
    method: str = "late",
    window: int | None = None,
    overlap: int | None = None,
    max_tokens: int | None = None,
    chunking: str | None = None,
    progress: bool = False,
) -> CorpusEmbeddings:
    """Embed one group of documents that a ``Preparer`` has already chunked, tokenized and
    packed: the model's side of ``iter_embed_corpus``, which calls the same code per group.

    ``documents`` are the group's ``(doc_id, text)`` pairs in the order of
    ``prepared.documents``; ``prepared`` comes from ``corpus_preparer(...)`` called on them, or
    from its ``regroup`` of documents prepared in another process (``lc.scale``'s actors get
    them from the chunking tasks, and never tokenize). ``method``, ``window``, ``overlap`` and
    ``max_tokens`` must be those the preparer was built with. The result, warnings included,
    is what ``embed_corpus`` gives for the group. Raises ``ValueError`` for a group packed for
    the other method, or not packed (a ``Preparer`` without ``shape``).
    """
    shape, shared = _resolved_pass(model, method, window, overlap, max_tokens)
    if (prepared.late if method == "late" else prepared.naive) is None:
        raise ValueError(
            f"the prepared group holds no {method} batches; prepare it with "
            f"corpus_preparer(model, method={method!r}, ...), which packs them"
        )
    return _embed_group(
        model, list(documents), prepared, method=method, label=chunking, progress=progress,
        window=shape, resolved=(shape.positions, shared), stacklevel=3,
    )  # fmt: skip


def _embed_group(
    model,
    group,
    prepared: PreparedGroup,
    *,
    method: str,
    label: str | None,
    progress: bool,
    window: Window,
    resolved: tuple[int, int],
    stacklevel: int = 4,
) -> CorpusEmbeddings:
    """The model's side of one group, shared by ``iter_embed_corpus`` and ``embed_prepared``:
    records, warnings, the forward passes and pooling. ``stacklevel`` counts from here, as
    ``warnings.warn`` does: the warnings point at the caller of ``embed_corpus`` (4) or of
    ``embed_prepared`` (3)."""
    records = prepared.records
    if records is None:  # a group regrouped without its texts
        texts = dict(group)
        records = chunk_records(prepared.documents, [texts[d.doc_id] for d in prepared.documents])
    # Chunks without tokens are dropped for both methods alike, so that late and naive results
    # always hold the same records and can be compared row for row.
    skipped = prepared.skipped
    if skipped:
        warnings.warn(
            f"{len(skipped)} chunk(s) hold no model token and were left out "
            f"(first: document {skipped[0][0]!r}, characters {skipped[0][2]}–{skipped[0][3]})",
            stacklevel=stacklevel,
        )
    shown = None if progress else False
    try:
        if method == "late":
            warn_unknown_chunks(prepared.n_unknown, len(records), model, stacklevel=stacklevel)
            # The group's token bar (shown for groups of many passes) is what moves while a
            # long group runs; the runner echoes it to the console.
            matrix = pool_packed_table(model, prepared.late, progress=shown)
        else:
            batches, stats = prepared.naive
            model.warn_encoded(stats, window, "chunks", stacklevel=stacklevel + 1)
            model.use_role("document")
            matrix = model.encode_packed(batches, len(records), progress=shown, what="chunks")
    except NonFiniteStatesError as error:
        # The pass knows its index in this group; the caller wants the document id.
        index = error.document
        doc_id = group[index][0] if method == "late" else records[index]["doc_id"]
        raise NonFiniteStatesError(
            error.model_name, error.document, error.what, f"document {doc_id!r}"
        ) from None
    doc_ids = [doc_id for doc_id, _ in group]
    return CorpusEmbeddings(
        records, matrix.astype(np.float32, copy=False), method, model.name, skipped, label, doc_ids,
        *resolved,
    )  # fmt: skip


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
    workers: int | None = None,
) -> CorpusEmbeddings:
    """Chunk every document and embed its chunks, late or naive.

    Args:
        documents: ``{doc_id: text}``, ``[(doc_id, text), ...]`` or ``[text, ...]``.
        method: ``"late"`` (whole document, then pooling) or ``"naive"`` (each chunk alone).
        strategy / chunk_options: passed to ``chunk_text`` (``"sentences"``, ``"fixed"``,
            ``"paragraphs"``), or a callable ``text -> list[Chunk]``, which runs in the worker
            threads (pass ``workers=0`` if it calls the model itself).
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
        workers: how many threads chunk and tokenize the next groups of documents while the
            model embeds the current one (``lc_utils.workers``); 0 does it in this thread, one
            group after another. Default: 0 for a corpus of one group, else the CPUs this
            process may use (at most 8). The result is the same for any number.
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
            workers=workers,
        )
    )
    if not parts:
        label = corpus_chunking(strategy, chunk_options or {}, chunks, chunking)
        empty = np.empty((0, model.dim), np.float32)
        positions, shared = windowing(model, method, window, overlap, max_tokens)
        return CorpusEmbeddings(
            [], empty, method, model.name, chunking=label, window=positions, overlap=shared
        )
    return CorpusEmbeddings.concatenate(parts)
