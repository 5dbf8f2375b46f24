"""Comparing embedding methods (naive, late, ...) over the same chunks and queries.

Built on ``lc_utils.metrics`` (nDCG, recall, MRR and MAP at chunk and document level): paired
per-query differences with bootstrap intervals, the per-method comparison table
(``MethodComparison``), and the one-call naive-against-late evaluation that notebook 06 runs for
every chunking (``compare_naive_late``).

Introduced in notebook 06_retrieval_eval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .metrics import (
    DEFAULT_METRICS,
    LEVELS,
    _check_choice,
    _means,
    cosine_scores,
    document_scores,
    evaluate_per_query,
)

__all__ = [
    "paired_difference",
    "MethodComparison",
    "evaluate_methods",
    "within_document_cosine",
    "pool_records",
    "compare_naive_late",
]


def paired_difference(
    method_values,
    baseline_values,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int]:
    """Mean per-query difference ``method - baseline`` with a paired bootstrap interval.

    Both methods must have been scored on the same queries: the pairs are what make a small
    difference readable, since most of a metric's spread comes from how hard each query is.

    Args:
        method_values / baseline_values: per-query values of one metric (pandas Series indexed
            by query id, aligned on the index; or equally long arrays). Queries where either is
            NaN (no relevant item) are left out.
        n_resamples: bootstrap resamples of the queries, ``>= 1``.
        confidence: width of the percentile interval, in ``(0, 1)``.
        seed: seeds the resampling, so the interval is reproducible.
    Returns:
        ``{"mean", "low", "high"}`` (floats: the mean difference and its interval) and
        ``{"method_better", "baseline_better", "ties", "num_queries"}`` (counts of queries).
    Introduced in notebook 06_retrieval_eval.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}; expected >= 1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}; expected a number in (0, 1), e.g. 0.95")
    if isinstance(method_values, pd.Series) and isinstance(baseline_values, pd.Series):
        pairs = pd.concat([method_values, baseline_values], axis=1, join="inner").to_numpy(float)
    else:
        method_array = np.asarray(method_values, dtype=np.float64)
        baseline_array = np.asarray(baseline_values, dtype=np.float64)
        if method_array.shape != baseline_array.shape or method_array.ndim != 1:
            raise ValueError(
                f"method_values has shape {method_array.shape} and baseline_values "
                f"{baseline_array.shape}; pass two 1-D arrays of one value per query"
            )
        pairs = np.stack([method_array, baseline_array], axis=1)
    pairs = pairs[~np.isnan(pairs).any(axis=1)]
    if not len(pairs):
        raise ValueError(
            "no query has a value for both methods; were they evaluated on the same queries "
            "(pandas Series must share their query-id index)?"
        )
    difference = pairs[:, 0] - pairs[:, 1]
    rng = np.random.default_rng(seed)
    resampled = difference[rng.integers(0, len(difference), size=(n_resamples, len(difference)))]
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled.mean(axis=1), [tail, 1 - tail])
    return {
        "mean": float(difference.mean()),
        "low": float(low),
        "high": float(high),
        "method_better": int((difference > 0).sum()),
        "baseline_better": int((difference < 0).sum()),
        "ties": int((difference == 0).sum()),
        "num_queries": int(len(difference)),
    }


