"""Comparing methods: paired differences with bootstrap intervals, evaluate_methods, pool_records
and compare_naive_late, each against an independent computation."""

import numpy as np
import pandas as pd
import pytest

import lc_utils as lc
from lc_utils import eval as ev

from .test_metrics import evaluate, evaluate_levels

# ---------------------------------------------------------------------------------------------
# Comparing methods: paired differences, evaluate_methods, pool_records, compare_naive_late
# ---------------------------------------------------------------------------------------------


def test_paired_difference_counts_and_interval():
    method = pd.Series([0.5, 0.2, 1.0, np.nan, 0.3], index=list("abcde"))
    baseline = pd.Series([0.4, 0.2, 0.0, 0.7], index=list("dcba"))  # other order, e missing
    result = ev.paired_difference(method, baseline, n_resamples=500, seed=3)
    # Aligned on the index: a 0.5-0.7, b 0.2-0.0, c 1.0-0.2; d has NaN, e no baseline.
    assert result["num_queries"] == 3
    assert result["mean"] == pytest.approx((-0.2 + 0.2 + 0.8) / 3)
    assert (result["method_better"], result["baseline_better"], result["ties"]) == (2, 1, 0)
    assert -0.2 - 1e-9 <= result["low"] <= result["mean"] <= result["high"] <= 0.8 + 1e-9
    assert ev.paired_difference(method, baseline, n_resamples=500, seed=3) == result


def test_paired_difference_interval_covers_a_known_shift():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(size=400)
    method = baseline + 0.05 + rng.normal(scale=0.1, size=400)
    result = ev.paired_difference(method, baseline, seed=0)
    assert result["low"] < 0.05 < result["high"]
    assert result["low"] > 0  # a shift of half a standard deviation over 400 pairs is clear
    same = ev.paired_difference(baseline, baseline)
    assert same["mean"] == same["low"] == same["high"] == 0.0 and same["ties"] == 400


def test_paired_difference_validates():
    with pytest.raises(ValueError, match="no query has a value for both"):
        ev.paired_difference(pd.Series([1.0], index=["a"]), pd.Series([1.0], index=["b"]))
    with pytest.raises(ValueError, match="pass two 1-D arrays"):
        ev.paired_difference(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="confidence=1.5"):
        ev.paired_difference(np.ones(3), np.ones(3), confidence=1.5)


def _toy_corpus():
    """Two documents of two chunks each; query q asks for d1's second chunk."""
    records = [
        {"doc_id": "d1", "chunk_index": 0, "start": 0, "end": 10, "text": "x" * 10},
        {"doc_id": "d1", "chunk_index": 1, "start": 11, "end": 20, "text": "x" * 9},
        {"doc_id": "d2", "chunk_index": 0, "start": 0, "end": 10, "text": "x" * 10},
        {"doc_id": "d2", "chunk_index": 1, "start": 11, "end": 30, "text": "x" * 19},
    ]
    spans = {"q": [("d1", 12, 18)], "r": [("d2", 0, 5), ("d3", 0, 5)]}
    queries = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # good ranks d1#1 first for q and d2#0 first for r; bad (the rows reversed) gets both wrong.
    good = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.7]])
    bad = good[::-1].copy()
    return records, spans, queries, good, bad


def test_evaluate_methods_matches_evaluate_levels():
    records, spans, queries, good, bad = _toy_corpus()
    comparison = ev.evaluate_methods(
        queries, ["q", "r"], records, {"good": good, "bad": bad}, qrels_spans=spans, k=(1, 2)
    )
    assert comparison.methods == ["good", "bad"]
    assert comparison.qrels_chunk == {"q": {"d1#1": 1}, "r": {"d2#0": 1}}
    # d3 holds a span but no chunk: documents outside the records are not judged.
    assert comparison.qrels_doc == {"q": {"d1": 1}, "r": {"d2": 1}}
    for method, vectors in (("good", good), ("bad", bad)):
        expected = evaluate_levels(
            lc.vectors.cosine_scores(queries, vectors),
            query_ids=["q", "r"],
            chunk_keys=["d1#0", "d1#1", "d2#0", "d2#1"],
            chunk_doc_ids=["d1", "d1", "d2", "d2"],
            chunk_qrels=comparison.qrels_chunk,
            doc_qrels=comparison.qrels_doc,
            k=(1, 2),
        )
        assert comparison.results[method] == expected
    assert comparison.results["good"]["chunk"]["mrr"] == 1.0
    assert comparison.results["bad"]["chunk"]["mrr"] < 1.0
    summary = comparison.summary(["mrr", "num_queries"])
    assert summary.loc[("chunk", "good"), "mrr"] == 1.0
    assert list(summary.index.names) == ["level", "method"]
    np.testing.assert_array_equal(comparison.vectors["bad"], bad.astype(np.float32))


