"""Comparing embedding methods (naive, late, ...) over the same chunks and queries.

Built on ``lc_utils.metrics`` (nDCG, recall, MRR and MAP at chunk and document level) and on the
span judgments of ``lc_utils.judgments`` (re-exported here: ``chunk_key``, ``chunk_keys``,
``chunk_qrels``). It gives paired per-query differences with bootstrap intervals, the per-method
comparison table (``MethodComparison``), the one-call naive-against-late evaluation
(``compare_naive_late``) and the studies built on it: several chunkings from one forward pass
(``encode_documents``, ``compare_chunkings``), one vector per document
(``evaluate_document_vectors``) and another window plan for the long documents
(``compare_window_plans``).

Chunk-level judgments name chunks by **chunk key** ``"doc_id#chunk_index"``, the same for every
method; the store's ``chunk_ids`` are different things (hashed Milvus primary keys).

Introduced in notebook 04_naive_vs_late.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .judgments import chunk_key, chunk_keys, chunk_qrels
from .metrics import (
    DEFAULT_METRICS,
    LEVELS,
    document_scores,
    evaluate_per_query,
    mean_metrics,
)
from .vectors import cosine_scores, unit_vectors

__all__ = [
    "chunk_key",
    "chunk_keys",
    "chunk_qrels",
    "paired_difference",
    "MethodComparison",
    "evaluate_methods",
    "within_document_cosine",
    "row_cosine",
    "pool_records",
    "compare_naive_late",
    "encode_documents",
    "compare_chunkings",
    "chunk_lengths",
    "DocumentVectorBaseline",
    "evaluate_document_vectors",
    "compare_window_plans",
    "results_table",
    "kind_differences",
    "within_document_table",
    "relevant_text_differences",
]

# What naive_chunking warns when a chunk is longer than the model takes; the studies below count
# those chunks in their tables instead (``chunk_lengths``).
_TRUNCATION_WARNING = ".*were truncated"


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
    Introduced in notebook 11_paper_benchmarks.
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
            chunks (``chunk_qrels``).
        doc_qrels: ``{query_id: {doc_id: grade}}`` used at document level.
        results: ``{method: {"chunk": {...}, "document": {...}}}``, the means of ``evaluate``
            at both levels, ready for ``metrics.json``.
        per_query: ``{method: {"chunk": DataFrame, "document": DataFrame}}`` as from
            ``evaluate_per_query``; a query with no relevant item at a level has NaN metrics.
        vectors: ``{method: float32 (len(records), dim)}``, the vectors that were scored.
    Introduced in notebook 04_naive_vs_late.
    """

    query_ids: list
    records: list[dict]
    chunk_qrels: dict
    doc_qrels: dict
    results: dict[str, dict[str, dict[str, float | int]]]
    per_query: dict[str, dict[str, pd.DataFrame]] = field(repr=False)
    vectors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _text_of: dict | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def methods(self) -> list[str]:
        """The methods compared, in the order they were given."""
        return list(self.results)

    def _check(self, method: str, level: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"level={level!r}; valid: {LEVELS}")
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

    def differences(
        self,
        method: str = "late",
        baseline: str = "naive",
        *,
        metric: str = "ndcg@10",
        n_resamples: int = 2000,
        seed: int = 0,
    ) -> dict[str, dict[str, float | int]]:
        """``{level: difference(...)}`` for both levels, ready for ``metrics.json``."""
        return {
            level: self.difference(
                method, baseline, metric=metric, level=level, n_resamples=n_resamples, seed=seed
            )
            for level in LEVELS
        }

    def by_kind(
        self,
        kind_of: Callable | Mapping,
        *,
        metric: str = "ndcg@10",
        level: str = "chunk",
        method: str = "late",
        baseline: str = "naive",
    ) -> pd.DataFrame:
        """Mean of ``metric`` per kind of query, for two methods, with who wins how often.

        Args:
            kind_of: ``query_id -> kind``, a function (e.g. ``lc_utils.datasets.query_kind``)
                or a mapping; kinds may be any hashable value, such as tuples.
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
        lookup = kind_of.__getitem__ if isinstance(kind_of, Mapping) else kind_of
        pairs["kind"] = [lookup(q) for q in pairs.index]
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

        rows = [row(pairs[[k == kind for k in pairs["kind"]]]) for kind in kinds] + [row(pairs)]
        table = pd.DataFrame(
            rows, index=pd.Index([*kinds, "all"], name="kind", tupleize_cols=False)
        )
        types = {"queries": int, f"{method} better": int, f"{baseline} better": int}
        types.update({baseline: float, method: float, "difference": float})
        return table.astype(types)

    def relevant_texts(self, query_id) -> list[str]:
        """Texts of the chunks judged relevant to ``query_id`` (``chunk_qrels`` order)."""
        if query_id not in self.chunk_qrels:
            raise KeyError(f"query {query_id!r} was not evaluated; e.g. {self.query_ids[:3]}")
        relevant = self.chunk_qrels[query_id]
        return [
            r["text"] for r in self.records if chunk_key(r["doc_id"], r["chunk_index"]) in relevant
        ]

    def split_by_relevant_text(
        self,
        matches: Callable[[object, str], bool],
        kind_of: Callable | Mapping,
        *,
        metric: str = "ndcg@10",
        level: str = "chunk",
        method: str = "late",
        baseline: str = "naive",
    ) -> pd.DataFrame:
        """``by_kind`` with each kind split by whether some relevant chunk ``matches`` the query.

        Args:
            matches: ``(query_id, chunk_text) -> bool``, e.g.
                ``lc_utils.datasets.spells_query_name`` (does the chunk spell the query's name).
            kind_of: as in ``by_kind``.
        Returns:
            ``by_kind``'s columns, one row per ``(kind, matched)`` group present (in order of
            first appearance), with the group in columns ``kind`` and ``matched`` (bool) and
            without the ``"all"`` row.
        """
        groups = {
            query_id: (
                kind_of[query_id] if isinstance(kind_of, Mapping) else kind_of(query_id),
                any(matches(query_id, text) for text in self.relevant_texts(query_id)),
            )
            for query_id in self.query_ids
        }
        table = self.by_kind(groups, metric=metric, level=level, method=method, baseline=baseline)
        table = table.drop(index="all")
        table.insert(0, "matched", [group[1] for group in table.index])
        table.insert(0, "kind", [group[0] for group in table.index])
        return table.reset_index(drop=True)


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
    (``chunk_qrels``); a document is scored by its best chunk.

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
    Introduced in notebook 04_naive_vs_late.
    """
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
    keys = chunk_keys(records)
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
            scores, judged_chunks, query_ids=query_ids, item_ids=keys, **options
        )
        doc_scores, doc_ids = document_scores(scores, chunk_doc_ids)
        doc_frame = evaluate_per_query(
            doc_scores, judged_docs, query_ids=query_ids, item_ids=doc_ids, **options
        )
        per_query[method] = {"chunk": chunk_frame, "document": doc_frame}
        results[method] = {
            "chunk": mean_metrics(chunk_frame, "skip"),
            "document": mean_metrics(doc_frame, "skip"),
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
        all pairs of distinct chunks of the document (a zero vector counts as cosine 0).
        Documents with a single chunk are left out.
    Introduced in notebook 10_long_documents.
    """
    matrix = np.asarray(vectors)
    if matrix.ndim != 2 or len(matrix) != len(records):
        raise ValueError(
            f"vectors has shape {matrix.shape} for {len(records)} records; give one row per record"
        )
    unit = unit_vectors(matrix, label="chunk vectors").astype(np.float64)
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


def row_cosine(first, second) -> np.ndarray:
    """Cosine of each row of ``first`` with the same row of ``second``: how far vectors moved.

    Args:
        first / second: float ``(n, dim)``, the same items computed two ways (token embeddings
            with and without a preface, chunk vectors under two window plans).
    Returns:
        float64 ``(n,)``; a zero row has cosine 0.
    Introduced in notebook 08_windows.
    """
    a, b = np.asarray(first), np.asarray(second)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"first has shape {a.shape} and second {b.shape}; pass two (n, dim) arrays of the "
            "same shape, row i of each describing the same item"
        )
    product = unit_vectors(a, label="first") * unit_vectors(b, label="second")
    return product.sum(axis=1, dtype=np.float64)


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
    from .late import pool_spans
    from .tokens import token_spans

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
    max_tokens: int | None = None,
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
        max_tokens: where naive chunking cuts a chunk (``naive_chunking``'s default: the model's
            trained length); e.g. ``model.max_length`` to give naive chunks every position.
    Returns:
        ``MethodComparison`` with methods ``"naive"`` and ``"late"`` (see ``evaluate_methods``).
        Chunks holding no model token are left out of both, as ``embed_corpus`` does.
    Introduced in notebook 04_naive_vs_late.
    """
    from .corpus import embed_corpus
    from .late import embed_queries

    if encoded is not None and (window is not None or overlap is not None):
        raise ValueError(
            f"window={window} and overlap={overlap} given together with encoded, whose window "
            "plan is already fixed; pass them to encode_document instead, or drop encoded"
        )
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
        qrels_spans=qrels_spans,
        qrels_doc=qrels_doc,
        k=k,
    )


