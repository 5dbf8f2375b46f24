"""Late chunking, windows, pooling and the naive baseline, checked against independent code."""

import dataclasses
import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lc_utils as lc

DOCUMENT = (
    "Late chunking embeds a whole document first. Only then does it cut the token embeddings "
    "into chunks. Each chunk keeps what the rest of the text said about it.\n\n"
    "The naive way embeds every chunk alone. A chunk that says 'it' loses the thing it refers "
    "to. Emoji 🙂, accents (café), CJK 日本語 and a literal [SEP] must all map exactly."
)


def single_pass_token_embeddings(model, text):
    """The reference: one forward pass over [CLS] text [SEP], computed without lc_utils."""
    # split_special_tokens: a literal "[SEP]" in a document is text, not a control token.
    encoded = model.tokenizer(
        text, return_tensors="pt", return_offsets_mapping=True, split_special_tokens=True
    )
    offsets = encoded.pop("offset_mapping")[0]
    with torch.no_grad():
        hidden = model.model(**encoded).last_hidden_state[0]
    # Drop [CLS] and [SEP], whose offsets are (0, 0).
    return hidden[1:-1].numpy(), offsets[1:-1].numpy()


def manual_late_chunking(model, text, chunks):
    """Mean of each chunk's tokens, assigned by a plain loop over tokens and offsets."""
    hidden, offsets = single_pass_token_embeddings(model, text)
    vectors = []
    for chunk in chunks:
        rows = [
            t
            for t, (start, end) in enumerate(offsets)
            if chunk.start
            <= start + (len(text[start:end]) - len(text[start:end].lstrip()))
            < chunk.end
        ]
        vectors.append(hidden[rows].mean(0))
    return np.stack(vectors)


def cosine(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def test_late_chunking_equals_a_manual_single_pass(tiny_model):
    chunks = lc.chunk_text(DOCUMENT, "sentences")
    late = lc.late_chunking(tiny_model, DOCUMENT, chunks)
    assert late.dtype == np.float32 and late.shape == (len(chunks), tiny_model.dim)
    np.testing.assert_allclose(late, manual_late_chunking(tiny_model, DOCUMENT, chunks), atol=2e-6)


def test_document_within_the_window_gives_exactly_the_single_pass(tiny_model):
    hidden, _ = single_pass_token_embeddings(tiny_model, DOCUMENT)
    encoded = lc.encode_document(tiny_model, DOCUMENT)
    assert len(encoded.plan.windows) == 1
    np.testing.assert_array_equal(encoded.token_embeddings, hidden)
    # Any window at least as long as the document gives the same single pass.
    n = len(encoded.tokens) + 2
    for window in (n, n + 7, tiny_model.max_length):
        again = lc.encode_document(tiny_model, DOCUMENT, window=window)
        np.testing.assert_array_equal(again.token_embeddings, hidden)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 3000), content_tokens=st.integers(1, 600), data=st.data())
def test_window_plan_tiles_the_document(n, content_tokens, data):
    overlap = data.draw(st.integers(0, content_tokens - 1))
    plan = lc.plan_windows(n, content_tokens, overlap)
    kept = np.array(plan.kept).reshape(-1, 2)
    windows = np.array(plan.windows).reshape(-1, 2)
    # Kept ranges tile [0, n) in order, each inside its own window.
    assert kept[0, 0] == 0 and kept[-1, 1] == n
    assert (kept[1:, 0] == kept[:-1, 1]).all()
    assert ((windows[:, 0] <= kept[:, 0]) & (kept[:, 1] <= windows[:, 1])).all()
    assert ((windows[:, 1] - windows[:, 0]) <= content_tokens).all()
    if n > content_tokens:
        assert ((windows[:, 1] - windows[:, 0]) == content_tokens).all()
        # Every window after the first gives each kept token >= overlap tokens of left context.
        assert (kept[1:, 0] - windows[1:, 0] >= overlap).all()
        assert (kept[1:, 1] > kept[1:, 0]).all()


def test_window_plan_rejects_bad_overlap():
    with pytest.raises(ValueError, match="0 <= overlap < 10"):
        lc.plan_windows(100, 10, 10)
    with pytest.raises(ValueError, match="0 <= overlap < 10"):
        lc.plan_windows(100, 10, -1)


