"""Retrieval metrics from a score matrix and relevance judgments, at chunk and document level.

Conventions used throughout:

* **Inputs.** ``scores`` is a float array ``(n_queries, n_items)``; row ``q`` belongs to
  ``query_ids[q]`` and column ``i`` to ``item_ids[i]``. Higher means more relevant. Judgments
  (``qrels``) follow the BEIR convention ``{query_id: {item_id: grade}}`` with integer grades;
  a grade ``<= 0`` means "judged not relevant", exactly as if the item were not judged.
* **Ranking and ties.** Each row is sorted by descending score with a *stable* sort, so tied items
  keep the order of ``item_ids``: the item whose column comes first ranks first. This makes every
  metric deterministic, but it means the item order can favour one method when scores tie exactly
  (for example two identical chunks); order items the same way for every method compared.
* **Queries with no relevant item** (absent from ``qrels``, or only grades ``<= 0``) have no
  defined nDCG, recall or AP. By default ``mean_metrics`` leaves them out of the means and
  counts them in ``num_queries_without_relevant``; ``no_relevant="zero"`` scores them 0 instead
  and ``no_relevant="error"`` raises.
* **Unknown ids.** A query id in ``qrels`` that is not in ``query_ids`` is ignored, since scoring
  a subset of the judged queries is legitimate; if no judged query was scored at all, that is an
  error. An item id in ``qrels`` that is not in ``item_ids`` is an error by default, because it
  almost always means that keys were built differently on the two sides (``"doc#3"`` against
  ``"doc#03"``, ``1`` against ``"1"``). ``unknown_items="drop"`` drops those judgments with a
  warning; ``unknown_items="count"`` keeps them as relevant items that the ranking cannot reach
  (they lower recall, AP and nDCG), which is the honest choice when a corpus lost documents.
* **Two levels.** At chunk level the items are chunks. At document level a document is scored by
  its best chunk (``document_scores``: the maximum over its chunks), as the reference evaluation
  of jina-ai/late-chunking does.

Metric definitions (``R`` relevant items for the query, ``rel_i`` whether rank ``i`` is relevant):

* ``ndcg@k``: DCG of the top ``k`` with gain ``grade`` (``gain="linear"``, as trec_eval, pytrec_eval
  and scikit-learn use) or ``2**grade - 1`` (``gain="exponential"``) and discount
  ``1 / log2(rank + 1)``, divided by the DCG of the ideal ordering of all judged grades.
* ``recall@k``: relevant items in the top ``k`` divided by ``R``.
* ``precision@k``: relevant items in the top ``k`` divided by ``k``.
* ``mrr`` / ``mrr@k``: ``1 / rank`` of the first relevant item; 0 if there is none (in the top
  ``k``).
* ``map`` / ``map@k``: average precision, ``sum_i rel_i * precision@i / R`` over the whole ranking
  (or its top ``k``; dividing by ``R`` as trec_eval's ``map_cut`` does). Without ties this equals
  scikit-learn's ``average_precision_score``.

Introduced in notebook 10_long_documents; ``lc_utils.eval.scoring`` compares methods with them.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..vectors import cosine_scores

__all__ = [
    "METRICS",
    "DEFAULT_METRICS",
    "LEVELS",
    "cosine_scores",
    "relevance_matrix",
    "evaluate_per_query",
    "mean_metrics",
    "document_scores",
]

METRICS = ("ndcg", "recall", "precision", "mrr", "map")
DEFAULT_METRICS = ("ndcg", "recall", "mrr", "map")
LEVELS = ("chunk", "document")
_UNKNOWN_ITEMS = ("error", "drop", "count")
_NO_RELEVANT = ("skip", "zero", "error")
_GAINS = ("linear", "exponential")


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _check_scores(scores, name: str = "scores") -> np.ndarray:
    array = np.asarray(scores)
    if array.ndim != 2:
        raise ValueError(
            f"{name} has shape {array.shape}; expected a 2-D array (n_queries, n_items)"
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} has dtype {array.dtype}; expected a float array")
    array = array.astype(np.float64, copy=False)
    nan = np.isnan(array)
    if nan.any():
        q, i = np.argwhere(nan)[0]
        raise ValueError(
            f"{name}[{q}, {i}] is NaN ({int(nan.sum())} NaN in all); every score must be a number "
            "(use -inf to rule an item out)"
        )
    return array


def _check_ids(ids, name: str, expected: int, axis: str) -> list:
    if isinstance(ids, str):
        raise TypeError(f"{name} is one str; pass a sequence of ids")
    ids = list(ids)
    if len(ids) != expected:
        raise ValueError(
            f"{name} has {len(ids)} ids but scores has {expected} {axis}; they must match"
        )
    seen: dict = {}
    for position, identifier in enumerate(ids):
        if not isinstance(identifier, Hashable):
            raise TypeError(
                f"{name}[{position}] is a {type(identifier).__name__}; ids must be "
                "hashable (str or int)"
            )
        if identifier in seen:
            raise ValueError(
                f"{name}[{position}] = {identifier!r} repeats {name}[{seen[identifier]}]; "
                "ids must be unique"
            )
        seen[identifier] = position
    return ids


def _check_k(k) -> tuple[int, ...]:
    values = (k,) if isinstance(k, int | np.integer) else tuple(k)
    if not values:
        raise ValueError("k is empty; give at least one cutoff, for example k=(1, 5, 10)")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"k holds {value!r}; every cutoff must be an integer >= 1")
    return tuple(int(v) for v in values)


def _check_choice(value, name: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ValueError(f"{name}={value!r}; valid: {tuple(valid)}")


def _type_hint(unknown, known_ids) -> str:
    """A hint when an unknown id matches a known one after str(): the usual int/str mix-up."""
    as_text = {str(i): i for i in known_ids}
    if str(unknown) in as_text:
        known = as_text[str(unknown)]
        return (
            f" (qrels has {unknown!r} of type {type(unknown).__name__}, the ids have {known!r} "
            f"of type {type(known).__name__})"
        )
    return ""


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def relevance_matrix(
    qrels: Mapping, query_ids: Sequence, item_ids: Sequence, *, unknown_items: str = "error"
) -> tuple[np.ndarray, list[list[int]]]:
    """Turn BEIR-style judgments into a grade matrix aligned with a score matrix.

    Args:
        qrels: ``{query_id: {item_id: grade}}``; grades are integers, ``<= 0`` is not relevant.
        query_ids: the ids of the score matrix's rows, in order.
        item_ids: the ids of its columns, in order.
        unknown_items: what to do with judged item ids that are not in ``item_ids``:
            ``"error"`` (default), ``"drop"`` (with a warning) or ``"count"`` (kept as unreachable
            relevant items, see the module docstring).
    Returns:
        ``(grades, unreachable)``: int32 ``(len(query_ids), len(item_ids))`` with the grade of
        each judged item and 0 elsewhere (negative grades are clipped to 0), and for each query
        the list of positive grades of judged items missing from ``item_ids`` (empty unless
        ``unknown_items="count"``).
    Introduced in notebook 10_long_documents.
    """
    _check_choice(unknown_items, "unknown_items", _UNKNOWN_ITEMS)
    if not isinstance(qrels, Mapping):
        raise TypeError(
            f"qrels is a {type(qrels).__name__}; expected a dict {{query_id: {{item_id: grade}}}}"
        )
    column = {item: i for i, item in enumerate(item_ids)}
    grades = np.zeros((len(query_ids), len(item_ids)), dtype=np.int32)
    unreachable: list[list[int]] = [[] for _ in query_ids]
    unknown: list[tuple] = []
    for row, query in enumerate(query_ids):
        judged = qrels.get(query)
        if judged is None:
            continue
        if not isinstance(judged, Mapping):
            raise TypeError(
                f"qrels[{query!r}] is a {type(judged).__name__}; expected a dict {{item_id: grade}}"
            )
        for item, grade in judged.items():
            if isinstance(grade, bool) or not isinstance(grade, int | np.integer):
                raise TypeError(
                    f"qrels[{query!r}][{item!r}] = {grade!r}; grades must be integers "
                    "(0 = not relevant, 1, 2, ... = more relevant)"
                )
            position = column.get(item)
            if position is None:
                unknown.append((query, item))
                if unknown_items == "count" and grade > 0:
                    unreachable[row].append(int(grade))
                continue
            grades[row, position] = max(int(grade), 0)
    if unknown and unknown_items == "error":
        query, item = unknown[0]
        raise KeyError(
            f"qrels[{query!r}] judges item {item!r}, which is not in item_ids"
            f"{_type_hint(item, item_ids)} ({len(unknown)} such judgment(s)); build qrels and "
            "item_ids with the same keys, or pass unknown_items='drop' or 'count'"
        )
    if unknown and unknown_items == "drop":
        warnings.warn(
            f"{len(unknown)} judgment(s) name items not in item_ids and were dropped "
            f"(first: query {unknown[0][0]!r}, item {unknown[0][1]!r})",
            stacklevel=2,
        )
    return grades, unreachable


def _gain(grades: np.ndarray, gain: str) -> np.ndarray:
    grades = grades.astype(np.float64)
    return grades if gain == "linear" else np.exp2(grades) - 1.0


def _discounts(length: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


def _ideal_dcg(
    grades: np.ndarray, unreachable: Sequence[Sequence[int]] | None, k: int, gain: str
) -> np.ndarray:
    if unreachable is None or not any(unreachable):
        ideal = -np.sort(-grades, axis=1)[:, :k]
    else:
        ideal = np.zeros((grades.shape[0], k), dtype=np.int64)
        for row, extra in enumerate(unreachable):
            row_grades = np.concatenate([grades[row][grades[row] > 0], np.asarray(extra, int)])
            top = -np.sort(-row_grades)[:k]
            ideal[row, : len(top)] = top
    return _gain(ideal, gain) @ _discounts(k)[: ideal.shape[1]]


def _num_relevant(grades: np.ndarray, unreachable) -> np.ndarray:
    counts = (grades > 0).sum(axis=1).astype(np.float64)
    if unreachable is not None:
        counts += np.array([len(extra) for extra in unreachable], dtype=np.float64)
    return counts


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )


def _ndcg(ranked: np.ndarray, grades, unreachable, k: int, gain: str) -> np.ndarray:
    top = ranked[:, :k]
    dcg = _gain(top, gain) @ _discounts(top.shape[1])
    return _safe_divide(dcg, _ideal_dcg(grades, unreachable, k, gain))


def _recall(ranked: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return _safe_divide((ranked[:, :k] > 0).sum(axis=1).astype(np.float64), n_relevant)


def _precision(ranked: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    hits = (ranked[:, :k] > 0).sum(axis=1) / float(k)
    return np.where(n_relevant > 0, hits, np.nan)


def _reciprocal_rank(ranked: np.ndarray, n_relevant: np.ndarray, k: int | None) -> np.ndarray:
    relevant = ranked > 0
    first = np.argmax(relevant, axis=1)
    found = relevant.any(axis=1)
    if k is not None:
        found &= first < k
    values = np.where(found, 1.0 / (first + 1.0), 0.0)
    return np.where(n_relevant > 0, values, np.nan)


def _average_precision(ranked: np.ndarray, n_relevant: np.ndarray, k: int | None) -> np.ndarray:
    relevant = (ranked if k is None else ranked[:, :k]) > 0
    hits = np.cumsum(relevant, axis=1)
    precision = hits / np.arange(1, relevant.shape[1] + 1, dtype=np.float64)
    return _safe_divide((precision * relevant).sum(axis=1), n_relevant)


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def evaluate_per_query(
    scores,
    qrels: Mapping,
    *,
    query_ids: Sequence,
    item_ids: Sequence,
    k: int | Sequence[int] = (1, 5, 10),
    metrics: Sequence[str] = DEFAULT_METRICS,
    gain: str = "linear",
    unknown_items: str = "error",
) -> pd.DataFrame:
    """Every metric for every query, as a table.

    Args:
        scores: float ``(len(query_ids), len(item_ids))``; higher is better, no NaN.
        qrels: ``{query_id: {item_id: int grade}}`` (BEIR convention).
        query_ids / item_ids: the ids of the rows and columns of ``scores``; unique.
        k: one cutoff or several.
        metrics: any of ``"ndcg", "recall", "precision", "mrr", "map"``. ``mrr`` and ``map``
            give an uncut column and one per cutoff; the others one per cutoff.
        gain: ``"linear"`` or ``"exponential"`` gain for nDCG.
        unknown_items: ``"error"``, ``"drop"`` or ``"count"`` (see the module docstring).
    Returns:
        DataFrame indexed by ``query_id`` in the order of ``query_ids``, with float64 columns such
        as ``ndcg@10``, ``recall@10``, ``mrr``, ``mrr@10``, ``map``, ``map@10`` and an int column
        ``num_relevant``. A query without relevant items has ``num_relevant == 0`` and NaN
        metrics.
    Introduced in notebook 11_paper_benchmarks.
    """
    scores = _check_scores(scores)
    query_ids = _check_ids(query_ids, "query_ids", scores.shape[0], "rows")
    item_ids = _check_ids(item_ids, "item_ids", scores.shape[1], "columns")
    cutoffs = _check_k(k)
    _check_choice(gain, "gain", _GAINS)
    for metric in metrics:
        _check_choice(metric, "metric", METRICS)
    if not isinstance(qrels, Mapping):
        raise TypeError(
            f"qrels is a {type(qrels).__name__}; expected a dict {{query_id: {{item_id: grade}}}}"
        )
    if qrels and not any(query in qrels for query in query_ids):
        example = next(iter(qrels))
        raise KeyError(
            f"none of the {len(query_ids)} query_ids has judgments in qrels (qrels has e.g. "
            f"{example!r}{_type_hint(example, query_ids)}); build both from the same query ids"
        )
    grades, unreachable = relevance_matrix(qrels, query_ids, item_ids, unknown_items=unknown_items)
    n_relevant = _num_relevant(grades, unreachable)
    # Sorting the negated scores with a stable sort is what makes ties keep item order: argsort
    # in descending order would not be stable.
    ranked = np.take_along_axis(grades, np.argsort(-scores, axis=1, kind="stable"), axis=1)

    columns: dict[str, np.ndarray] = {}
    for metric in metrics:
        if metric == "mrr":
            columns["mrr"] = _reciprocal_rank(ranked, n_relevant, None)
        if metric == "map":
            columns["map"] = _average_precision(ranked, n_relevant, None)
        for cutoff in cutoffs:
            name = f"{metric}@{cutoff}"
            if metric == "ndcg":
                columns[name] = _ndcg(ranked, grades, unreachable, cutoff, gain)
            elif metric == "recall":
                columns[name] = _recall(ranked, n_relevant, cutoff)
            elif metric == "precision":
                columns[name] = _precision(ranked, n_relevant, cutoff)
            elif metric == "mrr":
                columns[name] = _reciprocal_rank(ranked, n_relevant, cutoff)
            else:
                columns[name] = _average_precision(ranked, n_relevant, cutoff)
    frame = pd.DataFrame(columns, index=pd.Index(query_ids, name="query_id"))
    frame["num_relevant"] = n_relevant.astype(np.int64)
    return frame


def mean_metrics(frame: pd.DataFrame, no_relevant: str = "skip") -> dict[str, float | int]:
    """Column means of an ``evaluate_per_query`` table, ready for ``metrics.json``.

    Args:
        frame: a table from ``evaluate_per_query`` (it needs the ``num_relevant`` column).
        no_relevant: ``"skip"`` (default) leaves queries without relevant items out of the
            means, ``"zero"`` scores them 0 on every metric, ``"error"`` raises naming the first.
    Returns:
        ``{metric: float, ..., "num_queries": int, "num_queries_without_relevant": int}``, where
        ``num_queries`` is how many queries the means are over.
    Raises:
        ValueError when no query can be scored (every query lacks relevant items).
    """
    _check_choice(no_relevant, "no_relevant", _NO_RELEVANT)
    if "num_relevant" not in frame:
        raise KeyError(
            f"frame has no 'num_relevant' column (it has {list(frame.columns)}); pass a table "
            "from evaluate_per_query"
        )
    empty = frame["num_relevant"] == 0
    if empty.any() and no_relevant == "error":
        raise ValueError(
            f"query {frame.index[empty][0]!r} has no relevant item among its judgments "
            f"({int(empty.sum())} such queries); pass no_relevant='skip' or 'zero'"
        )
    values = frame.drop(columns="num_relevant")
    if no_relevant == "zero":
        values = values.fillna(0.0)
    else:
        values = values[~empty]
    if values.empty:
        raise ValueError(
            f"none of the {len(frame)} queries has a relevant item in qrels, so no metric is "
            "defined; check that qrels and query_ids use the same ids"
        )
    result: dict[str, float | int] = {name: float(values[name].mean()) for name in values}
    result["num_queries"] = int(len(values))
    result["num_queries_without_relevant"] = int(empty.sum())
    return result


def document_scores(chunk_scores, chunk_doc_ids: Sequence) -> tuple[np.ndarray, list]:
    """Score each document by its best chunk: the maximum over the document's chunk columns.

    Args:
        chunk_scores: float ``(n_queries, n_chunks)``.
        chunk_doc_ids: ``(n_chunks,)`` document id of each chunk column; a document's chunks
            need not be adjacent.
    Returns:
        ``(doc_scores, doc_ids)``: ``doc_scores`` is ``(n_queries, n_documents)`` in the dtype of
        ``chunk_scores``; ``doc_ids`` lists the documents in order of their first chunk, so with
        the usual document-ordered chunk records the documents keep the corpus order.
    Introduced in notebook 10_long_documents.
    """
    scores = np.asarray(chunk_scores)
    _check_scores(scores, "chunk_scores")
    if isinstance(chunk_doc_ids, str):
        raise TypeError("chunk_doc_ids is one str; pass one document id per chunk column")
    doc_of_chunk = list(chunk_doc_ids)
    if len(doc_of_chunk) != scores.shape[1]:
        raise ValueError(
            f"chunk_doc_ids has {len(doc_of_chunk)} ids but chunk_scores has {scores.shape[1]} "
            "columns; give one document id per chunk"
        )
    if not doc_of_chunk:
        return np.empty((scores.shape[0], 0), dtype=scores.dtype), []
    # Label documents in order of first appearance through a dict (ids may be str or int, which
    # np.unique would sort and could not mix), then reduce every document's columns at once.
    label_of: dict = {}
    labels = np.fromiter(
        (label_of.setdefault(doc, len(label_of)) for doc in doc_of_chunk),
        dtype=np.int64,
        count=len(doc_of_chunk),
    )
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(len(label_of)))
    doc_scores = np.maximum.reduceat(scores[:, order], starts, axis=1)
    return doc_scores, list(label_of)
