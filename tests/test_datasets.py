"""Datasets: the BEIR loader on files written here, the offline download failure, the pydoc
corpus, query construction, the pydoc task and the corpus chunking helpers."""

import json
import re
import socket
import sys
import time
from collections import Counter

import pytest

import lc_utils as lc
from lc_utils import datasets as ds
from lc_utils.eval import chunk_keys, chunk_qrels

# ---------------------------------------------------------------------------------------------
# BEIR
# ---------------------------------------------------------------------------------------------

CORPUS = [
    {"_id": "d1", "title": "Late chunking", "text": "Embed first, then pool."},
    {"_id": "d2", "title": "", "text": "Naive chunking embeds each chunk alone."},
    {"_id": "d3", "text": "No title field at all."},
]
QUERIES = [
    {"_id": "q1", "text": "what is late chunking"},
    {"_id": "q2", "text": "naive chunking"},
    {"_id": "q3", "text": "a query judged only in the dev split"},
]


def write_beir(root, *, qrels_test=None, qrels_dev=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(
        "\n".join(json.dumps(r) for r in CORPUS) + "\n\n", encoding="utf-8"
    )
    (root / "queries.jsonl").write_text(
        "\n".join(json.dumps(r) for r in QUERIES) + "\n", encoding="utf-8"
    )
    (root / "qrels").mkdir(exist_ok=True)
    rows = qrels_test or [("q1", "d1", "2"), ("q1", "d2", "0"), ("q2", "d2", "1")]
    lines = ["query-id\tcorpus-id\tscore"] + ["\t".join(r) for r in rows]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if qrels_dev is not None:
        lines = ["query-id\tcorpus-id\tscore"] + ["\t".join(r) for r in qrels_dev]
        (root / "qrels" / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_load_beir_round_trip(tmp_path):
    root = write_beir(tmp_path / "toy", qrels_dev=[("q3", "d3", "1")])
    corpus, queries, qrels = ds.read_beir_folder(root)
    assert corpus == {
        "d1": {"title": "Late chunking", "text": "Embed first, then pool."},
        "d2": {"title": "", "text": "Naive chunking embeds each chunk alone."},
        "d3": {"title": "", "text": "No title field at all."},
    }
    assert queries == {"q1": "what is late chunking", "q2": "naive chunking"}
    assert qrels == {"q1": {"d1": 2, "d2": 0}, "q2": {"d2": 1}}
    task = ds.load_beir(root)
    assert isinstance(task, ds.RetrievalTask)
    assert (task.name, task.source, task.queries) == ("toy", "folder", queries)
    assert task.documents["d1"] == "Late chunking\n\nEmbed first, then pool."
    assert task.documents["d2"] == "Naive chunking embeds each chunk alone."
    assert (
        ds.load_beir(root, separator=": ").documents["d1"]
        == "Late chunking: Embed first, then pool."
    )
    # Grades <= 0 mean "not relevant": the task keeps the relevant documents only.
    assert task.qrels_doc == {"q1": {"d1": 2}, "q2": {"d2": 1}}
    assert "documents=3" in repr(task) and "Embed" not in repr(task)

    dev = ds.load_beir(root, split="dev")
    assert dev.queries == {"q3": "a query judged only in the dev split"}
    everything = ds.load_beir(root, only_judged_queries=False)
    assert list(everything.queries) == ["q1", "q2", "q3"]


def test_beir_data_runs_through_the_naive_late_comparison(tmp_path, tiny_model):
    import lc_utils as lc

    root = write_beir(tmp_path / "toy", qrels_test=[("q1", "d1", "2"), ("q1", "d9", "1")])
    with pytest.warns(UserWarning, match="missing from"):
        task = ds.load_beir(root)
    text = task.documents["d1"]
    # Only judged, relevant documents that the corpus holds become spans, over the whole text.
    assert task.qrels_spans == {"q1": [("d1", 0, len(text), 2)]}
    assert task.qrels_doc == {"q1": {"d1": 2}}
    chunks = {d: lc.chunk_text(t, "sentences") for d, t in task.documents.items()}
    result = lc.eval.compare_naive_late(tiny_model, task, chunks, progress=False)
    # One query, one relevant document: document-level recall@5 over 3 documents is 1.
    for method in ("naive", "late"):
        assert result.results[method]["document"]["recall@5"] == 1.0
        assert result.results[method]["document"]["num_queries"] == 1


def test_load_beir_missing_files_name_the_path_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a BEIR folder laid out as"):
        ds.load_beir(tmp_path / "absent")
    root = write_beir(tmp_path / "toy")
    (root / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / "queries.jsonl"))):
        ds.load_beir(root)
    root = write_beir(tmp_path / "toy2")
    with pytest.raises(
        FileNotFoundError, match=r"dev\.tsv does not exist(.|\n)*present: \['test'\]"
    ):
        ds.load_beir(root, split="dev")


