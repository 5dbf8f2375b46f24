"""MTEB 2.x end to end, offline, with nothing mocked: a BEIR folder as an MTEB retrieval task,
the package's search system, and MTEB's own ``mteb.evaluate`` and scorer (pytrec_eval).

The folder is the one tests/test_paper_notebooks.py writes for notebook 11 (five documents, graded
judgments, a query judged only partly, a query never judged). MTEB's nDCG@10 must equal notebook
11's own computation (``load_benchmark``, fixed chunks, ``compare_naive_late`` at document level,
and the no-chunking baseline) on the same vectors, per query and in the mean. MTEB rounds its
means to 5 decimals, so the mean is read unrounded from the task's own scores
(``ndcg_at_10_unrounded``, pytrec_eval's per-query values averaged).
"""

import time

import datasets
import mteb
import numpy as np
import pytest

import lc_utils as lc
from lc_utils.eval.mteb import BestChunkSearch, beir_folder_task, evaluate_tasks
from lc_utils.eval.mteb.__main__ import main

from .test_paper_notebooks import write_beir

CHUNK_SIZE = 8


def notebook_11(model, folder):
    """Notebook 11's computation, its own calls in its own order: per-query document nDCG@10
    and the vectors scored, for naive, late and no chunking."""
    bench = lc.studies.paper.load_benchmark(str(folder))
    chunks = {
        doc_id: lc.chunk_text(text, "fixed", tokenizer=model.tokenizer, chunk_size=CHUNK_SIZE)
        for doc_id, text in bench.documents.items()
    }
    query_ids = list(bench.queries)
    query_vectors = lc.embed_queries(model, [bench.queries[q] for q in query_ids])
    comparison = lc.eval.compare_naive_late(
        model, bench, chunks, query_vectors=query_vectors, progress=False
    )
    doc_ids = list(bench.documents)
    document_vectors = lc.naive_chunking(model, [bench.documents[d] for d in doc_ids])
    scores = lc.vectors.cosine_scores(query_vectors, document_vectors)
    no_chunking = lc.eval.metrics.evaluate_per_query(
        scores, bench.qrels_doc, query_ids=query_ids, item_ids=doc_ids
    )
    per_query = {
        "naive": comparison.per_query["naive"]["document"]["ndcg@10"],
        "late": comparison.per_query["late"]["document"]["ndcg@10"],
        "none": no_chunking["ndcg@10"],
    }
    vectors = {**comparison.vectors, "none": document_vectors}
    return per_query, vectors


def run_mteb(search, folder, **options):
    result = mteb.evaluate(search, beir_folder_task(folder), cache=None, show_progress_bar=False,
                           co2_tracker=False, **options)  # fmt: skip
    return result.task_results[0].scores["test"][0]


@pytest.mark.parametrize("method", ["naive", "late", "none"])
def test_mteb_on_a_beir_folder_equals_notebook_11(tmp_path, tiny_model, method):
    folder = write_beir(tmp_path / "mini")
    search = BestChunkSearch(tiny_model, method, chunk_options={"chunk_size": CHUNK_SIZE})
    scores = run_mteb(search, folder)
    per_query, vectors = notebook_11(tiny_model, folder)
    expected = per_query[method]
    # The same vectors were scored: chunks in the same order, equal to the last bit.
    assert np.array_equal(search.vectors, vectors[method])
    if method != "none":  # several chunks per document, so the best-chunk rule matters
        assert len(search.chunk_doc_ids) > 2 * len(set(search.chunk_doc_ids))
    # q5 has no judgment: MTEB drops it before searching, notebook 11 when loading.
    judged = ["q1", "q2", "q3", "q4"]
    assert sorted(scores["ndcg_at_10_per_query"]) == sorted(expected.index) == judged
    for query, value in expected.items():
        assert scores["ndcg_at_10_per_query"][query] == pytest.approx(value, abs=1e-12), query
    assert scores["ndcg_at_10_unrounded"] == pytest.approx(expected.mean(), abs=1e-6)
    assert scores["ndcg_at_10"] == pytest.approx(expected.mean(), abs=5e-6)  # rounded by MTEB
    assert scores["main_score"] == scores["ndcg_at_10"]


