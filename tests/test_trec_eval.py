"""lc_utils.eval.metrics held to trec_eval, through pytrec_eval (the scorer MTEB uses).

The library keeps its own metrics: they work on score matrices at chunk and document level and
break ties by column order, deterministically. Here they must give trec_eval's values on random
score matrices with graded judgments: nDCG@10 (``ndcg_cut.10``, linear gain), MAP (``map``, and
``map_cut.10`` for ``map@10``), recall@10, precision@10 and MRR (``recip_rank``, uncut).

Where the two conventions differ, a test shows it:

* **Ties.** trec_eval orders tied items by document id, descending, as strings ("d9" before
  "d10"); lc_utils keeps the order of the columns. With the columns in that order the two agree
  exactly; in another order they differ.
* **A query whose judgments are all 0.** trec_eval scores it 0 and counts it; lc_utils has no
  value for it (NaN) and leaves it out of the means, unless ``no_relevant="zero"``.
"""

import numpy as np
import pytest
import pytrec_eval

import lc_utils as lc

K = 10
# lc_utils column -> trec_eval measure (pytrec_eval's names).
MEASURES = {
    f"ndcg@{K}": f"ndcg_cut_{K}",
    "map": "map",
    f"map@{K}": f"map_cut_{K}",
    f"recall@{K}": f"recall_{K}",
    f"precision@{K}": f"P_{K}",
    "mrr": "recip_rank",
}
REQUESTED = {"ndcg_cut.10", "map", "map_cut.10", "recall.10", "P.10", "recip_rank"}


def random_case(seed, *, n_queries=50, n_items=300, ties=False):
    """Scores in random order, distinct in float32 too (``n_items`` values spaced evenly over
    [-3, 3]); 1 to 29 judged items per query with grades 0 to 3 (at least one > 0). Item ids are
    unpadded ("d7", "d42", "d250"), so their string order differs from their number order."""
    rng = np.random.default_rng(seed)
    values = np.linspace(-3, 3, n_items)
    scores = np.stack([rng.permutation(values) for _ in range(n_queries)])
    if ties:
        scores = np.round(scores, 1)  # about 60 distinct values: many ties in every row
    query_ids = [f"q{i}" for i in range(n_queries)]
    item_ids = [f"d{i}" for i in range(n_items)]
    qrels = {}
    for query in query_ids:
        judged = rng.choice(n_items, size=int(rng.integers(1, 30)), replace=False)
        grades = rng.integers(0, 4, size=len(judged))
        grades[0] = max(grades[0], 1)
        qrels[query] = {item_ids[i]: int(g) for i, g in zip(judged, grades, strict=True)}
    return scores, query_ids, item_ids, qrels


def trec_eval(scores, query_ids, item_ids, qrels):
    run = {
        query: {item: float(score) for item, score in zip(item_ids, row, strict=True)}
        for query, row in zip(query_ids, scores, strict=True)
    }
    return pytrec_eval.RelevanceEvaluator(qrels, REQUESTED).evaluate(run)


def ours(scores, query_ids, item_ids, qrels):
    return lc.eval.metrics.evaluate_per_query(
        scores, qrels, query_ids=query_ids, item_ids=item_ids, k=K,
        metrics=["ndcg", "map", "recall", "precision", "mrr"],
    )  # fmt: skip


def largest_difference(frame, theirs, queries):
    return max(
        abs(frame.loc[query, name] - theirs[query][measure])
        for query in queries
        for name, measure in MEASURES.items()
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_metrics_equal_trec_eval_on_random_graded_scores(seed, dtype):
    scores, query_ids, item_ids, qrels = random_case(seed)
    scores = scores.astype(dtype)
    assert all(len(set(row)) == len(row) for row in scores)  # no ties: no convention applies
    frame, theirs = (
        ours(scores, query_ids, item_ids, qrels),
        trec_eval(scores, query_ids, item_ids, qrels),
    )
    assert sorted(theirs) == sorted(query_ids)
    assert largest_difference(frame, theirs, query_ids) < 1e-12
    means = lc.eval.metrics.mean_metrics(frame)
    for name, measure in MEASURES.items():
        mean = np.mean([theirs[q][measure] for q in query_ids])
        assert means[name] == pytest.approx(mean, abs=1e-12), name


def test_ties_agree_when_the_columns_follow_trec_evals_order():
    scores, query_ids, item_ids, qrels = random_case(3, ties=True)
    order = sorted(range(len(item_ids)), key=lambda i: item_ids[i], reverse=True)  # as strings
    frame = ours(scores[:, order], query_ids, [item_ids[i] for i in order], qrels)
    theirs = trec_eval(scores, query_ids, item_ids, qrels)
    assert largest_difference(frame, theirs, query_ids) < 1e-12


def test_ties_differ_in_another_column_order_and_how():
    """lc_utils ranks tied items in column order, trec_eval by id descending: two documents with
    the same score (say, identical texts) swap places between the two."""
    scores = np.array([[0.5, 0.5, 0.1]])
    query_ids, item_ids, qrels = ["q"], ["d1", "d2", "d3"], {"q": {"d1": 1}}
    frame, theirs = (
        ours(scores, query_ids, item_ids, qrels),
        trec_eval(scores, query_ids, item_ids, qrels),
    )
    assert frame.loc["q", "mrr"] == 1.0 and theirs["q"]["recip_rank"] == 0.5  # d1 first; d2 first
    assert frame.loc["q", f"ndcg@{K}"] == 1.0
    assert theirs["q"][f"ndcg_cut_{K}"] == pytest.approx(1 / np.log2(3))
    # On the random ties, column order in id ascending order moves values, beyond rounding.
    scores, query_ids, item_ids, qrels = random_case(3, ties=True)
    moved = largest_difference(
        ours(scores, query_ids, item_ids, qrels), trec_eval(scores, query_ids, item_ids, qrels),
        query_ids,
    )  # fmt: skip
    assert moved > 0.01


def test_a_query_judged_only_at_zero_is_zero_in_trec_eval_and_left_out_here():
    scores, query_ids, item_ids, qrels = random_case(4, n_queries=10)
    qrels["q0"] = {"d1": 0, "d2": 0}
    frame, theirs = (
        ours(scores, query_ids, item_ids, qrels),
        trec_eval(scores, query_ids, item_ids, qrels),
    )
    assert all(theirs["q0"][measure] == 0.0 for measure in MEASURES.values())
    assert frame.loc["q0"].drop("num_relevant").isna().all()
    assert largest_difference(frame, theirs, query_ids[1:]) < 1e-12
    skip = lc.eval.metrics.mean_metrics(frame)
    zero = lc.eval.metrics.mean_metrics(frame, no_relevant="zero")
    assert (skip["num_queries"], zero["num_queries"]) == (9, 10)
    for name, measure in MEASURES.items():
        assert zero[name] == pytest.approx(np.mean([theirs[q][measure] for q in query_ids]))


def test_trec_eval_scores_only_the_queries_it_was_given():
    """A judged query missing from the run is dropped by pytrec_eval (not scored 0, unlike
    ``trec_eval -c``); lc_utils likewise scores the queries of the score matrix only."""
    scores, query_ids, item_ids, qrels = random_case(5, n_queries=6)
    theirs = trec_eval(scores[:4], query_ids[:4], item_ids, qrels)
    frame = ours(scores[:4], query_ids[:4], item_ids, qrels)
    assert sorted(theirs) == sorted(frame.index) == query_ids[:4]
