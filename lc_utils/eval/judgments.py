"""Span judgments mapped onto any chunking: a chunk is relevant where it overlaps a relevant span.

This is the evaluation side of a dataset: a dataset (``lc_utils.datasets``) says which character
spans answer a query; this module says which chunks of a given chunking that makes relevant, and
names each chunk in the judgments by its **chunk key** ``"doc_id#chunk_index"``. A chunk key is
not a store id: ``lc_utils.store.chunk_ids`` hashes document, chunk index, method and model into
Milvus primary keys, while a chunk key names the chunk the same way for every method, so that one
set of judgments scores naive and late vectors alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["chunk_key", "chunk_keys", "chunk_qrels"]


def chunk_key(doc_id: str, chunk_index: int) -> str:
    """The item id of a chunk in chunk-level judgments: ``f"{doc_id}#{chunk_index}"``."""
    return f"{doc_id}#{int(chunk_index)}"


def chunk_keys(chunk_records: Sequence[Mapping]) -> list[str]:
    """``chunk_key`` of each record (dicts with ``doc_id`` and ``chunk_index``), in order."""
    return [chunk_key(r["doc_id"], r["chunk_index"]) for r in chunk_records]


def chunk_qrels(
    qrels_spans: Mapping[str, Sequence[tuple]],
    chunk_records: Sequence[Mapping],
    *,
    min_overlap: int = 1,
) -> dict[str, dict[str, int]]:
    """Judge chunks by character overlap with relevant spans, for any chunking.

    A chunk is relevant to a query when its span ``[start, end)`` shares at least
    ``min_overlap`` characters with one of the query's relevant spans in the same document.

    Args:
        qrels_spans: ``{query_id: [(doc_id, start, end), ...]}`` or with a fourth element, an int
            grade (default 1); a chunk takes the highest grade among the spans it overlaps.
        chunk_records: dicts with ``doc_id``, ``chunk_index``, ``start``, ``end`` (half-open
            character offsets), as in ``CorpusEmbeddings.records``.
        min_overlap: characters a chunk must share with a span, ``>= 1``.
    Returns:
        ``{query_id: {chunk_key: grade}}`` holding only relevant chunks. A query whose spans no
        chunk overlaps (for example its document was not chunked) maps to ``{}``: the
        evaluation then counts it as a query without relevant items.
    """
    if min_overlap < 1:
        raise ValueError(f"min_overlap={min_overlap}; expected >= 1")
    by_doc: dict[str, list[int]] = defaultdict(list)
    for row, record in enumerate(chunk_records):
        for key in ("doc_id", "chunk_index", "start", "end"):
            if key not in record:
                raise KeyError(f"chunk record {row} has no {key!r}; it has {sorted(record)}")
        if record["end"] < record["start"]:
            raise ValueError(
                f"chunk record {row} spans characters {record['start']}–{record['end']}; "
                "start must be <= end"
            )
        by_doc[record["doc_id"]].append(row)
    keys = chunk_keys(chunk_records)
    arrays = {
        doc: (
            np.array([chunk_records[r]["start"] for r in rows], dtype=np.int64),
            np.array([chunk_records[r]["end"] for r in rows], dtype=np.int64),
            rows,
        )
        for doc, rows in by_doc.items()
    }
    judged: dict[str, dict[str, int]] = {}
    for query_id, spans in qrels_spans.items():
        relevant: dict[str, int] = {}
        for span in spans:
            if len(span) not in (3, 4):
                raise ValueError(
                    f"qrels_spans[{query_id!r}] holds {span!r}; expected (doc_id, start, end) "
                    "or (doc_id, start, end, grade)"
                )
            doc, start, end = span[0], int(span[1]), int(span[2])
            grade = int(span[3]) if len(span) == 4 else 1
            if end < start:
                raise ValueError(
                    f"qrels_spans[{query_id!r}] spans characters {start}–{end} of {doc!r}; "
                    "start must be <= end"
                )
            if doc not in arrays or grade <= 0:
                continue
            starts, ends, rows = arrays[doc]
            overlap = np.minimum(ends, end) - np.maximum(starts, start)
            for position in np.flatnonzero(overlap >= min_overlap):
                key = keys[rows[position]]
                relevant[key] = max(relevant.get(key, 0), grade)
        judged[query_id] = relevant
    return judged