def _partitions(items):
    """Every set partition of ``items`` (Bell(n) of them; n stays small)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest):
        yield [[first], *partition]
        for i in range(len(partition)):
            yield [*partition[:i], [first, *partition[i]], *partition[i + 1 :]]


def _batch_cost(batches, lengths, pass_cost):
    return sum(pass_cost + len(b) * max(lengths[i] for i in b) for b in batches)


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 600), max_size=40),
    batch_tokens=st.integers(1, 5000),
    pass_cost=st.integers(0, 500),
)
def test_batch_plan_covers_every_sequence_within_the_budget(lengths, batch_tokens, pass_cost):
    batches = lc.models.batching.plan_batches(lengths, batch_tokens, pass_cost)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) == 1 or padded <= batch_tokens
        assert lengths[batch[0]] == max(lengths[i] for i in batch)  # longest first


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=6),
    batch_tokens=st.integers(1, 1200),
    pass_cost=st.integers(0, 300),
)
def test_batch_plan_is_as_cheap_as_the_best_partition(lengths, batch_tokens, pass_cost):
    def allowed(partition):
        return all(
            len(b) == 1 or len(b) * max(lengths[i] for i in b) <= batch_tokens for b in partition
        )

    best = min(
        _batch_cost(p, lengths, pass_cost)
        for p in _partitions(list(range(len(lengths))))
        if allowed(p)
    )
    plan = lc.models.batching.plan_batches(lengths, batch_tokens, pass_cost)
    assert _batch_cost(plan, lengths, pass_cost) == best


def test_batch_plan_trades_padding_against_passes():
    # Without a pass cost any padding is waste: ragged sequences run alone.
    assert lc.models.batching.plan_batches([500, 300, 100], 4096, pass_cost=0) == [[0], [1], [2]]
    # Equal lengths fill the budget; a ragged tail is padded only when a pass costs more.
    assert sorted(map(len, lc.models.batching.plan_batches([64] * 5, 128, pass_cost=10))) == [
        1,
        2,
        2,
    ]
    assert lc.models.batching.plan_batches([500, 60, 64], 4096, pass_cost=10) == [[0], [2, 1]]
    assert lc.models.batching.plan_batches([500, 480], 4096, pass_cost=64) == [[0, 1]]
    assert lc.models.batching.plan_batches([], 2048) == []


def test_windowed_tokens_come_from_their_own_window(tiny_model):
    text = " ".join(f"word{i} is here." for i in range(120))
    encoded = lc.encode_document(tiny_model, text, window=66, overlap=16)
    assert len(encoded.plan.windows) > 3
    cls, sep = tiny_model.tokenizer.cls_token_id, tiny_model.tokenizer.sep_token_id
    for (a, b), (c, d) in zip(encoded.plan.windows, encoded.plan.kept, strict=True):
        ids = torch.tensor([[cls, *encoded.tokens.input_ids[a:b].tolist(), sep]])
        with torch.no_grad():
            hidden = tiny_model.model(input_ids=ids).last_hidden_state[0, 1:-1].numpy()
        np.testing.assert_allclose(encoded.token_embeddings[c:d], hidden[c - a : d - a], atol=2e-6)


def test_late_chunking_pools_the_streamed_windows(tiny_model):
    # late_chunking never builds the token matrix; it must still equal pooling that matrix.
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(150))
    chunks = lc.chunk_text(text, "sentences", sentences_per_chunk=3)
    for window, overlap in [(64, 0), (64, 20), (130, 31), (512, None)]:
        encoded = lc.encode_document(tiny_model, text, window=window, overlap=overlap)
        spans = lc.token_spans(encoded.tokens.starts, lc.validate_chunks(text, chunks))
        expected = lc.pool_spans(encoded.token_embeddings, spans)
        late = lc.late_chunking(tiny_model, text, chunks, window=window, overlap=overlap)
        np.testing.assert_allclose(late, expected, atol=2e-6)


def test_overlap_changes_vectors_and_blind_windows_differ(tiny_model):
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(150))
    chunks = lc.chunk_text(text, "sentences")
    blind = lc.late_chunking(tiny_model, text, chunks, window=64, overlap=0)
    overlapping = lc.late_chunking(tiny_model, text, chunks, window=64, overlap=24)
    assert not np.allclose(blind, overlapping)


def test_pool_spans_equals_a_loop():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(50, 8)).astype(np.float32)
    spans = np.array([[0, 3], [3, 4], [10, 50]])
    expected = np.stack([embeddings[a:b].astype(np.float64).mean(0) for a, b in spans])
    np.testing.assert_allclose(lc.pool_spans(embeddings, spans), expected, atol=1e-7)
    with pytest.raises(ValueError, match="span 1 covers tokens \\[4, 4\\]"):
        lc.pool_spans(embeddings, [[0, 4], [4, 4]])


def test_batched_documents_match_one_at_a_time(tiny_model):
    documents = [DOCUMENT, "Short one. Two.", " ".join(["Longer text here."] * 80)]
    prepared = [
        lc.prepare_document(tiny_model, d, lc.chunk_text(d, "sentences"))[::2] for d in documents
    ]
    together = lc.late.pooling.pool_prepared(
        tiny_model, prepared, window=100, overlap=10, batch_tokens=10_000
    )
    for document, batched in zip(documents, together, strict=True):
        alone = lc.late_chunking(
            tiny_model, document, lc.chunk_text(document, "sentences"), window=100, overlap=10
        )
        np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_special_tokens_are_excluded_and_literal_ones_are_text(tiny_model):
    tokens = lc.tokenize_document(tiny_model.tokenizer, "a [SEP] b [CLS]")
    assert tiny_model.tokenizer.sep_token_id not in tokens.input_ids
    assert tiny_model.tokenizer.cls_token_id not in tokens.input_ids
    assert (tokens.starts >= 0).all()


def test_bad_chunks_get_clear_errors(tiny_model):
    text = "Alpha beta. \x00\x01 Gamma delta."
    with pytest.raises(ValueError, match=r"chunk 1 \(characters 12–14.*contains no model token"):
        lc.late_chunking(tiny_model, text, [(0, 11), (12, 14), (15, 27)])
    with pytest.raises(ValueError, match="must not overlap"):
        lc.late_chunking(tiny_model, text, [(0, 11), (5, 20)])
    with pytest.raises(ValueError, match="another document"):
        lc.late_chunking(tiny_model, text, lc.chunk_text("Something else entirely.", "sentences"))
    with pytest.raises(ValueError, match="len\\(text\\)"):
        lc.late_chunking(tiny_model, "short", [(0, 50)])
    with pytest.raises(ValueError, match="exceeds .* maximum length of 512"):
        lc.late_chunking(tiny_model, text, [(0, 11)], window=1000)
    with pytest.raises(ValueError, match="leaves no room"):
        lc.late_chunking(tiny_model, text, [(0, 11)], window=2)


def test_empty_inputs_give_empty_results(tiny_model):
    assert lc.late_chunking(tiny_model, "", []).shape == (0, tiny_model.dim)
    assert lc.late_chunking(tiny_model, "   \n", []).shape == (0, tiny_model.dim)
    assert lc.naive_chunking(tiny_model, []).shape == (0, tiny_model.dim)
    assert lc.embed_queries(tiny_model, []).shape == (0, tiny_model.dim)


def test_naive_is_a_masked_mean_unaffected_by_padding(tiny_model):
    texts = ["short", "a much longer chunk of text that forces padding on the short one"]
    batched = lc.naive_chunking(tiny_model, texts, batch_tokens=10_000)
    for text, vector in zip(texts, batched, strict=True):
        encoded = tiny_model.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            alone = tiny_model.model(**encoded).last_hidden_state[0].mean(0).numpy()
        np.testing.assert_allclose(vector, alone, atol=2e-6)
    np.testing.assert_allclose(lc.embed_queries(tiny_model, texts[0]), batched[:1], atol=1e-6)


def test_naive_truncates_long_texts_with_a_warning(tiny_model):
    long_text = "word " * 2000
    with pytest.warns(UserWarning, match="1 of 2 chunks are longer than 510 tokens.* truncated"):
        vectors = lc.naive_chunking(tiny_model, [long_text, "ok"])
    assert np.isfinite(vectors).all()


def test_the_truncation_warning_counts_only_texts_over_what_a_pass_holds(tiny_model):
    # 16 positions hold 14 text tokens beside [CLS] and [SEP]; "word" is one token.
    fits, over = " ".join(["word"] * 14), " ".join(["word"] * 15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a text that exactly fills the pass is not cut
        lc.naive_chunking(tiny_model, [fits, fits], max_tokens=16)
    with pytest.warns(UserWarning) as caught:
        vectors = lc.naive_chunking(tiny_model, [fits, over, over], max_tokens=16)
    (message,) = [str(w.message) for w in caught]
    assert message.startswith("2 of 3 chunks are longer than 14 tokens, the text one pass holds ")
    assert "(16 positions, " in message and "less 2 special tokens)" in message
    assert "truncated to 14 (first: item 1, 15 tokens)" in message
    # Whole documents (the no-chunking baseline) are called documents.
    with pytest.warns(UserWarning, match=r"^1 of 2 documents are longer than 14 tokens"):
        lc.naive_chunking(tiny_model, [fits, over], max_tokens=16, what="documents")
    # Cut to 14 tokens, the longer text is the text that fits.
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-6)


def test_query_prefix_is_applied(tiny_model):
    plain = lc.embed_queries(tiny_model, ["what is late chunking"])
    prefixed = lc.embed_queries(tiny_model, ["what is late chunking"], prefix="query: ")
    explicit = lc.embed_queries(tiny_model, ["query: what is late chunking"], prefix="")
    assert not np.allclose(plain, prefixed)
    np.testing.assert_allclose(prefixed, explicit, atol=1e-6)


def test_a_100k_token_document_runs_in_bounded_memory(tiny_model_dir):
    # In a fresh process, so that peak RSS belongs to this document alone.
    script = textwrap.dedent(
        f"""
        import resource, lc_utils as lc
        model = lc.load_model({str(tiny_model_dir)!r}, verbose=False)
        text = " ".join(f"Token{{i % 97}} appears in sentence {{i}}." for i in range(16_000))
        chunks = lc.chunk_text(text, "sentences")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        n_tokens = len(lc.tokenize_document(model.tokenizer, text))
        vectors = lc.late_chunking(model, text, chunks, progress=False)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert vectors.shape == (len(chunks), model.dim), vectors.shape
        print(n_tokens, before // 1024, after // 1024)
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    n_tokens, before_mb, after_mb = map(int, result.stdout.split()[-3:])
    assert n_tokens >= 100_000
    # The process holds torch and the tokenizer (~0.5 GB); the document may add little.
    assert after_mb < 1500, (before_mb, after_mb)
    assert after_mb - before_mb < 400, (before_mb, after_mb)


@pytest.mark.slow
def test_naive_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    # Texts holding a literal "[SEP]" are left out: sentence-transformers reads it as a control
    # token, while lc_utils deliberately tokenizes document text as text.
    texts = [c.text for c in lc.chunk_text(DOCUMENT, "sentences") if "[SEP]" not in c.text]
    texts += ["a query", "x", "日本語 🙂 café"]
    reference = SentenceTransformer(str(lc.packaged_minilm_path()), device="cpu").encode(texts)
    ours = lc.naive_chunking(minilm, texts)
    assert cosine(ours, reference).min() > 0.9999
    assert minilm.pooling == "mean" and minilm.trained_length == 256


@pytest.mark.slow
def test_the_release_query_prefers_late_chunks(minilm):
    """The blog's claim, on our own paragraph: every chunk after the first (which names the
    release itself) scores higher against the release query with late chunking."""
    text, query = lc.datasets.RELEASE_NOTES, lc.datasets.RELEASE_QUERY
    chunks = lc.chunk_text(text, "sentences")
    assert len(chunks) >= 5
    query_vector = lc.embed_queries(minilm, query)
    late = cosine(lc.late_chunking(minilm, text, chunks), query_vector)
    naive = cosine(lc.naive_chunking(minilm, chunks), query_vector)
    assert (late[1:] > naive[1:]).all(), (late, naive)
    assert (late[1:] - naive[1:]).mean() > 0.2, (late, naive)


# Bad input gets a one-line error naming the argument (issue 11).


def test_a_lone_string_is_refused_by_naive_and_wrapped_by_queries(tiny_model):
    with pytest.raises(TypeError, match="one str, which would be one chunk per character"):
        lc.naive_chunking(tiny_model, "hello world")
    assert lc.naive_chunking(tiny_model, ["hello world"]).shape == (1, tiny_model.dim)
    assert lc.embed_queries(tiny_model, "hello world").shape == (1, tiny_model.dim)


def test_queries_accept_any_sequence_of_str_and_refuse_the_rest(tiny_model):
    import pandas as pd

    texts = ["late chunking", "naive chunking", "milvus 2.4.13"]
    expected = lc.embed_queries(tiny_model, texts)
    for form in (
        tuple(texts),
        np.array(texts),
        pd.Series(texts),
        pd.Series(texts, index=[7, 3, 5]),
    ):
        np.testing.assert_allclose(lc.embed_queries(tiny_model, form), expected, atol=1e-6)
    np.testing.assert_allclose(lc.naive_chunking(tiny_model, np.array(texts)), expected, atol=1e-6)
    for bad in (None, 0, 3.5, {"q1": "text"}):
        with pytest.raises(TypeError, match="queries is .*; expected a sequence of str"):
            lc.embed_queries(tiny_model, bad)
    with pytest.raises(TypeError, match=r"queries\[1\] is a int"):
        lc.embed_queries(tiny_model, ["fine", 5])
    with pytest.raises(TypeError, match="chunks_or_texts is NoneType"):
        lc.naive_chunking(tiny_model, None)


@pytest.mark.parametrize("value", [2.5, float("nan"), "64", True, None])
def test_window_and_overlap_must_be_integers(tiny_model, value):
    text = "One sentence here. " * 40
    chunks = lc.chunk_text(text, "sentences")
    if value is not None:
        with pytest.raises(TypeError, match=f"window={re.escape(repr(value))} is a"):
            lc.late_chunking(tiny_model, text, chunks, window=value)
    with pytest.raises(TypeError, match="overlap=.* it must be an int"):
        lc.late_chunking(tiny_model, text, chunks, window=64, overlap=2.5)
    with pytest.raises(TypeError, match="overlap=.* it must be an int"):
        lc.plan_windows(100, 30, overlap=7.0)
    numpy_ints = lc.late_chunking(
        tiny_model, text, chunks, window=np.int64(64), overlap=np.int32(8)
    )
    np.testing.assert_array_equal(
        numpy_ints, lc.late_chunking(tiny_model, text, chunks, window=64, overlap=8)
    )


def test_float_spans_are_refused_not_truncated(tiny_model):
    text = "A first sentence here. A second sentence, and the last character."
    with pytest.raises(TypeError, match=r"chunk 0 start=0.9 is a float"):
        lc.late_chunking(tiny_model, text, [(0.9, 27.9)])
    with pytest.raises(TypeError, match=r"chunk 0 start=.* is a float64"):
        lc.validate_chunks(text, np.array([[0, 5], [6, 9.5]]))
    spans = np.array([[0, 22], [23, len(text)]], dtype=np.int32)
    assert lc.validate_chunks(text, spans).tolist() == spans.tolist()


def test_text_that_is_not_a_str_or_holds_a_lone_surrogate_is_named(tiny_model):
    chunks = [lc.Chunk("Hello", 0, 5)]
    with pytest.raises(TypeError, match="text must be a str, not NoneType"):
        lc.late_chunking(tiny_model, None, chunks)
    with pytest.raises(TypeError, match="text must be a str, not bytes"):
        lc.encode_document(tiny_model, b"Hello")
    bad = "Hello \ud800 world"
    for call in (
        lambda: lc.late_chunking(tiny_model, bad, [(0, 5)]),
        lambda: lc.encode_document(tiny_model, bad),
        lambda: lc.tokenize_document(tiny_model.tokenizer, bad),
    ):
        with pytest.raises(ValueError, match=r"text holds '\\ud800' at character 6.*surrogate"):
            call()
    with pytest.raises(ValueError, match=r"chunks_or_texts\[1\] holds '\\ud800'"):
        lc.naive_chunking(tiny_model, ["fine", bad])
    with pytest.raises(ValueError, match=r"queries\[0\] holds '\\ud800'"):
        lc.embed_queries(tiny_model, bad)


def test_the_default_window_is_the_trained_length_with_a_sixteenth_overlap(minilm, tiny_model):
    # MiniLM declares max_seq_length 256 below its 512 positions; the tiny model declares none.
    assert minilm.window() == lc.Window(256, 254, "the length it was trained on")
    assert tiny_model.window() == lc.Window(512, 510, "its position limit")
    assert minilm.window(minilm.max_length) == lc.Window(512, 510, "window")
    assert lc.plan_windows(1000, 254).overlap == 15 and lc.plan_windows(1000, 510).overlap == 31
    # The window a document runs in is the one naive chunks are cut at.
    assert minilm.window(argument="max_tokens") == minilm.window()
    document = " ".join(["word"] * 600)
    plan = lc.encode_document(minilm, document).plan
    assert (plan.content_tokens, plan.overlap, len(plan.windows)) == (254, 15, 3)


def test_naive_truncates_at_the_trained_length_by_default(tiny_model):
    """A model that declares a trained length (sentence-transformers' max_seq_length) is cut
    there, as sentence-transformers cuts it; max_tokens=model.max_length uses every position."""
    trained = dataclasses.replace(tiny_model, trained_length=40)
    text = " ".join(f"word{i}" for i in range(60))  # well over 40 tokens, under 512
    with pytest.warns(
        UserWarning, match="longer than 38 tokens.* set by the length it was trained on"
    ):
        default = lc.naive_chunking(trained, [text])
    cut = lc.naive_chunking(tiny_model, [text], max_tokens=40)
    np.testing.assert_allclose(default, cut, atol=1e-6)
    full = lc.naive_chunking(trained, [text], max_tokens=trained.max_length)
    np.testing.assert_allclose(full, lc.naive_chunking(tiny_model, [text]), atol=1e-6)
    assert not np.allclose(default, full, atol=1e-3)
    with pytest.warns(UserWarning, match="pass max_tokens=512"):
        lc.embed_queries(trained, text)
    with pytest.raises(TypeError, match="max_tokens=40.5"):
        lc.naive_chunking(tiny_model, [text], max_tokens=40.5)


def test_chunks_that_are_mostly_unknown_tokens_are_counted_in_a_warning(tiny_model):
    run = "x" * 150  # MiniLM's tokenizer maps a run of over 100 characters to one [UNK]
    text = f"A normal sentence here. {run} {run}. Another normal one."
    chunks = lc.chunk_text(text, "sentences")
    assert len(chunks) == 3
    with pytest.warns(UserWarning, match=r"1 of 3 chunk\(s\) are mostly \[UNK\] tokens"):
        lc.late_chunking(tiny_model, text, chunks)
    with pytest.warns(UserWarning, match=r"1 of 3 chunk\(s\) are mostly \[UNK\]"):
        lc.naive_chunking(tiny_model, chunks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lc.late_chunking(tiny_model, "A normal sentence. And another.", [(0, 18), (19, 31)])


@pytest.mark.slow
def test_naive_matches_sentence_transformers_past_the_trained_length(minilm):
    from sentence_transformers import SentenceTransformer

    text = " ".join(f"Sentence {i} talks about topic {i % 7} in some detail." for i in range(30))
    n_tokens = len(lc.tokenize_document(minilm.tokenizer, text))
    assert 280 <= n_tokens <= 320, n_tokens  # a 300-token chunk
    reference = SentenceTransformer(str(lc.packaged_minilm_path()), device="cpu").encode([text])
    with pytest.warns(
        UserWarning, match="longer than 254 tokens, the text one pass holds .256 positions"
    ):
        ours = lc.naive_chunking(minilm, [text])
    assert cosine(ours, reference).min() >= 0.9999
    full = lc.naive_chunking(minilm, [text], max_tokens=minilm.max_length)
    assert cosine(full, reference).min() < 0.999