def test_method_comparison_difference_and_by_kind():
    records, spans, queries, good, bad = _toy_corpus()
    comparison = ev.evaluate_methods(
        queries, ["q", "r"], records, {"naive": bad, "late": good}, qrels_spans=spans
    )
    difference = comparison.difference(metric="mrr", n_resamples=100)
    per_query = comparison.per_query
    expected = (per_query["late"]["chunk"]["mrr"] - per_query["naive"]["chunk"]["mrr"]).mean()
    assert difference["mean"] == pytest.approx(expected) and difference["num_queries"] == 2
    table = comparison.by_kind(lambda q: "kind-" + q, metric="mrr")
    assert list(table.index) == ["kind-q", "kind-r", "all"]
    assert table.loc["all", "queries"] == 2
    assert table.loc["all", "difference"] == pytest.approx(expected)
    assert table.loc["kind-q", "late"] == 1.0
    with pytest.raises(KeyError, match="method 'other' was not evaluated"):
        comparison.difference("other")
    with pytest.raises(ValueError, match="level='passage'"):
        comparison.by_kind(str, level="passage")


def test_evaluate_methods_validates_vector_rows():
    records, spans, queries, good, _ = _toy_corpus()
    with pytest.raises(ValueError, match="vectors\\['late'\\] has shape \\(3, 3\\)"):
        ev.evaluate_methods(queries, ["q", "r"], records, {"late": good[:3]}, qrels_spans=spans)
    with pytest.raises(ValueError, match="vectors is empty"):
        ev.evaluate_methods(queries, ["q", "r"], records, {}, qrels_spans=spans)


LONG_TEXT = " ".join(
    f"Sentence {i} talks about topic {i % 7} and refers back to what came before it."
    for i in range(40)
)


def test_pool_records_equals_late_embed_corpus(tiny_model):
    documents = {"long": LONG_TEXT, "short": "A short one. It fits in one window."}
    chunks = {d: lc.chunk_text(t, "sentences") for d, t in documents.items()}
    late = lc.embed_corpus(
        tiny_model, documents, chunks=chunks, window=48, overlap=8, progress=False
    )
    encoded = {
        d: lc.encode_document(tiny_model, t, window=48, overlap=8) for d, t in documents.items()
    }
    assert len(encoded["long"].plan.windows) > 5  # the long document really runs in windows
    pooled = lc.pool_records(encoded, late.records)
    np.testing.assert_allclose(pooled, late.vectors, atol=1e-5)
    with pytest.raises(KeyError, match="document 'long'.*not in encoded"):
        lc.pool_records({"short": encoded["short"]}, late.records)
    empty = [{"doc_id": "short", "start": 5, "end": 6}]  # the space between two words
    with pytest.raises(ValueError, match="record 0 .* holds no model token"):
        lc.pool_records(encoded, empty)


def test_compare_naive_late_with_and_without_encoded(tiny_model):
    documents = {"long": LONG_TEXT, "other": "Topic three is different. Nothing refers to it."}
    chunks = {d: lc.chunk_text(t, "sentences") for d, t in documents.items()}
    first = LONG_TEXT.index("Sentence 3 ")
    spans = {"q3": [("long", first, first + 40)], "q9": [("other", 0, 10)]}
    queries = {"q3": "topic 3", "q9": "different topic"}
    task = lc.datasets.RetrievalTask(documents, queries, spans)
    direct = ev.compare_naive_late(tiny_model, task, chunks, window=48, overlap=8, progress=False)
    encoded = {
        d: lc.encode_document(tiny_model, t, window=48, overlap=8) for d, t in documents.items()
    }
    reused = ev.compare_naive_late(
        tiny_model,
        task,
        chunks,
        encoded=encoded,
        query_vectors=lc.embed_queries(tiny_model, list(queries.values())),
        progress=False,
    )
    assert direct.methods == ["naive", "late"] and direct.records == reused.records
    np.testing.assert_allclose(direct.vectors["late"], reused.vectors["late"], atol=1e-5)
    for method in ("naive", "late"):
        for level in lc.eval.metrics.LEVELS:
            for name, value in direct.results[method][level].items():
                assert reused.results[method][level][name] == pytest.approx(value, abs=1e-6)
    with pytest.raises(ValueError, match="already fixed"):
        ev.compare_naive_late(tiny_model, task, chunks, encoded=encoded, window=48)
    with pytest.raises(ValueError, match="query_vectors has 1 rows for 2 queries"):
        ev.compare_naive_late(
            tiny_model, task, chunks, encoded=encoded, query_vectors=np.ones((1, tiny_model.dim))
        )


