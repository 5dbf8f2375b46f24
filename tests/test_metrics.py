"""Retrieval metrics: hand-computed values, scikit-learn as an independent reference, ties,
document-level max pooling and input validation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, ndcg_score

from lc_utils.eval import metrics as ev


def evaluate(scores, qrels, *, no_relevant="skip", **options):
    """The means over queries through the public path: the per-query table, then its means."""
    return ev.mean_metrics(ev.evaluate_per_query(scores, qrels, **options), no_relevant)


def per_query(metric, scores, relevance, k=None, *, gain="linear"):
    """One metric of each query through the public path, from a grade matrix like ``scores``."""
    relevance = np.asarray(relevance)
    qrels = {q: {i: int(g) for i, g in enumerate(row) if g > 0} for q, row in enumerate(relevance)}
    n_queries, n_items = relevance.shape
    frame = ev.evaluate_per_query(
        scores,
        qrels,
        query_ids=list(range(n_queries)),
        item_ids=list(range(n_items)),
        k=k or 1,
        metrics=[metric],
        gain=gain,
    )
    return frame[f"{metric}@{k}" if k else metric].to_numpy()


def evaluate_levels(
    chunk_scores, *, query_ids, chunk_keys, chunk_doc_ids, chunk_qrels, doc_qrels, k=(1, 5, 10)
):
    """Both levels through the public path: chunk columns, then best chunk per document."""
    chunk_level = evaluate(chunk_scores, chunk_qrels, query_ids=query_ids, item_ids=chunk_keys, k=k)
    doc_scores, doc_ids = ev.document_scores(chunk_scores, chunk_doc_ids)
    doc_level = evaluate(doc_scores, doc_qrels, query_ids=query_ids, item_ids=doc_ids, k=k)
    return {"chunk": chunk_level, "document": doc_level}


ITEMS = ["a", "b", "c", "d", "e"]


def _log2(rank):
    return 1.0 / math.log2(rank + 1)


# ---------------------------------------------------------------------------------------------
# Hand-computed values
# ---------------------------------------------------------------------------------------------


def test_perfect_ranking_scores_one_everywhere():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    qrels = {"q": {"a": 2, "b": 1}}
    result = evaluate(scores, qrels, query_ids=["q"], item_ids=ITEMS, k=(2, 5))
    assert result["ndcg@2"] == pytest.approx(1.0)
    assert result["ndcg@5"] == pytest.approx(1.0)
    assert result["recall@2"] == pytest.approx(1.0)
    assert result["mrr"] == pytest.approx(1.0)
    assert result["map"] == pytest.approx(1.0)
    assert result["num_queries"] == 1


def test_reversed_ranking_has_known_values():
    # Relevant a and b rank last (positions 5 and 4) when the order is reversed.
    scores = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    qrels = {"q": {"a": 1, "b": 1}}
    result = evaluate(scores, qrels, query_ids=["q"], item_ids=ITEMS, k=(3, 5), metrics=ev.METRICS)
    ideal = _log2(1) + _log2(2)
    assert result["ndcg@3"] == 0.0
    assert result["ndcg@5"] == pytest.approx((_log2(4) + _log2(5)) / ideal)
    assert result["recall@3"] == 0.0
    assert result["recall@5"] == 1.0
    assert result["precision@5"] == pytest.approx(2 / 5)
    assert result["mrr"] == pytest.approx(1 / 4)
    assert result["mrr@3"] == 0.0
    assert result["map"] == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert result["map@3"] == 0.0
    assert result["map@5"] == pytest.approx(result["map"])


def test_graded_ndcg_known_value():
    # Ranking: c (grade 0), a (grade 3), b (grade 1), d (grade 2), e (grade 0).
    scores = np.array([[0.8, 0.6, 0.9, 0.3, 0.1]])
    qrels = {"q": {"a": 3, "b": 1, "d": 2, "e": 0}}
    dcg = 3 * _log2(2) + 1 * _log2(3) + 2 * _log2(4)
    ideal = 3 * _log2(1) + 2 * _log2(2) + 1 * _log2(3)
    value = per_query("ndcg", scores, ev.relevance_matrix(qrels, ["q"], ITEMS)[0], 5)
    assert value[0] == pytest.approx(dcg / ideal)
    exp_dcg = 7 * _log2(2) + 1 * _log2(3) + 3 * _log2(4)
    exp_ideal = 7 * _log2(1) + 3 * _log2(2) + 1 * _log2(3)
    exponential = evaluate(
        scores, qrels, query_ids=["q"], item_ids=ITEMS, k=5, metrics=["ndcg"], gain="exponential"
    )
    assert exponential["ndcg@5"] == pytest.approx(exp_dcg / exp_ideal)


def test_ndcg_at_k_ideal_uses_the_best_k_grades():
    # Top-1 holds grade 1 while a grade-2 item exists: nDCG@1 = 1/2.
    scores = np.array([[0.9, 0.1]])
    assert per_query("ndcg", scores, np.array([[1, 2]]), 1)[0] == pytest.approx(0.5)


def test_ties_are_broken_by_item_order():
    scores = np.array([[1.0, 1.0, 1.0]])
    relevance = np.array([[0, 0, 1]])
    assert per_query("mrr", scores, relevance)[0] == pytest.approx(1 / 3)
    # Moving the relevant item to the first column flips the outcome: documented behaviour.
    assert per_query("mrr", scores, relevance[:, ::-1])[0] == 1.0
    # Ranked 1, 3, 0, 2: each tie keeps its column order.
    scores = np.array([[0.5, 2.0, 0.5, 2.0]])
    ranks = [1 / per_query("mrr", scores, np.eye(4, dtype=int)[[i]])[0] for i in range(4)]
    assert ranks == pytest.approx([3, 1, 4, 2])


def test_minus_infinity_ranks_last_and_cutoff_beyond_items_is_fine():
    scores = np.array([[-np.inf, 0.0, 1.0]])
    relevance = np.array([[1, 0, 0]])
    assert per_query("mrr", scores, relevance)[0] == pytest.approx(1 / 3)
    assert per_query("recall", scores, relevance, 10)[0] == 1.0
    assert per_query("precision", scores, relevance, 10)[0] == pytest.approx(0.1)


def test_per_query_values_and_mean():
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    qrels = {"q1": {"x": 1}, "q2": {"x": 1}}
    frame = ev.evaluate_per_query(scores, qrels, query_ids=["q1", "q2"], item_ids=["x", "y", "z"])
    assert list(frame.index) == ["q1", "q2"]
    assert frame.loc["q1", "mrr"] == 1.0 and frame.loc["q2", "mrr"] == pytest.approx(1 / 3)
    assert list(frame["num_relevant"]) == [1, 1]
    means = evaluate(scores, qrels, query_ids=["q1", "q2"], item_ids=["x", "y", "z"])
    assert means["mrr"] == pytest.approx((1 + 1 / 3) / 2)
    assert set(means) >= {"ndcg@1", "ndcg@5", "ndcg@10", "recall@10", "mrr@10", "map@10"}


# ---------------------------------------------------------------------------------------------
# Independent reference: scikit-learn (no ties, so its tie averaging does not apply)
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**31 - 1),
    st.integers(min_value=2, max_value=30),
    st.integers(min_value=1, max_value=8),
)
def test_ndcg_and_ap_match_sklearn(seed, n_items, n_queries):
    rng = np.random.default_rng(seed)
    # A random permutation per row guarantees distinct scores.
    scores = np.stack([rng.permutation(n_items) for _ in range(n_queries)]).astype(float)
    grades = rng.integers(0, 4, size=(n_queries, n_items))
    grades[:, 0] = np.maximum(grades[:, 0], 1)  # every query has a relevant item
    for k in (1, 3, n_items):
        ours = per_query("ndcg", scores, grades, k)
        reference = [ndcg_score(grades[[q]], scores[[q]], k=k) for q in range(n_queries)]
        np.testing.assert_allclose(ours, reference, rtol=1e-9)
    binary = (grades > 0).astype(int)
    ours = per_query("map", scores, binary)
    reference = [average_precision_score(binary[q], scores[q]) for q in range(n_queries)]
    np.testing.assert_allclose(ours, reference, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# Queries without relevant items, unknown ids
# ---------------------------------------------------------------------------------------------


def test_queries_without_relevant_items_are_skipped_by_default():
    scores = np.array([[2.0, 1.0], [2.0, 1.0], [2.0, 1.0]])
    qrels = {"q1": {"x": 1}, "q2": {"x": 0}}  # q2 judged but nothing relevant; q3 not judged
    ids = dict(query_ids=["q1", "q2", "q3"], item_ids=["x", "y"])
    result = evaluate(scores, qrels, **ids)
    assert result["mrr"] == 1.0
    assert result["num_queries"] == 1 and result["num_queries_without_relevant"] == 2
    zero = evaluate(scores, qrels, **ids, no_relevant="zero")
    assert zero["mrr"] == pytest.approx(1 / 3) and zero["num_queries"] == 3
    with pytest.raises(ValueError, match="query 'q2' has no relevant item"):
        evaluate(scores, qrels, **ids, no_relevant="error")
    frame = ev.evaluate_per_query(scores, qrels, **ids)
    assert np.isnan(frame.loc["q2", "ndcg@10"]) and frame.loc["q2", "num_relevant"] == 0


def test_no_query_with_relevant_items_is_an_error():
    with pytest.raises(ValueError, match="none of the 1 queries has a relevant item"):
        evaluate(np.ones((1, 2)), {"q": {"x": 0}}, query_ids=["q"], item_ids=["x", "y"])


def test_unknown_items_error_by_default_and_hint_at_types():
    scores = np.array([[2.0, 1.0]])
    with pytest.raises(KeyError, match="judges item 'z', which is not in item_ids"):
        evaluate(scores, {"q": {"x": 1, "z": 1}}, query_ids=["q"], item_ids=["x", "y"])
    with pytest.raises(KeyError, match="type str, the ids have 1 of type int"):
        evaluate(scores, {"q": {"1": 1}}, query_ids=["q"], item_ids=[1, 2])


def test_unknown_items_drop_or_count():
    scores = np.array([[2.0, 1.0]])
    qrels = {"q": {"x": 1, "z": 1}}
    with pytest.warns(UserWarning, match="1 judgment"):
        dropped = evaluate(
            scores, qrels, query_ids=["q"], item_ids=["x", "y"], unknown_items="drop"
        )
    assert dropped["recall@1"] == 1.0 and dropped["map"] == 1.0
    counted = evaluate(
        scores, qrels, query_ids=["q"], item_ids=["x", "y"], unknown_items="count", k=2
    )
    assert counted["recall@2"] == 0.5
    assert counted["map"] == 0.5
    assert counted["ndcg@2"] == pytest.approx(1.0 / (1.0 + _log2(2)))


def test_unscored_judged_queries_are_ignored_but_no_overlap_is_an_error():
    scores = np.array([[2.0, 1.0]])
    result = evaluate(
        scores, {"q": {"x": 1}, "other": {"y": 1}}, query_ids=["q"], item_ids=["x", "y"]
    )
    assert result["num_queries"] == 1
    with pytest.raises(KeyError, match="none of the 1 query_ids has judgments"):
        evaluate(scores, {1: {"x": 1}}, query_ids=["1"], item_ids=["x", "y"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(scores=np.ones(3)), ValueError, "scores has shape \\(3,\\)"),
        (dict(query_ids=["q", "r"]), ValueError, "query_ids has 2 ids but scores has 1 rows"),
        (dict(item_ids=["x"]), ValueError, "item_ids has 1 ids but scores has 2 columns"),
        (dict(item_ids=["x", "x"]), ValueError, "item_ids\\[1\\] = 'x' repeats item_ids\\[0\\]"),
        (dict(scores=np.array([[np.nan, 1.0]])), ValueError, "scores\\[0, 0\\] is NaN"),
        (dict(k=0), ValueError, "every cutoff must be an integer >= 1"),
        (dict(k=()), ValueError, "k is empty"),
        (dict(metrics=["ndcg", "f1"]), ValueError, "metric='f1'"),
        (dict(qrels={"q": {"x": 1.5}}), TypeError, "grades must be integers"),
        (dict(qrels={"q": ["x"]}), TypeError, "expected a dict"),
        (dict(unknown_items="ignore"), ValueError, "unknown_items='ignore'"),
    ],
)
def test_bad_inputs_name_the_input(kwargs, error, message):
    arguments = dict(
        scores=np.array([[2.0, 1.0]]), qrels={"q": {"x": 1}}, query_ids=["q"], item_ids=["x", "y"]
    )
    arguments.update(kwargs)
    scores, qrels = arguments.pop("scores"), arguments.pop("qrels")
    with pytest.raises(error, match=message):
        evaluate(scores, qrels, **arguments)


# ---------------------------------------------------------------------------------------------
# Document level
# ---------------------------------------------------------------------------------------------


def test_document_scores_take_the_best_chunk():
    chunk_scores = np.array([[0.1, 0.9, 0.3, 0.5, 0.2], [0.7, 0.2, 0.8, 0.1, 0.0]])
    doc_scores, doc_ids = ev.document_scores(chunk_scores, ["d1", "d1", "d2", "d3", "d2"])
    assert doc_ids == ["d1", "d2", "d3"]
    np.testing.assert_array_equal(doc_scores, [[0.9, 0.3, 0.5], [0.7, 0.8, 0.1]])


def test_document_scores_keep_first_appearance_order_and_dtype():
    chunk_scores = np.array([[1, 2, 3, 4]], dtype=np.float32)
    doc_scores, doc_ids = ev.document_scores(chunk_scores, [7, "b", 7, "a"])
    assert doc_ids == [7, "b", "a"]
    assert doc_scores.dtype == np.float32
    np.testing.assert_array_equal(doc_scores, [[3, 2, 4]])


def test_document_scores_matches_a_loop_on_random_input():
    rng = np.random.default_rng(0)
    chunk_scores = rng.normal(size=(6, 200))
    doc_of_chunk = [f"doc{i}" for i in rng.integers(0, 17, size=200)]
    doc_scores, doc_ids = ev.document_scores(chunk_scores, doc_of_chunk)
    for column, doc in enumerate(doc_ids):
        mask = np.array([d == doc for d in doc_of_chunk])
        np.testing.assert_array_equal(doc_scores[:, column], chunk_scores[:, mask].max(axis=1))


def test_document_scores_validates():
    with pytest.raises(ValueError, match="chunk_doc_ids has 1 ids but chunk_scores has 2"):
        ev.document_scores(np.ones((1, 2)), ["d"])
    doc_scores, doc_ids = ev.document_scores(np.ones((3, 0)), [])
    assert doc_scores.shape == (3, 0) and doc_ids == []


def test_evaluate_levels_chunk_and_document():
    chunk_keys = ["d1#0", "d1#1", "d2#0", "d2#1"]
    chunk_doc_ids = ["d1", "d1", "d2", "d2"]
    # The answer chunk d1#1 ranks second at chunk level; its document ranks first.
    scores = np.array([[0.2, 0.8, 0.9, 0.1]])
    result = evaluate_levels(
        scores,
        query_ids=["q"],
        chunk_keys=chunk_keys,
        chunk_doc_ids=chunk_doc_ids,
        chunk_qrels={"q": {"d1#1": 1}},
        doc_qrels={"q": {"d1": 1}},
        k=(1,),
    )
    assert result["chunk"]["mrr"] == 0.5 and result["chunk"]["recall@1"] == 0.0
    assert result["document"]["mrr"] == 0.5  # d2 (0.9) beats d1 (0.8)
    scores = np.array([[0.2, 0.95, 0.9, 0.1]])
    result = evaluate_levels(
        scores,
        query_ids=["q"],
        chunk_keys=chunk_keys,
        chunk_doc_ids=chunk_doc_ids,
        chunk_qrels={"q": {"d1#1": 1}},
        doc_qrels={"q": {"d1": 1}},
        k=(1,),
    )
    assert result["chunk"]["mrr"] == 1.0 and result["document"]["ndcg@1"] == 1.0


def test_cosine_scores():
    queries = np.array([[1.0, 0.0], [0.0, 0.0]])
    items = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, -3.0]])
    scores = ev.cosine_scores(queries, items)
    assert scores.dtype == np.float32 and scores.shape == (2, 3)
    np.testing.assert_allclose(scores[0], [1.0, 1 / math.sqrt(2), 0.0], atol=1e-6)
    np.testing.assert_array_equal(scores[1], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="dimension 2 but item_vectors 3"):
        ev.cosine_scores(queries, np.ones((1, 3)))


def test_identical_items_get_identical_scores_wherever_their_columns_fall():
    """A float32 matrix product scores two copies of one vector differently in the last bit,
    depending on their columns' place in the BLAS tiles; a tie between duplicate chunks must stay
    a tie, so that the ranking's tie rule (item order) decides it on every machine."""
    rng = np.random.default_rng(0)
    items = rng.standard_normal((300, 384)).astype(np.float32)
    items[235] = items[59]
    items[299] = items[0]
    queries = rng.standard_normal((80, 384)).astype(np.float32)
    scores = ev.cosine_scores(queries, items)
    np.testing.assert_array_equal(scores[:, 59], scores[:, 235])
    np.testing.assert_array_equal(scores[:, 0], scores[:, 299])


def test_mean_metrics_skips_or_zeroes_queries_without_relevant_items():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3], [0.1, 0.2, 0.3]])
    qrels = {"a": {"x": 1}, "b": {"z": 2}}  # c has no relevant item
    options = dict(query_ids=["a", "b", "c"], item_ids=["x", "y", "z"], k=2)
    frame = ev.evaluate_per_query(scores, qrels, **options)
    skip = ev.mean_metrics(frame)
    assert skip["mrr"] == pytest.approx((1 + 1 / 2) / 2) and skip["num_queries"] == 2
    assert set(skip) == {*frame.columns.drop("num_relevant"), "num_queries",
                         "num_queries_without_relevant"}  # fmt: skip
    zero = ev.mean_metrics(frame, "zero")
    assert zero["mrr"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert zero["num_queries"] == 3 and zero["num_queries_without_relevant"] == 1
    with pytest.raises(KeyError, match="no 'num_relevant' column"):
        ev.mean_metrics(frame.drop(columns="num_relevant"))
    with pytest.raises(ValueError, match="no_relevant='never'"):
        ev.mean_metrics(frame, "never")
