"""Searching the chunk collection, counting and deleting, and checking Milvus against brute force.

Introduced in notebook 05_milvus_validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..vectors import unit_vectors
from .schema import (
    OUTPUT_FIELDS,
    collection_layout,
    count_rows,
    filter_expression,
    read_with_layout,
)

MAX_TOP_K = 16_384
QUERY_BATCH = 512


def _query_matrix(query_vectors, dim: int) -> np.ndarray:
    """Unit query vectors ``(n_queries, dim)``; a NaN, inf or all-zero query is refused by row."""
    queries = np.asarray(query_vectors, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"query vectors have shape {queries.shape}; expected (n_queries, {dim})")
    return unit_vectors(queries, strict=True, label="query vectors")


def search(
    client,
    name: str,
    query_vectors: np.ndarray,
    *,
    k: int = 10,
    method: str | Sequence[str] | None = None,
    doc_id: str | Sequence[str] | None = None,
    model: str | Sequence[str] | None = None,
    chunking: str | Sequence[str] | None = None,
    filter: str | None = None,
    output_fields: Sequence[str] = OUTPUT_FIELDS,
    search_params: Mapping | None = None,
    consistency_level: str | None = None,
):
    """Top-k cosine search, one DataFrame row per hit.

    Args:
        query_vectors: float32 ``(n_queries, dim)`` or ``(dim,)``; finite and non-zero (a NaN,
            inf or all-zero row is refused, naming the row, since it has no cosine).
        k: hits per query, 1..16384.
        method / doc_id / model / chunking / filter: restrict the search, see
            ``filter_expression``. A collection holding a chunk-size sweep needs ``chunking``.
        output_fields: stored fields to return besides id and score.
        search_params: index parameters, e.g. ``{"ef": 128}`` for HNSW (default ``ef`` is
            ``max(k, 64)``).
    Returns:
        DataFrame with ``query`` (row of ``query_vectors``), ``rank`` (0-based), ``id``,
        ``score`` (cosine similarity, higher is closer) and ``output_fields``, best hit first.
    Introduced in notebook 05_milvus_validation.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_TOP_K:
        raise ValueError(f"k={k!r}; must be an int between 1 and {MAX_TOP_K}")
    layout = collection_layout(client, name, load=True)
    if np.shape(query_vectors)[-1:] != (layout["dim"],):
        layout = collection_layout(client, name, load=True, fresh=True)
    queries = _query_matrix(query_vectors, layout["dim"])
    expression = filter_expression(
        method=method, doc_id=doc_id, model=model, chunking=chunking, filter=filter
    )
    extra = {"consistency_level": consistency_level} if consistency_level else {}

    def run(layout: dict) -> list[dict]:
        fields = [
            f for f in output_fields if f != "text_truncated" or layout["has_truncation_flag"]
        ]
        default = {"ef": max(int(k), 64)} if layout["index"] == "HNSW" else {}
        params = {"metric_type": "COSINE", "params": dict(search_params or default)}
        rows = []
        for first in range(0, len(queries), QUERY_BATCH):
            hits = client.search(
                name,
                data=list(queries[first : first + QUERY_BATCH]),
                limit=int(k),
                filter=expression,
                output_fields=fields,
                search_params=params,
                **extra,
            )
            for offset, query_hits in enumerate(hits):
                for rank, hit in enumerate(query_hits):
                    entity = hit.get("entity", {})
                    row = {"query": first + offset, "rank": rank, "id": hit["id"]}
                    row["score"] = float(hit["distance"])
                    row.update({f: entity.get(f) for f in fields})
                    rows.append(row)
        return rows

    rows = read_with_layout(client, name, run)
    fields = [f for f in output_fields if f != "text_truncated" or layout["has_truncation_flag"]]
    return pd.DataFrame(rows, columns=["query", "rank", "id", "score", *fields])


def count_chunks(
    client, name: str, *, method=None, doc_id=None, model=None, chunking=None, filter=None
) -> int:
    """Rows in the collection, optionally for a method, document, model or chunking (see
    ``filter_expression``), read with Strong consistency so that it reflects every write and
    deletion made so far.

    Introduced in notebook 05_milvus_validation.
    """
    expression = filter_expression(
        method=method, doc_id=doc_id, model=model, chunking=chunking, filter=filter
    )
    return count_rows(client, name, expression)


