"""Passkey and needle tasks: deterministic, the right lengths, the needle where it was put."""

import numpy as np
import pytest

import lc_utils as lc
from lc_utils.datasets import build_needle_tasks, needle_pools, select_needles


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return tiny_model.tokenizer


@pytest.fixture(scope="module")
def tasks(tokenizer):
    return build_needle_tasks(
        tokenizer, lengths=(128, 300), depths=(0.0, 0.5, 1.0), documents_per_depth=2, seed=3
    )


def test_every_pool_holds_one_needle_per_document_with_a_query_for_it(tasks):
    assert needle_pools(tasks) == [
        ("passkey", 128),
        ("passkey", 300),
        ("needle", 128),
        ("needle", 300),
    ]
    assert len(tasks.documents) == len(tasks.queries) == 4 * 6
    for query_id, row in tasks.query_info.iterrows():
        text = tasks.documents[row.doc_id]
        [(doc_id, start, end)] = tasks.qrels_spans[query_id]
        assert (doc_id, start, end) == (row.doc_id, row.start, row.end)
        assert text[start:end] == row.needle and text.count(row.needle) == 1
        assert tasks.qrels_doc[query_id] == {row.doc_id: 1}
        # The query asks for the fact without giving the answer away; the needle holds it.
        assert row.answer in row.needle and row.answer not in tasks.queries[query_id]
    # Within a pool no two queries ask about the same person.
    for kind, length in needle_pools(tasks):
        queries = list(select_needles(tasks, kinds=[kind], lengths=[length]).queries.values())
        assert len(set(queries)) == len(queries)


def test_documents_have_the_asked_length_in_tokens(tasks, tokenizer):
    for row in tasks.query_info.itertuples():
        n_tokens = len(lc.tokenize_document(tokenizer, tasks.documents[row.doc_id]))
        assert n_tokens == row.n_tokens
        assert abs(n_tokens - row.length) <= 3


def test_the_needle_sits_at_its_depth_on_a_sentence_boundary(tasks, tokenizer):
    for row in tasks.query_info.itertuples():
        text = tasks.documents[row.doc_id]
        assert row.start == 0 or text[row.start - 1] == " "
        assert row.end == len(text) or text[row.end] == " "
        if row.depth == 0:
            assert row.start == 0
        elif row.depth == 1:
            assert row.end == len(text)
        else:
            # Moved to the nearest start of a sentence or line, so close to the target.
            assert abs(row.actual_depth - row.depth) < 0.15
            assert row.actual_depth == pytest.approx(
                row.needle_token / (row.n_tokens - len(lc.tokenize_document(tokenizer, row.needle)))
            )
        starts = lc.tokenize_document(tokenizer, text).starts
        assert starts[row.needle_token] == row.start


def test_the_same_seed_gives_the_same_tasks_and_pools_are_independent(tasks, tokenizer):
    again = build_needle_tasks(
        tokenizer, lengths=(128, 300), depths=(0.0, 0.5, 1.0), documents_per_depth=2, seed=3
    )
    assert again.documents == tasks.documents and again.queries == tasks.queries
    assert again.query_info.equals(tasks.query_info)
    only_one = build_needle_tasks(
        tokenizer, kinds=["needle"], lengths=[300], depths=(0.0, 0.5, 1.0), seed=3
    )
    pool = select_needles(tasks, kinds=["needle"], lengths=[300])
    assert only_one.documents == pool.documents and only_one.qrels_spans == pool.qrels_spans
    other = build_needle_tasks(tokenizer, lengths=[128], depths=(0.0, 0.5, 1.0), seed=4)
    assert other.documents != select_needles(tasks, kinds=["passkey"], lengths=[128]).documents


def test_passkeys_are_numbers_and_needles_come_from_their_templates(tasks):
    passkeys = tasks.query_info[tasks.query_info["kind"] == "passkey"]
    assert passkeys["answer"].str.fullmatch(r"\d{5}").all()
    assert passkeys["needle"].str.contains("pass key").all()
    needles = tasks.query_info[tasks.query_info["kind"] == "needle"]
    assert not needles["needle"].str.contains("pass key").any()


def test_a_custom_haystack_is_used(tokenizer):
    haystack = {"h": "\n\n".join(f"Filler sentence number {i} is here." for i in range(400))}
    built = build_needle_tasks(tokenizer, kinds=["passkey"], lengths=[100], depths=[0.5],
                               documents_per_depth=1, haystack=haystack)  # fmt: skip
    [text] = built.documents.values()
    assert "Filler sentence number" in text and "pass key" in text


def test_bad_arguments_are_refused(tokenizer):
    with pytest.raises(ValueError, match="valid kinds"):
        build_needle_tasks(tokenizer, kinds=["haystack"])
    with pytest.raises(ValueError, match="at least 64 tokens"):
        build_needle_tasks(tokenizer, lengths=[10])
    with pytest.raises(ValueError, match=r"fractions in \[0, 1\]"):
        build_needle_tasks(tokenizer, depths=[1.5])
    with pytest.raises(ValueError, match="documents per pool"):
        build_needle_tasks(tokenizer, documents_per_depth=20)
    with pytest.raises(ValueError, match="too short"):
        build_needle_tasks(tokenizer, lengths=[5000], haystack={"h": "Short text. " * 10})
    with pytest.raises(KeyError, match="no pool"):
        select_needles(
            build_needle_tasks(tokenizer, lengths=[128], depths=[0.0]),
            kinds=["needle"],
            lengths=[999],
        )


def test_evaluate_needles_scores_each_pool_on_its_own(tiny_model):
    tasks = build_needle_tasks(
        tiny_model.tokenizer, lengths=[96], depths=(0.0, 1.0), documents_per_depth=2, seed=1
    )
    results = lc.studies.long_documents.evaluate_needles(
        tiny_model, tasks, chunk_options={"chunk_size": 16}
    )
    frame = results.per_query
    assert len(frame) == 8 * 2 * 2 and set(results.comparisons) == set(needle_pools(tasks))
    # Each pool is its own corpus: its records hold its own documents only.
    for (kind, length), comparison in results.comparisons.items():
        assert {r["doc_id"] for r in comparison.records} == set(
            select_needles(tasks, kinds=[kind], lengths=[length]).documents
        )
    # The relevant cosine, recomputed for one query: the query against its best needle chunk.
    row = frame[(frame["method"] == "late") & (frame["level"] == "chunk")].iloc[0]
    comparison = results.comparisons[row["kind"], row["length"]]
    query = lc.embed_queries(tiny_model, tasks.queries[row["query_id"]])[0]
    needle = tasks.query_info.loc[row["query_id"]]
    rows = [
        i
        for i, r in enumerate(comparison.records)
        if r["doc_id"] == needle.doc_id and r["start"] < needle.end and needle.start < r["end"]
    ]
    vectors = comparison.vectors["late"][rows]
    expected = max(float(v @ query / np.linalg.norm(v) / np.linalg.norm(query)) for v in vectors)
    assert row["relevant_cosine"] == pytest.approx(expected, abs=1e-5)
    gains = results.gains("depth", n_resamples=50)
    assert set(gains["depth"]) == {0.0, 1.0} and set(gains["level"]) == {"chunk", "document"}
    assert (gains["num_queries"] == 4).all() and (gains["low"] <= gains["high"]).all()
    assert results.table().shape == (2, 4)
