"""Unit vectors and cosine similarity: the one place the package normalises and compares vectors.

Every vector this package produces (late, naive, query) is compared by cosine similarity, in
Milvus (metric COSINE), in the brute-force check, and in the evaluation. Two policies exist for a
degenerate vector, and callers choose one by name:

* ``strict=True``: a non-finite or all-zero row is an error naming the row (the store and the
  brute-force scan, where such a row would silently score NaN or 0);
* ``strict=False``: a zero row stays zero, so it has cosine 0 with everything and ranks last
  (the evaluation, where one degenerate chunk must not break a whole table).
"""

from __future__ import annotations

import numpy as np

__all__ = ["unit_vectors", "cosine_scores"]


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
        float32 ``(n_queries, n_items)``.
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
    return queries @ items.T
