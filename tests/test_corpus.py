"""Corpus-level embedding: records aligned with vectors, both methods, streaming."""

import numpy as np
import pytest

import lc_utils as lc

CORPUS = {
    "intro": "Late chunking reads the document first. Then it pools each chunk. It works well.",
    "empty": "   ",
    "zero-width": "A real sentence here.\n\n\u200b\u200b\n\nAnother sentence there.",
    "long": " ".join(f"Fact number {i} is about subject {i % 5}." for i in range(200)),
    "unicode": "Café au lait ☕. 日本語の文。 Ünïcödé everywhere 🙂!",
}


def test_records_and_vectors_line_up(tiny_model):
    result = lc.embed_corpus(tiny_model, CORPUS, method="late", window=128, progress=False)
    assert result.vectors.shape == (len(result.records), tiny_model.dim)
    assert result.vectors.dtype == np.float32 and np.isfinite(result.vectors).all()
    assert [r["doc_id"] for r in result.records] == sorted(
        [r["doc_id"] for r in result.records], key=list(CORPUS).index
    )
    for doc_id in CORPUS:
        indices = [r["chunk_index"] for r in result.records if r["doc_id"] == doc_id]
        assert indices == list(range(len(indices)))
    for record in result.records:
        assert CORPUS[record["doc_id"]][record["start"] : record["end"]] == record["text"]
    frame = result.to_dataframe()
    assert list(frame.columns) == ["doc_id", "chunk_index", "start", "end", "text"]


def test_each_method_equals_its_single_document_call(tiny_model):
    late = lc.embed_corpus(tiny_model, CORPUS, method="late", window=128, progress=False)
    naive = lc.embed_corpus(tiny_model, CORPUS, method="naive", progress=False)
    assert late.records == naive.records
    for doc_id, text in CORPUS.items():
        rows = [i for i, r in enumerate(late.records) if r["doc_id"] == doc_id]
        if not rows:
            continue
        spans = [(late.records[i]["start"], late.records[i]["end"]) for i in rows]
        alone = lc.late_chunking(tiny_model, text, spans, window=128)
        np.testing.assert_allclose(late.vectors[rows], alone, atol=1e-5)
        texts = [late.records[i]["text"] for i in rows]
        np.testing.assert_allclose(
            naive.vectors[rows], lc.naive_chunking(tiny_model, texts), atol=1e-5
        )


def test_chunks_without_tokens_are_reported_not_lost_silently(tiny_model):
    with pytest.warns(UserWarning, match="1 chunk\\(s\\) hold no model token"):
        result = lc.embed_corpus(tiny_model, CORPUS, strategy="paragraphs", progress=False)
    assert result.skipped == [("zero-width", 1, 23, 25)]
    assert [r["text"] for r in result.records if r["doc_id"] == "zero-width"] == [
        "A real sentence here.",
        "Another sentence there.",
    ]


def test_streaming_gives_the_same_result_in_groups(tiny_model):
    whole = lc.embed_corpus(tiny_model, CORPUS, progress=False)
    generator = ((doc_id, text) for doc_id, text in CORPUS.items())
    parts = list(lc.iter_embed_corpus(tiny_model, generator, documents_per_batch=2, progress=False))
    assert len(parts) == 3
    joined = lc.CorpusEmbeddings.concatenate(parts)
    assert joined.records == whole.records
    np.testing.assert_allclose(joined.vectors, whole.vectors, atol=1e-5)


def test_strategies_options_and_precomputed_chunks(tiny_model):
    fixed = lc.embed_corpus(
        tiny_model,
        ["One two three four five six seven.", "Eight nine."],
        strategy="fixed",
        chunk_options={"chunk_size": 3},
        progress=False,
    )
    assert [r["doc_id"] for r in fixed.records] == ["0", "0", "0", "1"]
    chunks = {"a": [lc.Chunk("Hello", 0, 5)]}
    given = lc.embed_corpus(tiny_model, {"a": "Hello world"}, chunks=chunks, progress=False)
    assert [r["text"] for r in given.records] == ["Hello"]