@dataclass
class MethodComparison:
    """Several sets of vectors for the same chunks (naive, late, ...), scored on the same queries.

    Attributes:
        query_ids: the queries, in the order of the score rows.
        records: the chunk records every method shares (``doc_id``, ``chunk_index``, ``start``,
            ``end``, ``text``), row for row with each method's vectors.
        chunk_qrels: ``{query_id: {chunk_key: grade}}``, the span judgments mapped to these
            chunks (``lc_utils.datasets.chunk_qrels``).
        doc_qrels: ``{query_id: {doc_id: grade}}`` used at document level.
        results: ``{method: {"chunk": {...}, "document": {...}}}``, the means of ``evaluate``
            at both levels, ready for ``metrics.json``.
        per_query: ``{method: {"chunk": DataFrame, "document": DataFrame}}`` as from
            ``evaluate_per_query``; a query with no relevant item at a level has NaN metrics.
        vectors: ``{method: float32 (len(records), dim)}``, the vectors that were scored.
    Introduced in notebook 06_retrieval_eval.
    """

    query_ids: list
    records: list[dict]
    chunk_qrels: dict
    doc_qrels: dict
    results: dict[str, dict[str, dict[str, float | int]]]
    per_query: dict[str, dict[str, pd.DataFrame]] = field(repr=False)
    vectors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def methods(self) -> list[str]:
        """The methods compared, in the order they were given."""
        return list(self.results)

    def _check(self, method: str, level: str) -> None:
        _check_choice(level, "level", LEVELS)
        if method not in self.per_query:
            raise KeyError(f"method {method!r} was not evaluated; evaluated: {self.methods}")

    def summary(
        self, columns: Sequence[str] = ("ndcg@10", "recall@10", "mrr", "map", "num_queries")
    ) -> pd.DataFrame:
        """One row per ``(level, method)``, one column per metric mean."""
        rows = {
            (level, method): self.results[method][level]
            for level in LEVELS
            for method in self.results
        }
        frame = pd.DataFrame(rows).T
        frame.index.names = ["level", "method"]
        missing = [c for c in columns if c not in frame]
        if missing:
            raise KeyError(f"no metric {missing}; recorded: {list(frame.columns)}")
        return frame[list(columns)]

    def difference(
        self,
        method: str = "late",
        baseline: str = "naive",
        *,
        metric: str = "ndcg@10",
        level: str = "chunk",
        n_resamples: int = 2000,
        seed: int = 0,
    ) -> dict[str, float | int]:
        """``paired_difference`` of one metric between two methods, query by query."""
        self._check(method, level)
        self._check(baseline, level)
        return paired_difference(
            self.per_query[method][level][metric],
            self.per_query[baseline][level][metric],
            n_resamples=n_resamples,
            seed=seed,
        )

    def by_kind(
        self,
        kind_of,
        *,
        metric: str = "ndcg@10",
        level: str = "chunk",
        method: str = "late",
        baseline: str = "naive",
    ) -> pd.DataFrame:
        """Mean of ``metric`` per kind of query, for two methods, with who wins how often.

        Args:
            kind_of: ``query_id -> kind``, e.g. ``lc_utils.datasets.query_kind``.
        Returns:
            One row per kind (in order of first appearance) and a last row ``"all"``, with
            columns ``queries``, ``<baseline>``, ``<method>``, ``difference``,
            ``<method> better`` and ``<baseline> better``. Queries without a relevant item at
            this level are left out.
        """
        self._check(method, level)
        self._check(baseline, level)
        pairs = pd.DataFrame(
            {
                baseline: self.per_query[baseline][level][metric],
                method: self.per_query[method][level][metric],
            }
        ).dropna()
        pairs["kind"] = [kind_of(q) for q in pairs.index]
        pairs["difference"] = pairs[method] - pairs[baseline]
        kinds = list(dict.fromkeys(pairs["kind"]))

        def row(part: pd.DataFrame) -> dict:
            return {
                "queries": len(part),
                baseline: part[baseline].mean(),
                method: part[method].mean(),
                "difference": part["difference"].mean(),
                f"{method} better": int((part["difference"] > 0).sum()),
                f"{baseline} better": int((part["difference"] < 0).sum()),
            }

        table = {kind: row(pairs[pairs["kind"] == kind]) for kind in kinds}
        table["all"] = row(pairs)
        # The transpose of mixed columns gives object dtype; restore counts and means.
        types = {"queries": int, f"{method} better": int, f"{baseline} better": int}
        types.update({baseline: float, method: float, "difference": float})
        return pd.DataFrame(table).T.astype(types).rename_axis("kind")