def encode_documents(
    model,
    documents: Mapping[str, str],
    *,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
) -> dict:
    """Token embeddings of every document, once, for pooling any number of chunkings later.

    Args:
        model: from ``load_model``.
        documents: ``{doc_id: text}``.
        window / overlap: the window plan for long documents (see ``late_chunking``).
        batch_tokens: padded tokens per forward batch.
    Returns:
        ``{doc_id: DocumentEmbedding}`` in the order of ``documents``; feed it to
        ``compare_chunkings`` or ``pool_records``.
    """
    from .late import encode_document

    return {
        doc_id: encode_document(
            model, text, window=window, overlap=overlap, batch_tokens=batch_tokens, progress=False
        )
        for doc_id, text in documents.items()
    }


def compare_chunkings(
    model,
    documents: Mapping[str, str],
    chunkings: Mapping[str, Mapping[str, Sequence]],
    queries: Mapping[str, str],
    *,
    qrels_spans: Mapping,
    qrels_doc: Mapping | None = None,
    encoded: Mapping | None = None,
    query_vectors=None,
    k: int | Sequence[int] = (1, 5, 10),
    batch_tokens: int | None = None,
    max_tokens: int | None = None,
) -> dict[str, MethodComparison]:
    """``compare_naive_late`` for several chunkings of one corpus, on the same queries.

    With ``encoded`` (from ``encode_documents``) late chunking costs one forward pass for all
    chunkings; only naive chunking runs the model per chunking. Naive chunking truncates chunks
    longer than the model takes without a warning here: ``chunk_lengths`` counts them.

    Args:
        model, documents, queries, qrels_spans, qrels_doc, k, batch_tokens, max_tokens: as in
            ``compare_naive_late``.
        chunkings: ``{label: {doc_id: [Chunk, ...]}}``, e.g. from
            ``lc_utils.datasets.chunk_documents``.
        encoded: ``{doc_id: DocumentEmbedding}``; ``None`` runs late chunking per chunking.
        query_vectors: float ``(len(queries), dim)`` in the order of ``queries``; ``None``
            embeds the queries once.
    Returns:
        ``{label: MethodComparison}`` in the order of ``chunkings``.
    Introduced in notebook 06_chunking_strategies.
    """
    from .late import embed_queries

    if not chunkings:
        raise ValueError("chunkings is empty; pass {label: {doc_id: chunks}}, e.g. sentences")
    if query_vectors is None:
        query_vectors = embed_queries(
            model, list(queries.values()), batch_tokens=batch_tokens, progress=False
        )
    comparisons = {}
    for label, chunks in chunkings.items():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_TRUNCATION_WARNING)
            comparisons[label] = compare_naive_late(
                model,
                documents,
                chunks,
                queries,
                qrels_spans=qrels_spans,
                qrels_doc=qrels_doc,
                encoded=encoded,
                query_vectors=query_vectors,
                k=k,
                batch_tokens=batch_tokens,
                progress=False,
                max_tokens=max_tokens,
            )
    return comparisons


