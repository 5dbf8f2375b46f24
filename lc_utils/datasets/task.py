"""One type for a retrieval task, whatever loaded it: documents, queries and their judgments.

Every loader in ``lc_utils.datasets`` (the pydoc topics, BEIR folders, the needle pools) and the
paper's benchmarks (``lc_utils.studies.paper``) return a ``RetrievalTask``, and every comparison
in ``lc_utils.eval`` takes one, so a task moves from loader to comparison without being unpacked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RetrievalTask"]


@dataclass(repr=False)
class RetrievalTask:
    """Documents, queries, span judgments and document judgments, under one name.

    Attributes:
        documents: ``{doc_id: text}``.
        queries: ``{query_id: text}``, in evaluation order.
        qrels_spans: ``{query_id: [(doc_id, start, end[, grade]), ...]}``: the half-open
            character spans that answer each query, in documents of ``documents``; a missing
            grade means 1. ``lc_utils.eval.chunk_qrels`` makes relevant the chunks they overlap.
        qrels_doc: ``{query_id: {doc_id: grade}}``, the documents relevant to each query, only
            documents of ``documents`` and grades ``> 0``. ``None`` (the default) derives them
            from ``qrels_spans``: each document holding a span, with its spans' highest grade.
        name: what the task is called (``"pydoc"``, a BEIR dataset's name, ``"needles"``).
        source: where it came from: ``"pydoc"``, ``"needles"``, ``"folder"`` (a BEIR folder read
            from a path) or ``"beir"`` (a BEIR dataset downloaded once, then read from a cache).
        query_info: a table with one row per query, indexed by query id, holding what the loader
            knows of each query (the needle pools' kind, length and depth), or ``None``.
    Judgments of a query that no span or document answers are ``[]`` and ``{}``: the evaluation
    counts such queries as queries without relevant items.
    """

    documents: dict[str, str]
    queries: dict[str, str]
    qrels_spans: dict[str, list[tuple]]
    qrels_doc: dict[str, dict[str, int]] | None = None
    name: str = ""
    source: str = ""
    query_info: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.qrels_doc is None:
            self.qrels_doc = {q: _documents_of(spans) for q, spans in self.qrels_spans.items()}
        for judgments, what in ((self.qrels_spans, "qrels_spans"), (self.qrels_doc, "qrels_doc")):
            unknown = [q for q in judgments if q not in self.queries]
            if unknown:
                raise ValueError(
                    f"{what} judges {len(unknown)} query id(s) that are not in queries "
                    f"(first: {unknown[0]!r}); judge only the task's queries"
                )

    def __repr__(self) -> str:
        judged = sum(len(grades) for grades in self.qrels_doc.values())
        return (
            f"RetrievalTask({self.name!r}, documents={len(self.documents)}, "
            f"queries={len(self.queries)}, relevant documents={judged})"
        )

    @property
    def query_ids(self) -> list[str]:
        """The query ids, in order."""
        return list(self.queries)

    def subset(
        self, query_ids: Iterable[str] | None = None, doc_ids: Iterable[str] | None = None
    ) -> RetrievalTask:
        """The task on some of its queries and documents; ``None`` keeps all of them.

        Judgments are cut to the documents kept; a query whose relevant documents all go keeps
        empty judgments, so it still counts as a query without relevant items. The order of
        ``queries`` and ``documents`` is kept.
        """
        queries = self.queries if query_ids is None else set(query_ids)
        documents = self.documents if doc_ids is None else set(doc_ids)
        for wanted, known, what in (
            (queries, self.queries, "query"),
            (documents, self.documents, "document"),
        ):
            unknown = [i for i in wanted if i not in known]
            if unknown:
                raise KeyError(f"no {what} {unknown[0]!r} in the task {self.name!r}")
        kept_queries = [q for q in self.queries if q in queries]
        info = self.query_info
        return RetrievalTask(
            documents={d: text for d, text in self.documents.items() if d in documents},
            queries={q: self.queries[q] for q in kept_queries},
            qrels_spans={
                q: [s for s in self.qrels_spans[q] if s[0] in documents]
                for q in kept_queries
                if q in self.qrels_spans
            },
            qrels_doc={
                q: {d: g for d, g in self.qrels_doc[q].items() if d in documents}
                for q in kept_queries
                if q in self.qrels_doc
            },
            name=self.name,
            source=self.source,
            query_info=None if info is None else info.loc[kept_queries].copy(),
        )


def _documents_of(spans: Iterable[tuple]) -> dict[str, int]:
    """``{doc_id: grade}`` of the documents a query's spans fall in, grades ``> 0`` only."""
    grades: dict[str, int] = {}
    for span in spans:
        grade = int(span[3]) if len(span) == 4 else 1
        if grade > 0:
            grades[span[0]] = max(grades.get(span[0], 0), grade)
    return grades
