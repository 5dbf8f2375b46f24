"""Unit vectors and cosine similarity: the one place the package normalises and compares vectors.

Besides scoring queries against items (``cosine_scores``) it measures how vectors relate to each
other: the same items computed two ways (``row_cosine``) and the chunks of one document
(``within_document_cosine``).

Every vector this package produces (late, naive, query) is compared by cosine similarity, in
Milvus (metric COSINE), in the brute-force check, and in the evaluation. Two policies exist for a
degenerate vector, and callers choose one by name:

* ``strict=True``: a non-finite or all-zero row is an error naming the row (the store and the
  brute-force scan, where such a row would silently score NaN or 0);
* ``strict=False``: a zero row stays zero, so it has cosine 0 with everything and ranks last
  (the evaluation, where one degenerate chunk must not break a whole table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["unit_vectors", "cosine_scores", "row_cosine", "within_document_cosine"]


def unit_vectors(vectors, *, strict: bool = False, label: str = "vectors") -> np.ndarray:
    """Rows of ``vectors`` scaled to unit length.

    Args:
        vectors: float ``(n, dim)``, or ``(dim,)`` for one vector (returned as ``(1, dim)``).
        strict: refuse non-finite and all-zero rows (see the module docstring) instead of keeping
            zero rows at zero.
        label: what the rows are, for error messages ("query vectors").
    Returns:
        float32 ``(n, dim)``.
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        raise ValueError(f"{label} have shape {matrix.shape}; expected a 2-D matrix (n, dim)")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if strict:
        finite = np.isfinite(matrix).all(axis=1)
        bad = np.flatnonzero(~finite | (norms[:, 0] == 0))
        if bad.size:
            row = int(bad[0])
            kind = "all zero" if finite[row] else "not finite (NaN or inf)"
            raise ValueError(
                f"{label}: row {row} is {kind}; cosine similarity needs finite, non-zero vectors"
            )
        return matrix / norms
    return matrix / np.where(norms > 0, norms, 1.0)


def cosine_scores(query_vectors, item_vectors, *, strict: bool = False) -> np.ndarray:
    """Cosine similarity of every query with every item.

    Args:
        query_vectors: float ``(n_queries, dim)``.
        item_vectors: float ``(n_items, dim)``.
        strict: passed to ``unit_vectors``; by default a zero vector has cosine 0 with everything
            rather than NaN, so that a degenerate chunk ranks low instead of breaking a table.
    Returns:
        float32 ``(n_queries, n_items)``; identical item vectors get identical scores.
    """
    queries = np.asarray(query_vectors, dtype=np.float32)
    items = np.asarray(item_vectors, dtype=np.float32)
    if queries.ndim != 2 or items.ndim != 2:
        raise ValueError(
            f"query_vectors has shape {queries.shape} and item_vectors {items.shape}; "
            "both must be 2-D (n, dim)"
        )
    if queries.shape[1] != items.shape[1]:
        raise ValueError(
            f"query_vectors have dimension {queries.shape[1]} but item_vectors "
            f"{items.shape[1]}; embed both with the same model"
        )
    queries = unit_vectors(queries, strict=strict, label="query vectors")
    items = unit_vectors(items, strict=strict, label="item vectors")
    # A float32 matrix product gives two identical item vectors scores that differ in the last
    # bit, depending on where each column falls in the BLAS kernel's tiles (so, on the machine):
    # a tie between duplicate chunks would then be broken differently on every CPU. In float64
    # the difference is far below float32's resolution, so the rounded scores tie exactly and
    # the ranking's tie rule (the order of the items) decides, the same everywhere.
    return (queries.astype(np.float64) @ items.T.astype(np.float64)).astype(np.float32)


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