def test_within_document_cosine_matches_all_pairs():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(7, 5))
    vectors[2] = 0.0  # a zero vector has cosine 0 with everything
    records = [{"doc_id": d} for d in ["a", "a", "a", "b", "c", "c", "c"]]
    result = lc.vectors.within_document_cosine(records, vectors)
    assert list(result.index) == ["a", "c"]  # b has one chunk
    for doc in ("a", "c"):
        rows = [i for i, r in enumerate(records) if r["doc_id"] == doc]
        similarity = lc.vectors.cosine_scores(vectors[rows], vectors[rows]).astype(float)
        off_diagonal = ~np.eye(len(rows), dtype=bool)
        assert result[doc] == pytest.approx(similarity[off_diagonal].mean(), abs=1e-6)
    with pytest.raises(ValueError, match="one row per record"):
        lc.vectors.within_document_cosine(records, vectors[:3])


# ---------------------------------------------------------------------------------------------
# Chunk judgments (lc_utils.judgments, re-exported by evaluation)
# ---------------------------------------------------------------------------------------------


def record(doc_id, index, start, end):
    return {"doc_id": doc_id, "chunk_index": index, "start": start, "end": end, "text": ""}


def test_chunk_qrels_marks_overlapping_chunks():
    records = [
        record("a", 0, 0, 10),
        record("a", 1, 11, 20),
        record("a", 2, 21, 30),
        record("b", 0, 0, 15),
    ]
    spans = {
        "q1": [("a", 15, 22)],  # overlaps a#1 and a#2
        "q2": [("a", 10, 11)],  # falls in the gap between a#0 and a#1
        "q3": [("a", 0, 10), ("b", 14, 40, 2)],  # touches a#0 exactly; graded span on b
        "q4": [("zzz", 0, 5)],  # a document that was not chunked
    }
    judged = ev.chunk_qrels(spans, records)
    assert judged == {
        "q1": {"a#1": 1, "a#2": 1},
        "q2": {},
        "q3": {"a#0": 1, "b#0": 2},
        "q4": {},
    }
    # Half-open spans: [0, 10) and [10, 11) share no character.
    assert ev.chunk_qrels({"q": [("a", 10, 11)]}, records[:1]) == {"q": {}}
    assert ev.chunk_qrels(spans, records, min_overlap=5)["q1"] == {"a#1": 1}


def test_chunk_keys_and_validation():
    assert ev.chunk_key("string-methods", 3) == "string-methods#3"
    assert ev.chunk_keys([record("a", 0, 0, 1), record("b", 2, 0, 1)]) == ["a#0", "b#2"]
    with pytest.raises(KeyError, match="chunk record 0 has no 'end'"):
        ev.chunk_qrels({}, [{"doc_id": "a", "chunk_index": 0, "start": 0}])
    with pytest.raises(ValueError, match="spans characters 9–3"):
        ev.chunk_qrels({}, [record("a", 0, 9, 3)])
    with pytest.raises(ValueError, match="expected \\(doc_id, start, end\\)"):
        ev.chunk_qrels({"q": [("a", 1)]}, [record("a", 0, 0, 3)])


# ---------------------------------------------------------------------------------------------
# The studies of notebooks 06-08: several chunkings, document vectors, window plans
# ---------------------------------------------------------------------------------------------