def chunk_lengths(model, comparisons: Mapping[str, MethodComparison]) -> pd.DataFrame:
    """How long the chunks of each chunking are, in model tokens, and how many naive truncates.

    Args:
        model: the model whose tokenizer counts the tokens.
        comparisons: ``{label: MethodComparison}``, e.g. from ``compare_chunkings``.
    Returns:
        One row per label with ``n_chunks`` (int), ``mean_tokens`` (float), ``max_tokens``
        (int) and ``truncated_by_naive`` (int: chunks longer than naive chunking keeps; see
        ``text_window``).
    Introduced in notebook 06_chunking_strategies.
    """
    from .late import text_window

    _, content_tokens, _ = text_window(model)  # where naive chunking cuts a text
    rows = {}
    for label, comparison in comparisons.items():
        texts = [record["text"] for record in comparison.records]
        ids = model.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        lengths = np.array([len(i) for i in ids], dtype=np.int64)
        rows[label] = {
            "n_chunks": len(texts),
            "mean_tokens": float(lengths.mean()) if len(lengths) else 0.0,
            "max_tokens": int(lengths.max()) if len(lengths) else 0,
            "truncated_by_naive": int((lengths > content_tokens).sum()),
        }
    table = pd.DataFrame(rows).T.rename_axis("chunking")
    return table.astype(
        {"n_chunks": int, "mean_tokens": float, "max_tokens": int, "truncated_by_naive": int}
    )