def test_load_beir_malformed_lines_name_file_and_line(tmp_path):
    root = write_beir(tmp_path / "toy")
    with (root / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{not json}\n")
    with pytest.raises(ValueError, match=r"corpus\.jsonl:5 is not valid JSON"):
        ds.load_beir(root)
    root = write_beir(tmp_path / "toy2", qrels_test=[("q1", "d1", "high")])
    with pytest.raises(ValueError, match=r"test\.tsv:2: score 'high' is not a number"):
        ds.load_beir(root)
    root = write_beir(tmp_path / "toy3", qrels_test=[("q9", "d1", "1")])
    with pytest.raises(ValueError, match="judges 1 query id\\(s\\) missing"):
        ds.load_beir(root)


def test_load_beir_warns_on_judgments_of_missing_documents(tmp_path):
    root = write_beir(tmp_path / "toy", qrels_test=[("q1", "d1", "1"), ("q1", "gone", "1")])
    with pytest.warns(UserWarning, match="1 document id\\(s\\) missing"):
        _, _, qrels = ds.read_beir_folder(root)
    assert qrels == {"q1": {"d1": 1, "gone": 1}}  # the files as they are
    with pytest.warns(UserWarning, match="1 document id\\(s\\) missing"):
        task = ds.load_beir(root)
    assert task.qrels_doc == {"q1": {"d1": 1}}  # the task judges its own documents only


def test_download_beir_fails_fast_when_unreachable(tmp_path):
    # TEST-NET-3 (RFC 5737) is never routed, so the probe has to time out; ".invalid" never
    # resolves. Neither can start a real download on a machine that happens to be online.
    for url in ("https://203.0.113.1/scifact.zip", "https://beir.invalid/scifact.zip"):
        started = time.perf_counter()
        with pytest.raises(ConnectionError, match="cannot reach .*load_beir"):
            ds.download_beir("scifact", tmp_path, url=url, timeout=2.0)
        assert time.perf_counter() - started < 10
    assert not (tmp_path / "scifact").exists()


def test_download_beir_gives_up_on_a_server_that_never_answers(tmp_path):
    # A listening socket that never accepts: the TCP handshake succeeds (the kernel queues it)
    # but no HTTP answer ever comes, like a network that swallows traffic.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.perf_counter()
        with pytest.raises(ConnectionError, match="cannot reach"):
            ds.download_beir("scifact", tmp_path, url=f"http://127.0.0.1:{port}/s.zip", timeout=1)
        assert time.perf_counter() - started < 5


def test_download_beir_reuses_a_folder_without_network(tmp_path):
    write_beir(tmp_path / "toy")
    assert ds.download_beir("toy", tmp_path, url="https://203.0.113.1/x.zip") == tmp_path / "toy"
    with pytest.raises(ValueError, match="expected a BEIR dataset name"):
        ds.download_beir("../etc", tmp_path)


# ---------------------------------------------------------------------------------------------
# The release note
# ---------------------------------------------------------------------------------------------


def test_release_note_names_the_release_only_in_its_first_sentence():
    sentences = re.split(r"(?<=\.)\s+(?=[A-Z])", ds.RELEASE_NOTES)
    assert 5 <= len(sentences) <= 8
    assert ds.RELEASE_QUERY.lower() in sentences[0].lower()
    for sentence in sentences[1:]:
        assert "vectorbase" not in sentence.lower() and "3.7.2" not in sentence


# ---------------------------------------------------------------------------------------------
# pydoc topics
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topics():
    return ds.load_pydoc_topics()


@pytest.fixture(scope="module")
def built(topics):
    return ds.build_pydoc_queries(topics)


def test_pydoc_corpus_is_exact_sorted_and_filterable(topics):
    from pydoc_data import topics as source

    assert list(topics) == sorted(source.topics)
    assert all(topics[name] == source.topics[name] for name in topics)
    long = ds.load_pydoc_topics(min_chars=8000)
    assert all(len(text) >= 8000 for text in long.values())
    assert list(ds.load_pydoc_topics(limit=3)) == sorted(source.topics)[:3]
    assert ds.load_pydoc_topics(limit=0) == {}
    if sys.version_info[:2] == (3, 11):
        assert len(topics) == 79 and len(long) == 15
        assert sum(map(len, topics.values())) == 464_970


def test_query_construction_is_deterministic_and_seeded(topics, built):
    again = ds.build_pydoc_queries(topics)
    assert again == built
    other = ds.build_pydoc_queries(topics, seed=1)
    assert other.queries != built.queries  # the seed draws the wording...
    # ...but never the judgments: the same answers are asked for, whatever the seed.
    assert sorted(other.qrels_spans.values()) == sorted(built.qrels_spans.values())


def test_there_are_a_few_hundred_queries_of_every_kind(built):
    kinds = Counter(ds.query_kind(q) for q in built.queries)
    assert set(kinds) == {"title", "section", "entry"}
    assert 250 <= len(built.queries) <= 450
    assert min(kinds.values()) >= 50
    assert set(built.queries) == set(built.qrels_doc) == set(built.qrels_spans)
    assert len(set(built.queries.values())) == len(built.queries)  # no two read the same


def test_every_relevant_span_is_inside_its_document_and_non_empty(topics, built):
    for query_id, spans in built.qrels_spans.items():
        assert spans, query_id
        assert set(built.qrels_doc[query_id]) == {doc for doc, _, _ in spans}
        for doc, start, end in spans:
            assert 0 <= start < end <= len(topics[doc]), (query_id, doc, start, end)
            answer = topics[doc][start:end]
            assert answer == answer.strip() and len(answer) >= 80


def test_answers_exclude_the_line_that_names_the_entity(topics, built):
    query = "entry:string-methods:str.capitalize"
    assert query in built.queries and "str.capitalize" in built.queries[query]
    ((doc, start, end),) = built.qrels_spans[query]
    assert doc == "string-methods"
    assert topics[doc][start:end].startswith("Return a copy of the string with its first")
    assert "str.capitalize" not in topics[doc][start:end]
    assert topics[doc][:start].rstrip().endswith("str.capitalize()")


def test_copies_of_an_answer_in_other_topics_are_judged_relevant(built):
    finally_clause = next(q for q in built.queries if q.endswith(":finally-clause"))
    assert built.qrels_doc[finally_clause] == {"compound": 1, "try": 1}
    if_statement = next(q for q, text in built.queries.items() if text.endswith("if statement"))
    assert set(built.qrels_doc[if_statement]) == {"if", "else", "compound"}
    modules = next(q for q in built.queries if q.startswith("title:typesmodules:"))
    assert set(built.qrels_doc[modules]) == {"typesmodules", "types"}


def test_debugger_commands_and_nested_methods_get_qualified_names(built):
    texts = set(built.queries.values())
    assert any(text.startswith("break") or "does break do" in text for text in texts)
    assert any("dict.get" in text for text in texts)
    assert not any(re.search(r"\bdict\.(del|d|other)\b", text) for text in texts)


def test_kinds_and_limit(topics, built):
    only_entries = ds.build_pydoc_queries(topics, kinds=["entry"])
    assert {ds.query_kind(q) for q in only_entries.queries} == {"entry"}
    sample = ds.build_pydoc_queries(topics, limit=20, seed=3)
    assert len(sample.queries) == 20
    assert sample == ds.build_pydoc_queries(topics, limit=20, seed=3)
    with pytest.raises(ValueError, match="kinds holds 'heading'"):
        ds.build_pydoc_queries(topics, kinds=["heading"])


def test_query_kind_rejects_foreign_ids():
    assert ds.query_kind("entry:x:y") == "entry"
    with pytest.raises(ValueError, match="does not start with one of"):
        ds.query_kind("q17")


# ---------------------------------------------------------------------------------------------
# The pydoc judgments on a real chunking, and the corpus helpers the notebooks share
# ---------------------------------------------------------------------------------------------


def record(doc_id, index, start, end):
    return {"doc_id": doc_id, "chunk_index": index, "start": start, "end": end, "text": ""}


def test_pydoc_judgments_map_onto_a_real_chunking(topics, built):
    # Paragraph chunks from a plain split, so this test needs no chunker from the core.
    records = []
    for doc_id, text in topics.items():
        index = 0
        for match in re.finditer(r"\S(?:.*\S)?(?:\n(?!\s*\n).*\S)*", text):
            records.append(record(doc_id, index, match.start(), match.end()))
            index += 1
    judged = chunk_qrels(built.qrels_spans, records)
    assert set(judged) == set(built.queries)
    assert all(judged[q] for q in built.queries)  # every answer lands in some chunk
    keys = set(chunk_keys(records))
    assert all(set(chunks) <= keys for chunks in judged.values())
    capitalize = judged["entry:string-methods:str.capitalize"]
    assert {key.split("#")[0] for key in capitalize} == {"string-methods"}


def test_load_pydoc_task_is_the_two_calls_it_replaces():
    task = ds.load_pydoc_task(10, max_queries=20, seed=3)
    documents = ds.load_pydoc_topics(limit=10)
    built = ds.build_pydoc_queries(documents, seed=3, limit=20)
    assert task == built and (task.name, task.source) == ("pydoc", "pydoc")
    assert task.documents == documents and list(task.documents) == sorted(documents)
    assert task.query_ids == list(built.queries)
    kinds = Counter(ds.query_kind(q) for q in built.queries)
    expected = {k: kinds[k] for k in ds.QUERY_KINDS if kinds[k]}
    assert ds.count_query_kinds(task.queries) == expected
    assert len(ds.load_pydoc_task(0, max_queries=5).documents) == len(ds.load_pydoc_topics())
    with pytest.raises(ValueError, match="n_documents=-1"):
        ds.load_pydoc_task(-1)


def test_chunk_documents_and_labelled_chunkings(minilm):
    documents = ds.load_pydoc_topics(limit=3)
    fixed = ds.chunk_documents(documents, "fixed", tokenizer=minilm.tokenizer, chunk_size=32)
    assert list(fixed) == list(documents)
    for doc_id, chunks in fixed.items():
        expected = lc.chunk_text(
            documents[doc_id], "fixed", tokenizer=minilm.tokenizer, chunk_size=32
        )
        assert chunks == expected
    # chunk_size is ignored by the strategies that have no such option.
    sentences = ds.chunk_documents(documents, "sentences", chunk_size=32)
    assert sentences == {d: lc.chunk_text(t, "sentences") for d, t in documents.items()}
    labelled = ds.chunkings(
        documents, ["sentences", "fixed"], tokenizer=minilm.tokenizer, chunk_sizes=[16, 32]
    )
    assert list(labelled) == ["sentences", "fixed-16", "fixed-32"]
    assert labelled["fixed-32"] == fixed and labelled["sentences"] == sentences
    with pytest.raises(TypeError, match="is one str"):
        ds.chunkings(documents, "sentences")
    with pytest.raises(ValueError, match="chunk_sizes is empty"):
        ds.chunkings(documents, ["fixed"], tokenizer=minilm.tokenizer, chunk_sizes=[])
    semantic = ds.chunkings(documents, ["semantic"], model=minilm, percentile=80)["semantic"]
    for doc_id, text in documents.items():
        assert semantic[doc_id] == lc.chunk_text(text, "semantic", model=minilm, percentile=80)
    with pytest.raises(ValueError, match="needs model="):
        ds.chunkings(documents, ["semantic"])


def test_query_name_and_spelled_names(built):
    assert ds.query_name("entry:string-methods:str.capitalize") == "str.capitalize"
    assert ds.query_name("section:try:finally-clause+") == "finally-clause"
    for query_id in built.queries:  # every built id parses back
        assert ds.query_name(query_id)
    with pytest.raises(ValueError, match="is not '<kind>:<doc_id>:<name>'"):
        ds.query_name("q17")
    assert ds.spells_query_name("entry:x:str.center", "Return str.center(width) padded.")
    assert ds.spells_query_name("section:x:finally-clause", "The finally Clause:")
    assert not ds.spells_query_name("title:x:try", "retry it")
    assert not ds.spells_query_name("entry:x:str.center", "Return a centered string.")


def test_a_task_derives_document_judgments_and_takes_subsets():
    documents = {"a": "alpha text", "b": "beta text", "c": "gamma text"}
    queries = {"q1": "alpha", "q2": "beta or gamma"}
    spans = {"q1": [("a", 0, 5)], "q2": [("b", 0, 4, 2), ("c", 0, 5), ("c", 6, 10, 0)]}
    task = ds.RetrievalTask(documents, queries, spans, name="toy")
    assert task.qrels_doc == {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}}
    part = task.subset(doc_ids=["c", "a"])
    assert list(part.documents) == ["a", "c"] and part.queries == queries
    assert part.qrels_spans == {"q1": [("a", 0, 5)], "q2": [("c", 0, 5), ("c", 6, 10, 0)]}
    assert part.qrels_doc == {"q1": {"a": 1}, "q2": {"c": 1}}
    assert task.subset(query_ids=["q2"], doc_ids=["a"]).qrels_doc == {"q2": {}}
    with pytest.raises(KeyError, match="no document 'z'"):
        task.subset(doc_ids=["z"])
    with pytest.raises(ValueError, match="not in queries"):
        ds.RetrievalTask(documents, {"q1": "alpha"}, spans)