def test_differences_by_kind_with_a_mapping_and_split_by_relevant_text():
    records, spans, queries, good, bad = _toy_corpus()
    records[1]["text"] = "it mentions alpha here"
    comparison = ev.evaluate_methods(
        queries, ["q", "r"], records, {"naive": bad, "late": good}, qrels_spans=spans
    )
    both = comparison.differences(metric="mrr", n_resamples=50, seed=1)
    assert set(both) == set(lc.eval.metrics.LEVELS)
    for level in lc.eval.metrics.LEVELS:
        assert both[level] == comparison.difference(
            metric="mrr", level=level, n_resamples=50, seed=1
        )
    by_mapping = comparison.by_kind({"q": "one", "r": "one"}, metric="mrr")
    assert list(by_mapping.index) == ["one", "all"]
    assert comparison.relevant_texts("q") == ["it mentions alpha here"]
    split = comparison.split_by_relevant_text(
        lambda query_id, text: "alpha" in text, {"q": "k", "r": "k"}, metric="mrr"
    )
    assert list(split["kind"]) == ["k", "k"] and list(split["matched"]) == [True, False]
    per_query = comparison.per_query
    difference = per_query["late"]["chunk"]["mrr"] - per_query["naive"]["chunk"]["mrr"]
    assert split.set_index("matched").loc[True, "difference"] == pytest.approx(difference["q"])
    with pytest.raises(KeyError, match="query 'zz' was not evaluated"):
        comparison.relevant_texts("zz")