def _document_qrels_from_spans(qrels_spans: Mapping, doc_ids: set) -> dict:
    judged: dict = {}
    for query_id, spans in qrels_spans.items():
        grades: dict = {}
        for span in spans:
            grade = int(span[3]) if len(span) == 4 else 1
            if span[0] in doc_ids and grade > 0:
                grades[span[0]] = max(grades.get(span[0], 0), grade)
        judged[query_id] = grades
    return judged


def evaluate_methods(
    query_vectors,
    query_ids: Sequence,
    records: Sequence[Mapping],
    vectors: Mapping[str, np.ndarray],
    *,
    qrels_spans: Mapping,
    qrels_doc: Mapping | None = None,
    k: int | Sequence[int] = (1, 5, 10),
    metrics: Sequence[str] = DEFAULT_METRICS,
    min_overlap: int = 1,
) -> MethodComparison:
    """Score several sets of chunk vectors on the same queries, at chunk and document level.

    Every method is ranked by cosine similarity over the same chunk records, so differences come
    from the vectors alone. Chunks are judged by character overlap with the relevant spans
    (``lc_utils.datasets.chunk_qrels``); a document is scored by its best chunk.

    Args:
        query_vectors: float ``(len(query_ids), dim)``.
        query_ids: the id of each query vector.
        records: chunk records with ``doc_id``, ``chunk_index``, ``start``, ``end``, e.g.
            ``CorpusEmbeddings.records``; the same for every method.
        vectors: ``{method: float (len(records), dim)}``, rows following ``records``.
        qrels_spans: ``{query_id: [(doc_id, start, end[, grade]), ...]}``.
        qrels_doc: ``{query_id: {doc_id: grade}}``. ``None`` derives it from ``qrels_spans``,
            keeping only documents that appear in ``records``: the right choice when ``records``
            covers part of a corpus on purpose (documents left out are then not counted as
            missed). Given explicitly, it must only judge documents in ``records``.
        k, metrics: as in ``evaluate``.
        min_overlap: characters a chunk must share with a span to be relevant.
    Returns:
        ``MethodComparison``. Queries without a relevant chunk (or document) are left out of
        that level's means and counted in ``num_queries_without_relevant``.
    Introduced in notebook 06_retrieval_eval; notebook 04_naive_vs_late's comparison is the same
    computation for two methods.
    """
    from .datasets import chunk_keys, chunk_qrels

    records = [dict(r) for r in records]
    query_ids = list(query_ids)
    if not vectors:
        raise ValueError(
            "vectors is empty; pass {method: (n_chunks, dim) array}, e.g. naive and late"
        )
    for method, matrix in vectors.items():
        shape = np.shape(matrix)
        if len(shape) != 2 or shape[0] != len(records):
            raise ValueError(
                f"vectors[{method!r}] has shape {shape} but there are {len(records)} chunk "
                "records; give one row per record, in record order"
            )
    chunk_ids = chunk_keys(records)
    chunk_doc_ids = [r["doc_id"] for r in records]
    judged_chunks = chunk_qrels(qrels_spans, records, min_overlap=min_overlap)
    if qrels_doc is None:
        judged_docs = _document_qrels_from_spans(qrels_spans, set(chunk_doc_ids))
    else:
        judged_docs = {q: dict(v) for q, v in qrels_doc.items()}
    options = dict(k=k, metrics=metrics)
    results: dict = {}
    per_query: dict = {}
    for method, matrix in vectors.items():
        scores = cosine_scores(query_vectors, matrix)
        chunk_frame = evaluate_per_query(
            scores, judged_chunks, query_ids=query_ids, item_ids=chunk_ids, **options
        )
        doc_scores, doc_ids = document_scores(scores, chunk_doc_ids)
        doc_frame = evaluate_per_query(
            doc_scores, judged_docs, query_ids=query_ids, item_ids=doc_ids, **options
        )
        per_query[method] = {"chunk": chunk_frame, "document": doc_frame}
        results[method] = {
            "chunk": _means(chunk_frame, "skip"),
            "document": _means(doc_frame, "skip"),
        }
    stored = {method: np.asarray(matrix, dtype=np.float32) for method, matrix in vectors.items()}
    return MethodComparison(
        query_ids, records, judged_chunks, judged_docs, results, per_query, stored
    )


