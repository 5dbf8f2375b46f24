"""Running methods over one retrieval task: the model runs behind every comparison.

Every comparison takes a ``RetrievalTask`` (``lc_utils.datasets``): its documents, queries and
judgments. ``compare_naive_late`` embeds a task's corpus both ways and scores it
(``lc_utils.eval.scoring``);
``compare_chunkings`` does so for several chunkings, from one forward pass per document
(``encode_documents``); ``evaluate_document_vectors`` scores one vector per document; and
``compare_window_plans`` pools the long documents again under another window plan.

Introduced in notebook 04_naive_vs_late.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from ..corpus import embed_corpus
from ..datasets.task import RetrievalTask
from ..late.naive import embed_queries, naive_chunking
from ..late.pooling import encode_document, pool_records
from ..progress import progress_bar
from ..text.tokens import tokenize_document
from ..vectors import cosine_scores
from .metrics import evaluate_per_query, mean_metrics
from .scoring import DocumentVectorBaseline, MethodComparison, evaluate_methods

__all__ = [
    "TRUNCATION_WARNING",
    "compare_naive_late",
    "encode_documents",
    "compare_chunkings",
    "evaluate_document_vectors",
    "compare_window_plans",
]

# What naive_chunking warns when a chunk is longer than the model takes; the studies count those
# chunks in their tables instead (``lc_utils.show.tables.chunk_lengths``).
TRUNCATION_WARNING = ".*were truncated"


def compare_naive_late(
    model,
    task: RetrievalTask,
    chunks: Mapping[str, Sequence],
    *,
    window: int | None = None,
    overlap: int | None = None,
    encoded: Mapping | None = None,
    query_vectors=None,
    k: int | Sequence[int] = (1, 5, 10),
    batch_tokens: int | None = None,
    progress: bool = True,
    max_tokens: int | None = None,
) -> MethodComparison:
    """Embed the same chunks naive and late, and score both methods on the same queries.

    Args:
        model: from ``load_model``.
        task: the documents, queries and judgments (``qrels_spans`` at chunk level,
            ``qrels_doc`` at document level, as in ``evaluate_methods``).
        chunks: ``{doc_id: [Chunk, ...]}``, the one chunking both methods get.
        window / overlap: late chunking's windows for long documents (see ``late_chunking``).
        encoded: ``{doc_id: DocumentEmbedding}`` from ``encode_document``, to pool the late
            vectors from token embeddings computed once for several chunkings (``pool_records``)
            instead of running the model again; its window plan then applies, so ``window``
            and ``overlap`` must be left at ``None``.
        query_vectors: float ``(len(task.queries), dim)`` in the order of ``task.queries``, to
            reuse query embeddings across calls; ``None`` embeds the queries.
        k, batch_tokens, progress: cutoffs, forward batch size, progress bars.
        max_tokens: where naive chunking cuts a chunk (``naive_chunking``'s default: the model's
            trained length); e.g. ``model.max_length`` to give naive chunks every position.
    Returns:
        ``MethodComparison`` with methods ``"naive"`` and ``"late"`` (see ``evaluate_methods``).
        Chunks holding no model token are left out of both, as ``embed_corpus`` does.
    Introduced in notebook 04_naive_vs_late.
    """
    if encoded is not None and (window is not None or overlap is not None):
        raise ValueError(
            f"window={window} and overlap={overlap} given together with encoded, whose window "
            "plan is already fixed; pass them to encode_document instead, or drop encoded"
        )
    documents, queries = task.documents, task.queries
    common = dict(chunks=chunks, batch_tokens=batch_tokens, progress=progress)
    naive = embed_corpus(model, documents, method="naive", max_tokens=max_tokens, **common)
    if encoded is not None:
        late_vectors = pool_records(encoded, naive.records)
    else:
        late = embed_corpus(
            model, documents, method="late", window=window, overlap=overlap, **common
        )
        if late.records != naive.records:  # pragma: no cover - embed_corpus drops chunks alike
            raise RuntimeError("naive and late runs produced different chunk records")
        late_vectors = late.vectors
    query_ids = list(queries)
    if query_vectors is None:
        query_vectors = embed_queries(
            model, [queries[q] for q in query_ids], batch_tokens=batch_tokens, progress=False
        )
    elif np.shape(query_vectors)[0] != len(query_ids):
        raise ValueError(
            f"query_vectors has {np.shape(query_vectors)[0]} rows for {len(query_ids)} queries; "
            "embed the queries in the order of the queries mapping"
        )
    return evaluate_methods(
        query_vectors,
        query_ids,
        naive.records,
        {"naive": naive.vectors, "late": late_vectors},
        qrels_spans=task.qrels_spans,
        qrels_doc=task.qrels_doc,
        k=k,
    )


def encode_documents(
    model,
    documents: Mapping[str, str],
    *,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    progress: bool = True,
) -> dict:
    """Token embeddings of every document, once, for pooling any number of chunkings later.

    Args:
        model: from ``load_model``.
        documents: ``{doc_id: text}``.
        window / overlap: the window plan for long documents (see ``late_chunking``).
        batch_tokens: padded tokens per forward batch.
        progress: a bar over the documents, and a token bar inside a document of many windows,
            both echoed to the runner's console (``lc_utils.progress``).
    Returns:
        ``{doc_id: DocumentEmbedding}`` in the order of ``documents``; feed it to
        ``compare_chunkings`` or ``pool_records``.
    """
    inner = None if progress else False  # encode_document shows a bar for many windows only
    bar = progress_bar(len(documents), "encoding documents", "doc", disable=not progress)
    encoded = {}
    try:
        for doc_id, text in documents.items():
            encoded[doc_id] = encode_document(
                model, text, window=window, overlap=overlap, batch_tokens=batch_tokens,
                progress=inner,
            )  # fmt: skip
            bar.update(1)
    finally:
        bar.close()
    return encoded


def compare_chunkings(
    model,
    task: RetrievalTask,
    chunkings: Mapping[str, Mapping[str, Sequence]],
    *,
    encoded: Mapping | None = None,
    query_vectors=None,
    k: int | Sequence[int] = (1, 5, 10),
    batch_tokens: int | None = None,
    max_tokens: int | None = None,
    progress: bool = True,
) -> dict[str, MethodComparison]:
    """``compare_naive_late`` for several chunkings of one corpus, on the same queries.

    With ``encoded`` (from ``encode_documents``) late chunking costs one forward pass for all
    chunkings; only naive chunking runs the model per chunking. Naive chunking truncates chunks
    longer than the model takes without a warning here: ``chunk_lengths`` counts them.

    Args:
        model, task, k, batch_tokens, max_tokens: as in ``compare_naive_late``.
        chunkings: ``{label: {doc_id: [Chunk, ...]}}``, e.g. from
            ``lc_utils.datasets.chunk_documents``.
        encoded: ``{doc_id: DocumentEmbedding}``; ``None`` runs late chunking per chunking.
        query_vectors: float ``(len(task.queries), dim)`` in the order of ``task.queries``;
            ``None`` embeds the queries once.
        progress: the bars of each chunking's runs (``compare_naive_late``), which the runner
            echoes to its console.
    Returns:
        ``{label: MethodComparison}`` in the order of ``chunkings``.
    Introduced in notebook 06_chunking_strategies.
    """
    if not chunkings:
        raise ValueError("chunkings is empty; pass {label: {doc_id: chunks}}, e.g. sentences")
    if query_vectors is None:
        query_vectors = embed_queries(
            model, list(task.queries.values()), batch_tokens=batch_tokens, progress=False
        )
    comparisons = {}
    for label, chunks in chunkings.items():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=TRUNCATION_WARNING)
            comparisons[label] = compare_naive_late(
                model,
                task,
                chunks,
                encoded=encoded,
                query_vectors=query_vectors,
                k=k,
                batch_tokens=batch_tokens,
                progress=progress,
                max_tokens=max_tokens,
            )
    return comparisons


def evaluate_document_vectors(
    model,
    task: RetrievalTask,
    query_vectors=None,
    *,
    k: int | Sequence[int] = (1, 5, 10),
    batch_tokens: int | None = None,
    progress: bool = True,
) -> DocumentVectorBaseline:
    """The no-chunking baseline: embed each document whole, as the model's pooling does.

    Every chunk of a document would share that vector and tie, so it gives no chunk ranking;
    it is compared with the document level of chunked methods (a document scored by its best
    chunk). Documents longer than the model takes are truncated, without a warning here: the
    result's ``token_coverage`` says how much of the corpus was seen.

    Args:
        model: from ``load_model``.
        task: the documents, queries and document judgments (``qrels_doc``).
        query_vectors: float ``(len(task.queries), dim)`` in the order of ``task.queries``;
            ``None`` embeds the queries.
        k, batch_tokens: cutoffs; padded tokens per forward batch.
        progress: a token bar over the documents' passes when there are many, echoed to the
            runner's console.
    Returns:
        ``DocumentVectorBaseline``.
    Introduced in notebook 06_chunking_strategies.
    """
    documents, query_ids = task.documents, task.query_ids
    if query_vectors is None:
        query_vectors = embed_queries(
            model, [task.queries[q] for q in query_ids], batch_tokens=batch_tokens, progress=False
        )
    doc_ids = list(documents)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TRUNCATION_WARNING)
        vectors = naive_chunking(
            model,
            [documents[d] for d in doc_ids],
            batch_tokens=batch_tokens,
            progress=None if progress else False,  # None: a bar for more than a few passes
        )
    scores = cosine_scores(query_vectors, vectors)
    per_query = evaluate_per_query(
        scores, task.qrels_doc, query_ids=query_ids, item_ids=doc_ids, k=k
    )
    content_tokens = model.window().content_tokens  # where naive chunking cut each document
    n_tokens = np.array([len(tokenize_document(model.tokenizer, documents[d])) for d in doc_ids])
    coverage = float(np.minimum(n_tokens, content_tokens).sum() / max(int(n_tokens.sum()), 1))
    return DocumentVectorBaseline(mean_metrics(per_query), per_query, coverage)


def compare_window_plans(
    comparison: MethodComparison,
    task: RetrievalTask,
    encoded: Mapping,
    query_vectors,
    *,
    name: str = "late, other windows",
    k: int | Sequence[int] = (1, 5, 10),
) -> MethodComparison:
    """Late chunking under another window plan, on the documents that plan was run on.

    The comparison's chunks of the documents in ``encoded`` are pooled again from ``encoded``
    (token embeddings under another window or overlap), and the three sets of vectors are scored
    on those documents alone: the naive and late vectors of ``comparison`` and the new ones.

    Args:
        comparison: from ``compare_naive_late`` or ``compare_chunkings``, with methods ``"naive"``
            and ``"late"``.
        task: the task ``comparison`` was scored on; its span judgments score the new vectors.
        encoded: ``{doc_id: DocumentEmbedding}`` under the other plan (``encode_documents``),
            for some or all of the comparison's documents.
        query_vectors: float ``(len(comparison.query_ids), dim)`` in that order.
        name: the method name of the new vectors.
        k: cutoffs.
    Returns:
        ``MethodComparison`` with methods ``"naive"``, ``"late"`` and ``name`` over the chunks of
        the documents in ``encoded``; documents outside it are not judged.
    Introduced in notebook 08_windows.
    """
    for method in ("naive", "late"):
        if method not in comparison.vectors:
            raise KeyError(f"comparison has no {method!r} vectors; it has {comparison.methods}")
    if name in ("naive", "late"):
        raise ValueError(f"name={name!r} is taken by the comparison's own methods; choose another")
    rows = [i for i, record in enumerate(comparison.records) if record["doc_id"] in encoded]
    if not rows:
        raise ValueError(
            f"none of the {len(encoded)} documents in encoded has chunks in the comparison; "
            "encode documents of the comparison's records"
        )
    records = [comparison.records[i] for i in rows]
    vectors = {
        "naive": comparison.vectors["naive"][rows],
        "late": comparison.vectors["late"][rows],
        name: pool_records(encoded, records),
    }
    return evaluate_methods(
        query_vectors, comparison.query_ids, records, vectors, qrels_spans=task.qrels_spans, k=k
    )
