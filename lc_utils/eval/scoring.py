"""Scoring several sets of chunk vectors on the same queries, at chunk and document level.

``evaluate_methods`` ranks every method's vectors by cosine over the same chunk records and
scores them with ``lc_utils.eval.metrics`` against span judgments mapped to chunks
(``lc_utils.eval.judgments``); a document is scored by its best chunk. Its result,
``MethodComparison``, holds the per-query tables and answers the questions the notebooks ask of
them: paired differences, per kind of query, per relevant text. ``DocumentVectorBaseline`` holds
the no-chunking baseline (one vector per document), scored at document level only.

Chunk-level judgments name chunks by **chunk key** ``"doc_id#chunk_index"``, the same for every
method; the store's ``chunk_ids`` are different things (hashed Milvus primary keys).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..vectors import cosine_scores
from .judgments import chunk_key, chunk_keys, chunk_qrels
from .metrics import DEFAULT_METRICS, LEVELS, document_scores, evaluate_per_query, mean_metrics
from .stats import paired_difference

__all__ = ["MethodComparison", "evaluate_methods", "DocumentVectorBaseline"]


@dataclass
class MethodComparison:
    """Several sets of vectors for the same chunks (naive, late, ...), scored on the same queries.

    Attributes:
        query_ids: the queries, in the order of the score rows.
        records: the chunk records every method shares (``doc_id``, ``chunk_index``, ``start``,
            ``end``, ``text``), row for row with each method's vectors.
        qrels_chunk: ``{query_id: {chunk_key: grade}}``, the span judgments mapped to these
            chunks (``chunk_qrels``).
        qrels_doc: ``{query_id: {doc_id: grade}}`` used at document level.
        results: ``{method: {"chunk": {...}, "document": {...}}}``, the means of ``mean_metrics``
            at both levels, ready for ``metrics.json``.
        per_query: ``{method: {"chunk": DataFrame, "document": DataFrame}}`` as from
            ``evaluate_per_query``; a query with no relevant item at a level has NaN metrics.
        vectors: ``{method: float32 (len(records), dim)}``, the vectors that were scored.
    """

    query_ids: list
    records: list[dict]
    qrels_chunk: dict
    qrels_doc: dict
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
        """Texts of the chunks judged relevant to ``query_id`` (``qrels_chunk`` order)."""
        if query_id not in self.qrels_chunk:
            raise KeyError(f"query {query_id!r} was not evaluated; e.g. {self.query_ids[:3]}")
        relevant = self.qrels_chunk[query_id]
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
        k, metrics: as in ``evaluate_per_query``.
        min_overlap: characters a chunk must share with a span to be relevant.
    Returns:
        ``MethodComparison``. Queries without a relevant chunk (or document) are left out of
        that level's means and counted in ``num_queries_without_relevant``.
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


@dataclass
class DocumentVectorBaseline:
    """One vector per whole document (no chunking), scored at document level.

    Attributes:
        results: ``mean_metrics``' means (``{"ndcg@10": float, ..., "num_queries": int}``).
        per_query: ``evaluate_per_query``'s table, indexed by query id.
        token_coverage: share of the corpus tokens the vectors saw (the model truncates each
            document to one pass), in ``[0, 1]``.
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
