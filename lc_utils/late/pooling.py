"""Late chunking: the whole document through the model once, then each chunk's tokens pooled.

* **Token to chunk.** Token ``t`` belongs to chunk ``i`` when the character position of its first
  non-whitespace character lies in the chunk's half-open span ``[start, end)``
  (``lc_utils.text.tokens``). Chunks are sorted and disjoint, so each chunk's tokens form a
  contiguous half-open *token span*. Special tokens ([CLS], [SEP], ...) belong to no chunk.
* **Pooling.** A chunk's vector is the mean of the final hidden states of its tokens. Pooling is
  a segment sum (``index_add_``) accumulated window by window (``lc_utils.late.windows``), so a
  million-token document never holds its whole token-embedding matrix.
* **Entry points.** ``late_chunking`` runs one document; ``lc_utils.corpus.embed_corpus`` a corpus.
  ``pool_spans`` pools one document's token embeddings, ``pool_records`` a corpus of encoded
  documents (``encode_document``), so one forward pass serves every chunking.

Introduced in notebooks 02_token_embeddings and 03_late_pooling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..models.batching import (
    NonFiniteStatesError,
    PackedBatch,
    PassShape,
    pack_jobs,
    run_jobs,
    run_packed,
)
from ..models.model import EmbeddingModel
from ..text.chunking import validate_chunks
from ..text.tokens import (
    TokenizedDocument,
    check_encodable,
    chunk_of_tokens,
    mostly_unknown,
    token_spans,
    tokenize_document,
    warn_unknown_chunks,
)
from .windows import WindowPlan, plan_windows, window_jobs

__all__ = [
    "DocumentEmbedding",
    "encode_document",
    "pool_spans",
    "prepare_document",
    "late_chunking",
    "pool_prepared",
    "LateBatches",
    "late_batches",
    "pool_packed",
    "pool_packed_table",
    "pool_records",
]


@dataclass
class DocumentEmbedding:
    """All content-token embeddings of one document, with offsets and the window plan.

    Attributes:
        token_embeddings: float32 ``(n_tokens, dim)`` final hidden states (no special tokens).
        tokens: the ``TokenizedDocument`` they belong to.
        plan: the ``WindowPlan`` that produced them.
    """

    token_embeddings: np.ndarray
    tokens: TokenizedDocument
    plan: WindowPlan


def encode_document(
    model: EmbeddingModel,
    text: str,
    *,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
) -> DocumentEmbedding:
    """Embed every token of ``text`` in context, in one pass or overlapping windows.

    Returns the full token-embedding matrix, which is what notebooks inspect. For pooling alone
    use ``late_chunking``, which never materialises this matrix. Introduced in notebook
    02_token_embeddings.
    """
    tokens = tokenize_document(model.tokenizer, text, model.document_prefix)
    content_tokens = model.window(window).content_tokens
    plan = plan_windows(len(tokens), content_tokens, overlap)
    out = np.empty((len(tokens), model.dim), dtype=np.float32)
    jobs = window_jobs(0, tokens, plan)
    model.use_role("document")
    for job, hidden in run_jobs(model, jobs, batch_tokens, progress, "encoding"):
        out[job.kept[0] : job.kept[1]] = hidden.cpu().numpy()
    keep = tokens.starts >= 0  # drop the tokens of a document prefix
    kept_tokens = TokenizedDocument(tokens.input_ids[keep], tokens.starts[keep], tokens.ends[keep])
    return DocumentEmbedding(out[keep], kept_tokens, plan)


def pool_spans(token_embeddings: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Mean of ``token_embeddings[a:b]`` for every half-open token span ``(a, b)``.

    Args:
        token_embeddings: float ``(n_tokens, dim)``.
        spans: int ``(n_chunks, 2)`` half-open token spans, each with ``a < b``.
    Returns:
        float32 ``(n_chunks, dim)``, via one cumulative sum (no loop over chunks or tokens).
    Introduced in notebook 03_late_pooling.
    """
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    lengths = spans[:, 1] - spans[:, 0]
    if (lengths <= 0).any():
        bad = int(np.flatnonzero(lengths <= 0)[0])
        raise ValueError(
            f"span {bad} covers tokens {spans[bad].tolist()}; every span must hold "
            "at least one token (start < end)"
        )
    cumulative = np.zeros((len(token_embeddings) + 1, token_embeddings.shape[1]), np.float64)
    np.cumsum(token_embeddings, axis=0, out=cumulative[1:])
    sums = cumulative[spans[:, 1]] - cumulative[spans[:, 0]]
    return (sums / lengths[:, None]).astype(np.float32)