@dataclass
class DocumentVectorBaseline:
    """One vector per whole document (no chunking), scored at document level.

    Attributes:
        results: ``evaluate``'s means (``{"ndcg@10": float, ..., "num_queries": int}``).
        per_query: ``evaluate_per_query``'s table, indexed by query id.
        token_coverage: share of the corpus tokens the vectors saw (the model truncates each
            document to one pass), in ``[0, 1]``.
    Introduced in notebook 04_naive_vs_late.
    """

    results: dict[str, float | int]
    per_query: pd.DataFrame = field(repr=False)
    token_coverage: float

    def difference(
        self,
        comparison: MethodComparison,
        method: str = "late",
        *,
        metric: str = "ndcg@10",
        n_resamples: int = 2000,
        seed: int = 0,
    ) -> dict[str, float | int]:
        """``paired_difference`` of ``method``'s document level (best chunk) minus this baseline.

        ``comparison`` must have been scored on the same queries (e.g. from
        ``compare_chunkings`` with the same ``query_vectors``).
        """
        comparison._check(method, "document")
        return paired_difference(
            comparison.per_query[method]["document"][metric],
            self.per_query[metric],
            n_resamples=n_resamples,
            seed=seed,
        )


def evaluate_document_vectors(
    model,
    documents: Mapping[str, str],
    query_ids: Sequence,
    query_vectors,
    qrels_doc: Mapping,
    *,
    k: int | Sequence[int] = (1, 5, 10),
    batch_tokens: int | None = None,
) -> DocumentVectorBaseline:
    """The no-chunking baseline: embed each document whole, as the model's pooling does.

    Every chunk of a document would share that vector and tie, so it gives no chunk ranking;
    it is compared with the document level of chunked methods (a document scored by its best
    chunk). Documents longer than the model takes are truncated, without a warning here: the
    result's ``token_coverage`` says how much of the corpus was seen.

    Args:
        model: from ``load_model``.
        documents: ``{doc_id: text}``.
        query_ids / query_vectors: the queries, float ``(len(query_ids), dim)``.
        qrels_doc: ``{query_id: {doc_id: grade}}``.
        k, batch_tokens: cutoffs; padded tokens per forward batch.
    Returns:
        ``DocumentVectorBaseline``.
    Introduced in notebook 06_chunking_strategies.
    """
    from .late import naive_chunking, text_window
    from .tokens import tokenize_document

    doc_ids = list(documents)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TRUNCATION_WARNING)
        vectors = naive_chunking(
            model, [documents[d] for d in doc_ids], batch_tokens=batch_tokens, progress=False
        )
    scores = cosine_scores(query_vectors, vectors)
    per_query = evaluate_per_query(scores, qrels_doc, query_ids=query_ids, item_ids=doc_ids, k=k)
    _, content_tokens, _ = text_window(model)  # where naive chunking cut each document
    n_tokens = np.array([len(tokenize_document(model.tokenizer, documents[d])) for d in doc_ids])
    coverage = float(np.minimum(n_tokens, content_tokens).sum() / max(int(n_tokens.sum()), 1))
    return DocumentVectorBaseline(mean_metrics(per_query), per_query, coverage)