def delete_document(
    client,
    name: str,
    doc_id: str,
    *,
    method: str | None = None,
    model: str | None = None,
    chunking: str | None = None,
) -> int:
    """Delete every chunk of one document (only those of ``method``, ``model`` or ``chunking``
    where given).

    Returns the number of rows deleted. Other documents' rows are untouched; the deletion is
    visible to searches as soon as this returns. Introduced in notebook 05_milvus_validation.
    """
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(f"doc_id={doc_id!r}; must be a non-empty str")
    labels = {"method": method, "doc_id": doc_id, "model": model, "chunking": chunking}
    before = count_chunks(client, name, **labels)
    if before:
        client.delete(name, filter=filter_expression(**labels))
    # The Strong count doubles as a barrier: once it sees the deletion, every later search does.
    left = count_chunks(client, name, **labels)
    if left:
        raise RuntimeError(f"{left} chunk(s) of doc {doc_id!r} remain after deleting them")
    return before


def _score_blocks(query_vectors, vectors, block: int = 64):
    """Yield ``(first_query, cosine_scores)`` for blocks of queries, bounding memory."""
    queries = unit_vectors(query_vectors, strict=True, label="query vectors")
    matrix = unit_vectors(vectors, strict=True, label="vectors")
    if queries.shape[1] != matrix.shape[1]:
        raise ValueError(
            f"query vectors have dimension {queries.shape[1]}, vectors {matrix.shape[1]}"
        )
    for first in range(0, len(queries), block):
        yield first, queries[first : first + block] @ matrix.T


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best per row: highest score first, lower index first among equals."""
    k = min(k, scores.shape[1])
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else None
    if candidates is None:
        candidates = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    # argpartition picks arbitrarily among ties at the k-th score; widen to all of them and sort.
    result = np.empty((scores.shape[0], k), dtype=np.int64)
    for row, (score_row, picked) in enumerate(zip(scores, candidates, strict=True)):
        kth = score_row[picked].min()
        pool = np.flatnonzero(score_row >= kth)
        order = np.lexsort((pool, -score_row[pool]))
        result[row] = pool[order[:k]]
    return result


def brute_force_search(query_vectors: np.ndarray, vectors: np.ndarray, k: int):
    """Exact cosine top-k by a numpy scan, the reference Milvus is checked against.

    Args:
        query_vectors: ``(n_queries, dim)`` or ``(dim,)``; vectors: ``(n, dim)``; any float
            dtype, computed in float32.
    Returns:
        ``(scores, indices)``: float32 and int64 ``(n_queries, min(k, n))``, best first; equal
        scores are ordered by row index, so the result is deterministic.
    Introduced in notebook 05_milvus_validation.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k={k!r}; must be a positive int")
    all_scores, all_indices = [], []
    for _, scores in _score_blocks(query_vectors, vectors):
        indices = _top_k(scores, int(k))
        all_indices.append(indices)
        all_scores.append(np.take_along_axis(scores, indices, axis=1))
    return np.concatenate(all_scores), np.concatenate(all_indices)


