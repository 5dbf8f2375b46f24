"""The semantic chunker: runs of whole sentences, split where neighbours are least alike."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lc_utils as lc
from lc_utils.text.semantic import neighbour_distances, semantic_breakpoints

from .test_chunking import assert_chunk_invariants, covered_mask, text_strategy

CATS = "The cat sleeps on the warm sofa. A kitten chases a ball of wool. Cats purr when content."
DATABASES = (
    "The database flushes its write-ahead log to disk. An index speeds up every query. "
    "Transactions commit atomically."
)


def topic_embedder(texts):
    """Sentences that mention cats point one way, all others the other way."""
    cat = [any(w in t.lower() for w in ("cat", "kitten")) for t in texts]
    return np.array([[1.0, 0.1] if c else [0.1, 1.0] for c in cat])


@pytest.mark.parametrize("percentile", [0, 50, 90, 100])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy)
def test_semantic_chunks_keep_the_span_invariants_on_any_text(tiny_model, percentile, text):
    chunks = lc.chunk_text(text, "semantic", model=tiny_model, percentile=percentile)
    assert_chunk_invariants(text, chunks)
    sentences = lc.chunk_text(text, "sentences")
    # Chunks start and end on sentences, so they cover every sentence and, between sentences,
    # only whitespace.
    inside = covered_mask(text, chunks)
    assert inside[covered_mask(text, sentences)].all()
    assert all(text[i].isspace() for i in np.flatnonzero(inside & ~covered_mask(text, sentences)))
    assert {c.start for c in chunks} <= {s.start for s in sentences}
    assert {c.end for c in chunks} <= {s.end for s in sentences}
    if percentile == 100:
        assert len(chunks) == min(len(sentences), 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy, percentile=st.floats(0, 100))
def test_boundaries_fall_after_the_neighbours_above_the_percentile(tiny_model, text, percentile):
    sentences = lc.chunk_text(text, "sentences")
    chunks = lc.chunk_semantic(text, model=tiny_model, percentile=percentile)
    if len(sentences) < 2:
        assert chunks == sentences
        return
    # An independent computation: embed each sentence, cosine of neighbours, numpy percentile.
    vectors = lc.naive_chunking(tiny_model, sentences).astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    distance = 1 - (vectors[:-1] * vectors[1:]).sum(axis=1)
    expected_breaks = np.flatnonzero(distance > np.percentile(distance, percentile))
    ends = {c.end for c in chunks}
    assert [i for i, s in enumerate(sentences[:-1]) if s.end in ends] == expected_breaks.tolist()
    assert len(chunks) == len(expected_breaks) + 1


def test_a_change_of_topic_starts_a_new_chunk():
    text = f"{CATS} {DATABASES}"
    chunks = lc.chunk_text(text, "semantic", model=topic_embedder, percentile=50)
    assert [c.text for c in chunks] == [CATS, DATABASES]


def test_the_real_model_splits_two_topics_where_they_meet(minilm):
    text = f"{CATS}\n{DATABASES}"
    chunks = lc.chunk_text(text, "semantic", model=minilm, percentile=75)
    assert [c.text for c in chunks] == [CATS, DATABASES]


def test_percentile_orders_the_number_of_chunks(tiny_model):
    text = " ".join(f"Sentence number {i} talks about item {i * 7 % 11}." for i in range(30))
    counts = [
        len(lc.chunk_semantic(text, model=tiny_model, percentile=p)) for p in (0, 50, 90, 100)
    ]
    assert counts == sorted(counts, reverse=True)
    assert counts[-1] == 1 and counts[0] >= 15


def test_helpers_on_known_vectors():
    vectors = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=np.float32)
    distances = neighbour_distances(vectors)
    np.testing.assert_allclose(distances, [0.0, 1.0, 1.0], atol=1e-7)
    assert semantic_breakpoints(distances, 50).tolist() == []  # median is 1.0: nothing above
    assert semantic_breakpoints(distances, 0).tolist() == [1, 2]
    assert neighbour_distances(vectors[:1]).shape == (0,)


def test_one_sentence_or_blank_text_is_never_embedded():
    def refuse(texts):
        raise AssertionError("must not embed")

    assert lc.chunk_semantic("", model=refuse) == []
    [chunk] = lc.chunk_semantic("  Only one sentence here  ", model=refuse)
    assert chunk.text == "Only one sentence here"


def test_bad_input_is_refused_with_a_clear_message(tiny_model):
    with pytest.raises(TypeError, match="needs model="):
        lc.chunk_text(CATS, "semantic")
    with pytest.raises(ValueError, match=r"percentile=120; expected a number in \[0, 100\]"):
        lc.chunk_text(CATS, "semantic", model=tiny_model, percentile=120)
    with pytest.raises(TypeError, match="percentile='high'"):
        lc.chunk_text(CATS, "semantic", model=tiny_model, percentile="high")
    with pytest.raises(ValueError, match="one row per sentence"):
        lc.chunk_text(CATS, "semantic", model=lambda texts: np.ones((1, 4)))
    with pytest.raises(TypeError, match="options valid for strategy 'semantic'"):
        lc.chunk_text(CATS, "semantic", model=tiny_model, chunk_size=3)
    assert "semantic" in lc.STRATEGIES


def test_a_corpus_can_be_embedded_with_semantic_chunks(tiny_model):
    documents = {"a": f"{CATS} {DATABASES}", "b": "One sentence only."}
    options = {"model": topic_embedder, "percentile": 50}
    corpus = lc.embed_corpus(
        tiny_model, documents, method="late", strategy="semantic", chunk_options=options,
        progress=False,
    )  # fmt: skip
    assert [r["text"] for r in corpus.records] == [CATS, DATABASES, "One sentence only."]
    assert lc.chunking_label("semantic", **options) == "semantic-50"
    assert lc.chunking_label("semantic", model=tiny_model) == "semantic-90"