def compare_window_plans(
    comparison: MethodComparison,
    encoded: Mapping,
    query_vectors,
    *,
    qrels_spans: Mapping,
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
        encoded: ``{doc_id: DocumentEmbedding}`` under the other plan (``encode_documents``),
            for some or all of the comparison's documents.
        query_vectors: float ``(len(comparison.query_ids), dim)`` in that order.
        qrels_spans: the span judgments ``comparison`` was scored with.
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
        query_vectors, comparison.query_ids, records, vectors, qrels_spans=qrels_spans, k=k
    )


def results_table(
    comparisons: Mapping[str, MethodComparison], *, baselines: Mapping[str, Mapping] | None = None
) -> pd.DataFrame:
    """Every method's means, one row per ``(chunking, level, method)``, for tables and plots.

    Args:
        comparisons: ``{label: MethodComparison}``, e.g. from ``compare_chunkings``.
        baselines: ``{method: results}`` scored at document level only and shared by every
            chunking, e.g. ``{"document vector": evaluate_document_vectors(...).results}``.
    Returns:
        DataFrame with columns ``chunking``, ``level``, ``method`` and one per metric mean (and
        ``num_queries``), in the order of ``comparisons``, levels and methods.
    Introduced in notebook 06_chunking_strategies.
    """
    rows = []
    for label, comparison in comparisons.items():
        for level in LEVELS:
            for method in comparison.methods:
                rows.append(
                    {"chunking": label, "level": level, "method": method}
                    | comparison.results[method][level]
                )
            if level == "document":
                for method, results in (baselines or {}).items():
                    rows.append({"chunking": label, "level": level, "method": method} | results)
    return pd.DataFrame(rows)


def kind_differences(
    comparisons: Mapping[str, MethodComparison],
    kind_of: Callable | Mapping,
    *,
    level: str = "chunk",
    metric: str = "ndcg@10",
    method: str = "late",
    baseline: str = "naive",
) -> pd.DataFrame:
    """Mean ``method − baseline`` per kind of query, one column per chunking.

    Args:
        comparisons: ``{label: MethodComparison}``.
        kind_of, level, metric, method, baseline: as in ``MethodComparison.by_kind``.
    Returns:
        float DataFrame indexed by kind (and ``"all"`` last), one column per label.
    Introduced in notebook 06_chunking_strategies.
    """
    columns = {
        label: comparison.by_kind(
            kind_of, metric=metric, level=level, method=method, baseline=baseline
        )["difference"]
        for label, comparison in comparisons.items()
    }
    return pd.DataFrame(columns).astype(float)


def within_document_table(
    comparisons: Mapping[str, MethodComparison], methods: Sequence[str] = ("naive", "late")
) -> pd.DataFrame:
    """Mean ``within_document_cosine`` over the documents, per chunking and method.

    Returns:
        float DataFrame, one row per label, one column per method.
    Introduced in notebook 06_chunking_strategies.
    """
    return pd.DataFrame(
        {
            label: {
                method: within_document_cosine(
                    comparison.records, comparison.vectors[method]
                ).mean()
                for method in methods
            }
            for label, comparison in comparisons.items()
        }
    ).T.astype(float)


def relevant_text_differences(
    comparisons: Mapping[str, MethodComparison],
    matches: Callable[[object, str], bool],
    kind_of: Callable | Mapping,
    **options,
) -> pd.DataFrame:
    """``MethodComparison.split_by_relevant_text`` for every chunking, stacked.

    Returns:
        DataFrame with a ``chunking`` column followed by ``split_by_relevant_text``'s columns.
    Introduced in notebook 06_chunking_strategies.
    """
    parts = [
        comparison.split_by_relevant_text(matches, kind_of, **options).assign(chunking=label)
        for label, comparison in comparisons.items()
    ]
    table = pd.concat(parts, ignore_index=True)
    return table[["chunking", *[c for c in table if c != "chunking"]]]