def validate_against_brute_force(
    client,
    name: str,
    query_vectors: np.ndarray,
    vectors: np.ndarray,
    ids: Sequence[str],
    *,
    k: int = 10,
    method: str | None = None,
    doc_id: str | Sequence[str] | None = None,
    model: str | None = None,
    chunking: str | None = None,
    tie_tolerance: float = 1e-5,
    search_params: Mapping | None = None,
) -> dict:
    """Compare Milvus's top-k with an exact numpy scan over the same vectors, query by query.

    Args:
        query_vectors: float32 ``(n_queries, dim)``.
        vectors / ids: float32 ``(n, dim)`` and their ``n`` Milvus ids (``chunk_ids``): exactly
            the rows the search covers, i.e. those matching ``method``, ``doc_id``, ``model``
            and ``chunking``.
        tie_tolerance: scores this close to the k-th exact score count as tied with it.
    Returns:
        dict with ``agreement_at_k``: the mean over queries of the fraction of Milvus's k ids that
        the exact scan also ranks in its top k, where any id whose exact score ties the k-th
        exact score counts as in the top k (which of several equal vectors fills the last places
        is arbitrary, in Milvus and here alike); ``strict_agreement_at_k``: the same without that
        tie rule; ``max_abs_score_diff`` / ``mean_abs_score_diff``: Milvus's score of each hit
        against its exact cosine; ``mean_rank_score_gap``: how much lower Milvus's scores are
        than the exact ones rank for rank (0 when exact); ``index``, ``k``, ``n_queries``,
        ``n_vectors``; and ``per_query``, a DataFrame of the same figures per query.
        FLAT must give ``agreement_at_k == 1.0``; HNSW is approximate, and this measures it.
    Raises:
        ValueError: if the collection holds a different number of rows under the filter than
            ``len(ids)``, or shapes disagree.
    Introduced in notebook 05_milvus_validation.
    """
    ids = [str(i) for i in ids]
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for vectors of shape {vectors.shape}; need one id a row")
    labels = {"method": method, "doc_id": doc_id, "model": model, "chunking": chunking}
    stored = count_chunks(client, name, **labels)
    if stored != len(ids):
        given = ", ".join(f"{key}={value!r}" for key, value in labels.items())
        raise ValueError(
            f"collection {name!r} holds {stored} rows matching {given}, but {len(ids)} vectors "
            "were given; the brute-force scan must cover exactly the rows Milvus searches"
        )
    layout = collection_layout(client, name, fresh=True)
    k_effective = min(int(k), len(ids))
    hits = search(
        client,
        name,
        query_vectors,
        k=k_effective,
        **labels,
        output_fields=(),
        search_params=search_params,
        consistency_level="Strong",
    )
    hits_by_query = {q: group for q, group in hits.groupby("query", sort=False)}
    row_of = {id_: row for row, id_ in enumerate(ids)}
    per_query = []
    for first, scores in _score_blocks(query_vectors, vectors):
        exact_top = _top_k(scores, k_effective)
        for offset, score_row in enumerate(scores):
            query = first + offset
            group = hits_by_query.get(query)
            found = [] if group is None else group["id"].astype(str).tolist()
            milvus_scores = np.array([] if group is None else group["score"], dtype=np.float64)
            rows = [row_of.get(i, -1) for i in found]
            known = np.array([r for r in rows if r >= 0], dtype=np.int64)
            top = set(exact_top[offset].tolist())
            kth = score_row[exact_top[offset][-1]]
            tied = set(np.flatnonzero(score_row >= kth - tie_tolerance).tolist())
            diffs = np.abs(milvus_scores[[r >= 0 for r in rows]] - score_row[known])
            gaps = score_row[exact_top[offset]][: len(milvus_scores)] - milvus_scores
            per_query.append(
                {
                    "query": query,
                    "agreement": min(len(tied.intersection(rows)), k_effective) / k_effective,
                    "strict_agreement": len(top.intersection(rows)) / k_effective,
                    "hits": len(found),
                    "unknown_ids": len(rows) - len(known),
                    "max_abs_score_diff": float(diffs.max()) if diffs.size else 0.0,
                    "mean_abs_score_diff": float(diffs.mean()) if diffs.size else 0.0,
                    "rank_score_gap": float(gaps.mean()) if gaps.size else 0.0,
                }
            )
    table = pd.DataFrame(per_query)
    return {
        "index": layout["index"],
        "k": k_effective,
        "n_queries": len(table),
        "n_vectors": len(ids),
        "agreement_at_k": float(table["agreement"].mean()),
        "strict_agreement_at_k": float(table["strict_agreement"].mean()),
        "max_abs_score_diff": float(table["max_abs_score_diff"].max()),
        "mean_abs_score_diff": float(table["mean_abs_score_diff"].mean()),
        "mean_rank_score_gap": float(table["rank_score_gap"].mean()),
        "per_query": table,
    }


def validation_tables(reports: Mapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables of several ``validate_against_brute_force`` reports, for display and plotting.

    Args:
        reports: ``{index: {method: report}}`` (any two labels, e.g. index type and method).
    Returns:
        ``(summary, per_query)``: ``summary`` has one row per ``(index, method)`` (a MultiIndex)
        with ``agreement_at_k``, ``strict_agreement_at_k``, ``max_abs_score_diff`` and
        ``n_queries``; ``per_query`` stacks every report's per-query frame with ``index`` and
        ``method`` columns. Introduced in notebook 05_milvus_validation.
    """
    columns = ["agreement_at_k", "strict_agreement_at_k", "max_abs_score_diff", "n_queries"]
    pairs = [(i, m, r) for i, by_method in reports.items() for m, r in by_method.items()]
    summary = pd.DataFrame(
        [[report[c] for c in columns] for _, _, report in pairs],
        index=pd.MultiIndex.from_tuples([(i, m) for i, m, _ in pairs], names=["index", "method"]),
        columns=columns,
    )
    per_query = pd.concat(
        [report["per_query"].assign(index=i, method=m) for i, m, report in pairs],
        ignore_index=True,
    )
    return summary, per_query