def test_a_query_judged_only_at_grade_zero_counts_as_zero_in_mteb(tmp_path, tiny_model):
    """Where the two conventions part on any BEIR folder (docs/evaluation.md): MTEB scores
    a query whose judgments are all 0 and counts it as 0; lc_utils leaves it out by default,
    and ``no_relevant="zero"`` reproduces MTEB."""
    folder = write_beir(tmp_path / "mini")
    with (folder / "qrels" / "test.tsv").open("a") as qrels:
        qrels.write("q5\td2\t0\n")  # q5 is now judged, but nothing is relevant to it
    search = BestChunkSearch(tiny_model, "late", chunk_options={"chunk_size": CHUNK_SIZE})
    scores = run_mteb(search, folder)
    assert scores["ndcg_at_10_per_query"]["q5"] == 0.0
    _, queries, qrels = lc.datasets.read_beir_folder(folder)  # every grade, 0 included
    query_ids = list(queries)
    chunk_scores = lc.vectors.cosine_scores(
        lc.embed_queries(tiny_model, [queries[q] for q in query_ids]), search.vectors
    )
    doc_scores, doc_ids = lc.eval.document_scores(chunk_scores, search.chunk_doc_ids)
    options = dict(query_ids=query_ids, item_ids=doc_ids, k=10, metrics=["ndcg"])
    frame = lc.eval.evaluate_per_query(doc_scores, qrels, **options)
    skip, zero = lc.eval.mean_metrics(frame), lc.eval.mean_metrics(frame, no_relevant="zero")
    assert (skip["num_queries"], zero["num_queries"]) == (4, 5)
    assert zero["ndcg@10"] == pytest.approx(scores["ndcg_at_10_unrounded"], abs=1e-12)
    assert skip["ndcg@10"] > zero["ndcg@10"]


def test_the_search_system_is_mtebs_search_protocol_and_nothing_else(tiny_model):
    search = BestChunkSearch(tiny_model, "late")
    assert isinstance(search, mteb.SearchProtocol)
    assert not isinstance(search, mteb.models.EncoderProtocol)
    with pytest.raises(ValueError, match="method='dense'; valid"):
        BestChunkSearch(tiny_model, "dense")
    with pytest.raises(ValueError, match="window=4096 exceeds"):
        BestChunkSearch(tiny_model, "late", window=4096)
    with pytest.raises(RuntimeError, match="before index"):
        search.search(datasets.Dataset.from_dict({"id": ["q"], "text": ["x"]}), top_k=10)


def test_search_answers_top_k_reranking_candidates_and_instructions(tiny_model):
    corpus = datasets.Dataset.from_dict({
        "id": ["a", "b", "c"], "title": ["Bees", "", None],
        "text": ["Bees dance.", "Tides rise twice a day.", "Ash buries towns."],
    })  # fmt: skip
    search = BestChunkSearch(tiny_model, "naive", chunk_options={"chunk_size": CHUNK_SIZE})
    search.index(corpus)
    assert search.chunk_doc_ids[0] == "a" and set(search.chunk_doc_ids) == {"a", "b", "c"}
    queries = datasets.Dataset.from_dict({"id": ["q1", "q2"], "text": ["tide", "bees"]})
    top = search.search(queries, top_k=2)
    assert [len(docs) for docs in top.values()] == [2, 2]
    everything = search.search(queries, top_k=1000)
    for query, docs in top.items():
        ranked = sorted(everything[query], key=everything[query].get, reverse=True)
        assert list(docs) == ranked[:2]
    reranked = search.search(queries, top_k=1000, top_ranked={"q1": ["c", "zzz"], "q2": []})
    assert reranked == {"q1": {"c": everything["q1"]["c"]}, "q2": {}}
    instructed = datasets.Dataset.from_dict(
        {"id": ["q1"], "text": ["tide"], "instruction": ["Find the page."]}
    )
    query_vector = lc.embed_queries(tiny_model, ["tide Find the page."])
    best = {
        doc: max(float(s) for s, d in zip(row, search.chunk_doc_ids, strict=True) if d == doc)
        for row in lc.vectors.cosine_scores(query_vector, search.vectors)
        for doc in ("a", "b", "c")
    }
    assert search.search(instructed, top_k=3)["q1"] == pytest.approx(best, abs=1e-12)