def prepare_document(model: EmbeddingModel, text: str, chunks: Sequence, *, strict: bool = True):
    """Tokenize ``text`` and map its chunks to token spans: ``(tokens, char_spans, token_spans)``.

    With ``strict`` a chunk that holds no token raises ``ValueError`` naming it; otherwise its
    token span is empty (``a == b``). Introduced in notebook 03_late_pooling.
    """
    check_encodable(text)
    spans = validate_chunks(text, chunks)
    tokens = tokenize_document(model.tokenizer, text, model.document_prefix)
    in_tokens = token_spans(tokens.starts, spans)
    empty = np.flatnonzero(in_tokens[:, 1] <= in_tokens[:, 0])
    if strict and len(empty):
        i = int(empty[0])
        a, b = spans[i]
        raise ValueError(
            f"chunk {i} (characters {a}–{b}, {text[a:b][:40]!r}) contains no model token, so it "
            "has no late-chunking vector; merge it into a neighbouring chunk or drop it "
            f"({len(empty)} such chunk(s) in this document)"
        )
    return tokens, spans, in_tokens


def late_chunking(
    model: EmbeddingModel,
    text: str,
    chunks: Sequence,
    *,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Late chunking: embed the whole document once, then mean-pool each chunk's tokens.

    Args:
        model: from ``load_model``.
        text: the document.
        chunks: ``Chunk`` objects or ``(start, end)`` character spans of ``text``, sorted and
            disjoint (as ``chunk_text`` returns them).
        window: positions per forward pass, special tokens included (default
            ``model.window()``: the trained length where declared, else ``model.max_length``).
            Longer documents run in overlapping windows (``lc_utils.late.windows``).
        overlap: content tokens shared by consecutive windows (default: 1/16 of the content
            window).
        batch_tokens: padded tokens per forward batch (default 2048 on CPU, 65536 on GPU).
    Returns:
        float32 ``(len(chunks), model.dim)``. Chunk ``i``'s row is the mean of the final hidden
        states of the tokens whose first non-whitespace character lies in ``[start, end)``.
        Special tokens are excluded. A chunk holding no token raises ``ValueError`` naming it.
    Introduced in notebook 03_late_pooling.
    """
    tokens, _, in_tokens = prepare_document(model, text, chunks, strict=True)
    unknown = mostly_unknown(tokens.input_ids, in_tokens, model.tokenizer.unk_token_id)
    warn_unknown_chunks(int(unknown.sum()), len(in_tokens), model, stacklevel=2)
    return pool_prepared(model, [(tokens, in_tokens)], window, overlap, batch_tokens, progress)[0]


def pool_prepared(
    model: EmbeddingModel,
    prepared: Sequence[tuple[TokenizedDocument | np.ndarray, np.ndarray]],
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
) -> list[np.ndarray]:
    """Late-pool several prepared documents, with all their windows batched together.

    ``prepared`` holds ``(tokens, token_spans)`` per document, ``tokens`` a ``TokenizedDocument``
    (as from ``prepare_document``) or its content ids. The host side (``late_batches``) and the
    device side (``pool_packed``) are separate steps, so that a worker can do the first for the
    next documents while the model runs. Returns per document float32 ``(n_chunks, dim)``; rows
    of chunks without tokens are NaN.
    """
    shape = PassShape.of(model, batch_tokens)
    pooling = late_batches(prepared, model.window(window).content_tokens, overlap, shape)
    return pool_packed(model, pooling, progress)


@dataclass
class LateBatches:
    """The forward batches of a group of documents and where their states pool to.

    Attributes:
        batches: ``PackedBatch`` es whose ``rows`` say, per position, which row of the group's
            chunk-sum table it adds to; positions in no chunk (special tokens, padding, the
            overlap a window only reads) add to a spare last row.
        counts: int64 ``(n_chunks,)``, tokens per chunk, over the whole group.
        bases: int64 ``(n_documents + 1,)``, where each document's chunks start in the table.
    """

    batches: list[PackedBatch]
    counts: np.ndarray
    bases: np.ndarray


def late_batches(
    prepared: Sequence[tuple[TokenizedDocument | np.ndarray, np.ndarray]],
    content_tokens: int,
    overlap: int | None,
    shape: PassShape,
) -> LateBatches:
    """Host side of late pooling: windows, batches, padding, and each position's chunk row."""
    counts = [np.asarray(spans[:, 1] - spans[:, 0], dtype=np.int64) for _, spans in prepared]
    bases = np.r_[0, np.cumsum([len(c) for c in counts])].astype(np.int64)
    spare = int(bases[-1])
    jobs, owners = [], []
    for d, (tokens, spans) in enumerate(prepared):
        ids = tokens.input_ids if isinstance(tokens, TokenizedDocument) else tokens
        owner = chunk_of_tokens(len(ids), spans)
        owners.append(np.where(owner >= 0, owner + bases[d], spare).astype(np.int32))
        if len(ids):
            jobs.extend(window_jobs(d, ids, plan_windows(len(ids), content_tokens, overlap)))
    batches = pack_jobs(jobs, shape)
    n_before = len(shape.before)
    for batch in batches:
        # int64, the index type ``index_add_`` takes natively: an int32 index costs it a
        # conversion on the model's thread (177 against 225 us for a batch of 8 x 256 x 384).
        rows = np.full(batch.ids.shape, spare, dtype=np.int64)
        for r, job in enumerate(batch.jobs):
            first = n_before + job.keep_from
            c, d = job.kept
            rows[r, first : first + d - c] = owners[job.document][c:d]
        batch.rows = rows
    total = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    return LateBatches(batches, total, bases)


def pool_packed(
    model: EmbeddingModel, pooling: LateBatches, progress: bool | None = None
) -> list[np.ndarray]:
    """Device side of late pooling: run the batches and add each one's states into the chunk-sum
    table with one ``index_add_``, so the cost does not grow with the number of windows or
    documents. Returns per document float32 ``(n_chunks, dim)`` (views of one table,
    ``pool_packed_table``); rows of chunks without tokens are NaN."""
    means = pool_packed_table(model, pooling, progress)
    return np.split(means, pooling.bases[1:-1]) if len(pooling.bases) > 1 else []


def pool_packed_table(
    model: EmbeddingModel, pooling: LateBatches, progress: bool | None = None
) -> np.ndarray:
    """``pool_packed`` as one float32 ``(n_chunks, dim)`` table, every document's chunks in
    order (``pooling.bases`` says where each document's start)."""
    spare = len(pooling.counts)
    sums = torch.zeros((spare + 1, model.dim), device=model.device)
    model.use_role("document")
    batches = run_packed(model, pooling.batches, progress, "late chunking", check_finite=False)
    for batch, hidden, _ in batches:
        index = torch.from_numpy(batch.rows.reshape(-1)).to(model.device)
        sums.index_add_(0, index, hidden.reshape(-1, hidden.shape[-1]))
    # One check per group instead of one per batch: a NaN anywhere in a chunk's states is NaN in
    # its sum (and so in the sum of its row), and states outside every chunk reach no vector.
    finite = torch.isfinite(sums[:spare].sum(dim=1))
    if not bool(finite.all()):
        chunk = int((~finite).nonzero()[0, 0])
        document = int(np.searchsorted(pooling.bases, chunk, side="right") - 1)
        raise NonFiniteStatesError(model.name, document, "late chunking")
    # All chunks at once: the same elementwise division as per document, so the same bits.
    table = sums[:spare].cpu().numpy()
    means = (table / np.maximum(pooling.counts, 1)[:, None]).astype(np.float32)
    means[pooling.counts == 0] = np.nan
    return means


def pool_records(encoded: Mapping, records: Sequence[Mapping]) -> np.ndarray:
    """Late-chunking vectors of chunk records, pooled from token embeddings computed earlier.

    The forward pass of late chunking does not depend on the chunks: one pass over a document
    serves every chunking of it. Encoding a corpus once (``encode_document`` per document) and
    pooling each chunking here gives what ``embed_corpus(method="late")`` would give for each,
    at the cost of one forward pass instead of one per chunking (equal up to float rounding,
    since windows are batched differently).

    Args:
        encoded: ``{doc_id: DocumentEmbedding}`` from ``lc_utils.encode_document``, all with the
            same window plan settings.
        records: chunk records with ``doc_id``, ``start``, ``end`` (half-open characters), e.g.
            ``CorpusEmbeddings.records`` of the naive run, so both methods share the records.
    Returns:
        float32 ``(len(records), dim)``, row for row. A token belongs to the chunk whose span
        holds its first non-whitespace character, as in ``late_chunking``.
    """
    if not records:
        dims = {e.token_embeddings.shape[1] for e in encoded.values()}
        return np.empty((0, dims.pop() if len(dims) == 1 else 0), dtype=np.float32)
    rows_of: dict = {}
    for row, record in enumerate(records):
        rows_of.setdefault(record["doc_id"], []).append(row)
    missing = [doc for doc in rows_of if doc not in encoded]
    if missing:
        raise KeyError(
            f"records name document {missing[0]!r} ({len(missing)} such document(s)), which is "
            "not in encoded; encode every document of the records first"
        )
    dims = {encoded[doc].token_embeddings.shape[1] for doc in rows_of}
    if len(dims) != 1:
        raise ValueError(f"encoded documents have dimensions {sorted(dims)}; use one model")
    out = np.empty((len(records), dims.pop()), dtype=np.float32)
    for doc, rows in rows_of.items():
        embedding = encoded[doc]
        spans = np.array([(records[r]["start"], records[r]["end"]) for r in rows], np.int64)
        in_tokens = token_spans(embedding.tokens.starts, spans)
        empty = np.flatnonzero(in_tokens[:, 1] <= in_tokens[:, 0])
        if len(empty):
            row = rows[int(empty[0])]
            raise ValueError(
                f"record {row} (document {doc!r}, characters {records[row]['start']}–"
                f"{records[row]['end']}) holds no model token; take records from embed_corpus, "
                "which leaves such chunks out"
            )
        out[rows] = pool_spans(embedding.token_embeddings, in_tokens)
    return out