def test_row_cosine():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    b[3] = 0.0
    result = lc.vectors.row_cosine(a, b)
    for i in range(5):
        norm = np.linalg.norm(a[i]) * np.linalg.norm(b[i])
        expected = a[i] @ b[i] / norm if norm else 0.0
        assert result[i] == pytest.approx(expected, abs=1e-6)
    assert lc.vectors.row_cosine(a, 3 * a) == pytest.approx(np.ones(5), abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        lc.vectors.row_cosine(a, b[:4])


@pytest.fixture(scope="module")
def study(tiny_model):
    documents = {"long": LONG_TEXT, "other": "Topic three is different. Nothing refers to it."}
    first = LONG_TEXT.index("Sentence 3 ")
    spans = {"q3": [("long", first, first + 40)], "q9": [("other", 0, 10)]}
    queries = {"q3": "topic 3", "q9": "different topic"}
    return lc.datasets.RetrievalTask(documents, queries, spans)


def test_compare_chunkings_equals_one_compare_naive_late_each(tiny_model, study):
    documents = study.documents
    chunkings = {
        "sentences": {d: lc.chunk_text(t, "sentences") for d, t in documents.items()},
        "fixed-8": {
            d: lc.chunk_text(t, "fixed", tokenizer=tiny_model.tokenizer, chunk_size=8)
            for d, t in documents.items()
        },
    }
    encoded = ev.encode_documents(tiny_model, documents, window=48, overlap=8)
    assert list(encoded) == list(documents) and len(encoded["long"].plan.windows) > 5
    comparisons = ev.compare_chunkings(tiny_model, study, chunkings, encoded=encoded)
    assert list(comparisons) == ["sentences", "fixed-8"]
    for label, chunks in chunkings.items():
        alone = ev.compare_naive_late(tiny_model, study, chunks, encoded=encoded, progress=False)
        assert comparisons[label].results == alone.results
    lengths = lc.show.chunk_lengths(tiny_model, comparisons)
    assert list(lengths.index) == ["sentences", "fixed-8"]
    assert lengths.loc["fixed-8", "longest_tokens"] == 8
    assert lengths.loc["fixed-8", "n_chunks"] == len(comparisons["fixed-8"].records)
    assert lengths.loc["sentences", "truncated_by_naive"] == 0
    with pytest.raises(ValueError, match="chunkings is empty"):
        ev.compare_chunkings(tiny_model, study, {})


def test_max_tokens_reaches_naive_chunking_only(tiny_model, study):
    documents = study.documents
    chunks = {
        d: lc.chunk_text(t, "fixed", tokenizer=tiny_model.tokenizer, chunk_size=40)
        for d, t in documents.items()
    }
    encoded = ev.encode_documents(tiny_model, documents, window=48, overlap=8)
    compare = dict(encoded=encoded, progress=False)
    with pytest.warns(UserWarning, match="truncated"):
        cut = ev.compare_naive_late(tiny_model, study, chunks, max_tokens=12, **compare)
    whole = ev.compare_naive_late(tiny_model, study, chunks, **compare)
    # Each naive vector is that of its chunk's first 10 tokens; late vectors are untouched.
    texts = [record["text"] for record in cut.records]
    expected = lc.naive_chunking(tiny_model, texts, max_tokens=12, progress=False)
    np.testing.assert_allclose(cut.vectors["naive"], expected, atol=1e-5)
    assert not np.allclose(cut.vectors["naive"], whole.vectors["naive"], atol=1e-3)
    np.testing.assert_array_equal(cut.vectors["late"], whole.vectors["late"])
    several = ev.compare_chunkings(
        tiny_model, study, {"fixed-40": chunks}, encoded=encoded, max_tokens=12
    )
    np.testing.assert_array_equal(several["fixed-40"].vectors["naive"], cut.vectors["naive"])


def test_evaluate_document_vectors_scores_whole_documents(tiny_model, study):
    documents, queries = study.documents, study.queries
    query_vectors = lc.embed_queries(tiny_model, list(queries.values()))
    qrels_doc = {"q3": {"long": 1}, "q9": {"other": 1}}
    assert study.qrels_doc == qrels_doc  # derived from the spans
    baseline = ev.evaluate_document_vectors(tiny_model, study, query_vectors)
    assert ev.evaluate_document_vectors(tiny_model, study).results == baseline.results
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vectors = lc.naive_chunking(tiny_model, list(documents.values()))
    expected = evaluate(
        lc.vectors.cosine_scores(query_vectors, vectors),
        qrels_doc,
        query_ids=list(queries),
        item_ids=list(documents),
    )
    assert baseline.results == expected
    n_long = len(lc.tokenize_document(tiny_model.tokenizer, LONG_TEXT))
    n_other = len(lc.tokenize_document(tiny_model.tokenizer, documents["other"]))
    content = tiny_model.window().content_tokens
    assert n_long > content  # the long document is truncated
    assert baseline.token_coverage == pytest.approx((content + n_other) / (n_long + n_other))


def test_compare_window_plans_keeps_naive_and_late_and_adds_the_new_plan(tiny_model, study):
    documents, queries = study.documents, study.queries
    chunks = {d: lc.chunk_text(t, "sentences") for d, t in documents.items()}
    encoded = ev.encode_documents(tiny_model, documents, window=48, overlap=8)
    query_vectors = lc.embed_queries(tiny_model, list(queries.values()))
    comparison = ev.compare_naive_late(
        tiny_model, study, chunks, encoded=encoded, query_vectors=query_vectors, progress=False
    )
    blind = ev.encode_documents(tiny_model, {"long": LONG_TEXT}, window=48, overlap=0)
    plans = ev.compare_window_plans(comparison, study, blind, query_vectors, name="no overlap")
    assert plans.methods == ["naive", "late", "no overlap"]
    assert {r["doc_id"] for r in plans.records} == {"long"}
    rows = [i for i, r in enumerate(comparison.records) if r["doc_id"] == "long"]
    np.testing.assert_array_equal(plans.vectors["late"], comparison.vectors["late"][rows])
    np.testing.assert_allclose(
        plans.vectors["no overlap"], lc.pool_records(blind, plans.records), atol=0
    )
    # Another window plan really moves the vectors of a long document.
    assert lc.vectors.row_cosine(plans.vectors["late"], plans.vectors["no overlap"]).min() < 0.999
    assert plans.qrels_doc == {"q3": {"long": 1}, "q9": {}}
    with pytest.raises(ValueError, match="is taken"):
        ev.compare_window_plans(comparison, study, blind, query_vectors, name="late")
    with pytest.raises(ValueError, match="none of the 1 documents"):
        ev.compare_window_plans(comparison, study, {"zzz": blind["long"]}, query_vectors)


def test_long_evaluation_calls_report_progress_to_the_runners_console(
    tiny_model, study, capfd, monkeypatch
):
    from lc_utils import progress

    monkeypatch.setattr(progress, "PROGRESS_EVERY_S", 0.0)  # echo every update
    monkeypatch.setenv(progress.RUNNER_LABEL, "[6/11] 06_x")
    chunkings = {
        "sentences": {d: lc.chunk_text(t, "sentences") for d, t in study.documents.items()}
    }
    encoded = ev.encode_documents(tiny_model, study.documents, window=48, overlap=8)
    ev.compare_chunkings(tiny_model, study, chunkings, encoded=encoded)
    console = capfd.readouterr().out
    assert "    [6/11] 06_x | encoding documents:" in console
    assert "    [6/11] 06_x | naive chunking:" in console  # each chunking's naive run
    ev.encode_documents(tiny_model, study.documents, window=48, overlap=8, progress=False)
    ev.compare_chunkings(tiny_model, study, chunkings, encoded=encoded, progress=False)
    assert capfd.readouterr().out == ""