def test_the_results_are_filed_under_every_setting(tmp_path, tiny_model, tiny_model_dir):
    """MTEB reuses a cached result for the same model name, revision and experiment settings;
    each setting that changes a score must change where the result is filed."""
    late = BestChunkSearch(tiny_model, "late", chunk_options={"chunk_size": CHUNK_SIZE})
    meta = late.mteb_model_meta
    assert meta.name == f"local/{tiny_model_dir.name}" and meta.revision.startswith("local-")
    spelled_out = BestChunkSearch(  # the default overlap, given by value
        tiny_model, "late", chunk_options={"chunk_size": CHUNK_SIZE}, overlap=late.overlap
    )
    assert meta == spelled_out.mteb_model_meta
    others = [
        BestChunkSearch(tiny_model, "naive", chunk_options={"chunk_size": CHUNK_SIZE}),
        BestChunkSearch(tiny_model, "late", chunk_options={"chunk_size": 16}),
        BestChunkSearch(tiny_model, "late", chunk_options={"chunk_size": CHUNK_SIZE}, window=64),
        BestChunkSearch(tiny_model, "late", chunk_options={"chunk_size": CHUNK_SIZE}, overlap=3),
        BestChunkSearch(tiny_model, "late", chunk_options={"chunk_size": CHUNK_SIZE},
                        title_separator=" "),
        BestChunkSearch(tiny_model, "late", strategy="sentences"),
        BestChunkSearch(tiny_model, "none"),
    ]  # fmt: skip
    names = {meta.experiment_name, *(o.mteb_model_meta.experiment_name for o in others)}
    assert len(names) == 1 + len(others)
    settings = late.settings()
    assert (settings["window"], settings["overlap"], settings["chunking"]) == (512, 31, "fixed-8")

    folder = write_beir(tmp_path / "mini")
    output = tmp_path / "results"
    first = evaluate_tasks(tiny_model, [str(folder)], ["late", "naive"], chunk_options={
        "chunk_size": CHUNK_SIZE}, output_dir=output, progress=False)  # fmt: skip
    files = sorted(output.rglob("BEIR-mini.json"))
    assert len(files) == 2 and all(meta.revision in str(f) for f in files)
    score = dict(zip(first["method"], first["score"], strict=True))
    assert score["late"] != score["naive"]
    again = evaluate_tasks(tiny_model, [str(folder)], ["naive", "late"], chunk_options={
        "chunk_size": CHUNK_SIZE}, output_dir=output, progress=False)  # fmt: skip
    assert dict(zip(again["method"], again["score"], strict=True)) == score
    assert set(first.columns) == {"task", "split", "subset", "method", "main_score", "score"}
    assert set(first["main_score"]) == {"ndcg_at_10"}


def test_the_command_runs_a_beir_folder_offline(tmp_path, tiny_model_dir, capsys):
    folder = write_beir(tmp_path / "mini")
    code = main(["--model", str(tiny_model_dir), "--tasks", str(folder), "--method", "late",
                 "none", "--chunk-size", "8", "--output-dir", str(tmp_path / "out")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "BEIR-mini" in out and "late" in out and "none" in out
    assert len(list((tmp_path / "out").rglob("BEIR-mini.json"))) == 2


def test_the_command_stops_within_seconds_offline_before_loading_a_model(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    began = time.monotonic()
    code = main(["--model", str(tmp_path / "no-such-model"), "--tasks", "SciFact",
                 "LEMBPasskeyRetrieval", "--output-dir", str(tmp_path / "out")])  # fmt: skip
    assert time.monotonic() - began < 15
    error = capsys.readouterr().err
    assert code == 2 and "SciFact (mteb/scifact)" in error and "LEMBPasskeyRetrieval" in error
    assert "BEIR folder" in error and "no-such-model" not in error
    assert not (tmp_path / "out").exists()