def within_document_cosine(records: Sequence[Mapping], vectors) -> pd.Series:
    """Mean cosine between the chunks of each document: how alike one document's vectors are.

    Late chunking mixes the whole document into every chunk, so its chunks resemble each other
    more than naive ones do; that helps a query about the document find any of its chunks and
    makes it harder to pick one chunk out of a long document.

    Args:
        records: chunk records with ``doc_id``, row for row with ``vectors``.
        vectors: float ``(len(records), dim)``.
    Returns:
        float64 Series indexed by ``doc_id`` (in order of first appearance): the mean cosine over
        all pairs of distinct chunks of the document. Documents with a single chunk are left out.
    Introduced in notebook 06_retrieval_eval.
    """
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2 or len(matrix) != len(records):
        raise ValueError(
            f"vectors has shape {matrix.shape} for {len(records)} records; give one row per record"
        )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms > 0, norms, 1.0)
    rows_of: dict = {}
    for row, record in enumerate(records):
        rows_of.setdefault(record["doc_id"], []).append(row)
    means = {}
    for doc, rows in rows_of.items():
        if len(rows) < 2:
            continue
        # The sum over all pairs from the sum vector, so a long document needs no n x n matrix.
        total = unit[rows].sum(axis=0)
        squared = (unit[rows] ** 2).sum()
        means[doc] = float((total @ total - squared) / (len(rows) * (len(rows) - 1)))
    return pd.Series(means, dtype=np.float64, name="within_document_cosine")


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
    Introduced in notebook 06_retrieval_eval.
    """
    from .late import pool_spans, token_spans

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


def compare_naive_late(
    model,
    documents,
    chunks: Mapping[str, Sequence],
    queries: Mapping[str, str],
    *,
    qrels_spans: Mapping,
    qrels_doc: Mapping | None = None,
    window: int | None = None,
    overlap: int | None = None,
    encoded: Mapping | None = None,
    query_vectors=None,
    k: int | Sequence[int] = (1, 5, 10),
    batch_tokens: int | None = None,
    progress: bool = True,
) -> MethodComparison:
    """Embed the same chunks naive and late, and score both methods on the same queries.

    Args:
        model: from ``load_model``.
        documents: ``{doc_id: text}`` (or anything ``as_documents`` accepts).
        chunks: ``{doc_id: [Chunk, ...]}``, the one chunking both methods get.
        queries: ``{query_id: text}``.
        qrels_spans / qrels_doc: as in ``evaluate_methods``.
        window / overlap: late chunking's windows for long documents (see ``late_chunking``).
        encoded: ``{doc_id: DocumentEmbedding}`` from ``encode_document``, to pool the late
            vectors from token embeddings computed once for several chunkings (``pool_records``)
            instead of running the model again; its window plan then applies, so ``window``
            and ``overlap`` must be left at ``None``.
        query_vectors: float ``(len(queries), dim)`` in the order of ``queries``, to reuse
            query embeddings across calls; ``None`` embeds the queries.
        k, batch_tokens, progress: cutoffs, forward batch size, progress bars.
    Returns:
        ``MethodComparison`` with methods ``"naive"`` and ``"late"`` (see ``evaluate_methods``).
        Chunks holding no model token are left out of both, as ``embed_corpus`` does.
    Introduced in notebook 06_retrieval_eval; it is also the comparison of 04_naive_vs_late.
    """
    from .corpus import embed_corpus
    from .late import embed_queries

    if encoded is not None and (window is not None or overlap is not None):
        raise ValueError(
            f"window={window} and overlap={overlap} given together with encoded, whose window "
            "plan is already fixed; pass them to encode_document instead, or drop encoded"
        )
    common = dict(chunks=chunks, batch_tokens=batch_tokens, progress=progress)
    naive = embed_corpus(model, documents, method="naive", **common)
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
        qrels_spans=qrels_spans,
        qrels_doc=qrels_doc,
        k=k,
    )