def test_bad_corpora_get_clear_errors(tiny_model):
    with pytest.raises(ValueError, match="appears twice"):
        lc.embed_corpus(tiny_model, [("a", "x"), ("a", "y")], progress=False)
    with pytest.raises(TypeError, match="not one str"):
        lc.embed_corpus(tiny_model, "just a string", progress=False)
    with pytest.raises(TypeError, match="is a int, not a str"):
        lc.embed_corpus(tiny_model, {"a": 5}, progress=False)
    with pytest.raises(ValueError, match="method='early'"):
        lc.embed_corpus(tiny_model, ["x"], method="early", progress=False)
    # A streamed corpus (a generator) is checked item by item, too.
    streamed = ((doc_id, text) for doc_id, text in [("a", "x."), ("a", "y.")])
    with pytest.raises(ValueError, match="appears twice"):
        lc.embed_corpus(tiny_model, streamed, progress=False)
    with pytest.raises(ValueError, match="documents_per_batch=0"):
        lc.embed_corpus(tiny_model, ["x"], documents_per_batch=0, progress=False)
    empty = lc.embed_corpus(tiny_model, {}, progress=False)
    assert empty.vectors.shape == (0, tiny_model.dim) and empty.records == []


def test_a_document_missing_from_the_given_chunks_is_named(tiny_model):
    documents = {"a": "Hello world.", "b c": "Second document."}
    chunks = {"a": [lc.Chunk("Hello world.", 0, 12)]}
    with pytest.raises(ValueError, match="chunks has no entry for document 'b c'"):
        lc.embed_corpus(tiny_model, documents, chunks=chunks, progress=False)
    streamed = iter(documents.items())  # checked as it streams, naming the document too
    with pytest.raises(ValueError, match="chunks has no entry for document 'b c'"):
        lc.embed_corpus(tiny_model, streamed, chunks=chunks, progress=False)


def test_the_corpus_records_its_chunking_and_every_document(tiny_model):
    documents = {"a": "One two three four five six seven.", "blank": "   ", "b": "Eight nine."}
    fixed = lc.embed_corpus(
        tiny_model, documents, strategy="fixed", chunk_options={"chunk_size": 3}, progress=False
    )
    assert fixed.chunking == "fixed-3" and fixed.doc_ids == ["a", "blank", "b"]
    assert lc.embed_corpus(tiny_model, documents, progress=False).chunking == "sentences"
    chunks = {d: lc.chunk_text(t, "sentences") for d, t in documents.items()}
    given = lc.embed_corpus(tiny_model, documents, chunks=chunks, progress=False)
    assert given.chunking is None  # unknown: the store will ask for a label
    labelled = lc.embed_corpus(
        tiny_model, documents, chunks=chunks, chunking="sentences", progress=False
    )
    assert labelled.chunking == "sentences"
    with pytest.raises(ValueError, match="chunking='fixed-64' contradicts strategy='sentences'"):
        lc.embed_corpus(tiny_model, documents, chunking="fixed-64", progress=False)
    streamed = lc.iter_embed_corpus(tiny_model, documents, documents_per_batch=2, progress=False)
    assert lc.CorpusEmbeddings.concatenate(list(streamed)).doc_ids == ["a", "blank", "b"]


def test_mostly_unknown_chunks_are_counted_once_per_group(tiny_model):
    run = "x" * 150  # one [UNK] for MiniLM's tokenizer
    documents = {"urls": f"See this. {run} {run}. Fine.", "ok": "All fine here."}
    with pytest.warns(UserWarning, match=r"1 of 4 chunk\(s\) are mostly \[UNK\]") as caught:
        lc.embed_corpus(tiny_model, documents, progress=False)
    assert sum("[UNK]" in str(w.message) for w in caught) == 1
    with pytest.warns(UserWarning, match=r"1 of 4 chunk\(s\) are mostly \[UNK\]"):
        lc.embed_corpus(tiny_model, documents, method="naive", progress=False)


def test_a_repeated_id_in_pairs_raises_the_documented_error():
    from lc_utils.corpus import DuplicateDocumentError, iter_documents
    from lc_utils.scale import DuplicateDocumentError as scale_error

    assert scale_error is DuplicateDocumentError
    with pytest.raises(DuplicateDocumentError, match="'a' appears twice"):
        list(iter_documents([("a", "one"), ("b", "two"), ("a", "three")]))
