"""Chunkers: exact character spans, order, no lost tokens, and clear errors."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lc_utils as lc

# Text drawn from every script hypothesis knows plus the characters that break naive code:
# emoji (astral plane), CJK, combining marks, zero-width and control characters, and all kinds
# of whitespace, with sentence punctuation and blank lines mixed in.
SPECIAL = "🙂👩‍👩‍👧日本語中文한국어é́ﬁ\u200b\u200d\x00\x07\x1f\u2028\u00a0\u3000\t\r\n.!?。"
text_strategy = st.lists(
    st.one_of(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
        st.sampled_from(list(SPECIAL) + [" ", ". ", "\n\n", "word", "Dr.", "e.g. x"]),
    ),
    max_size=60,
).map("".join)


def assert_chunk_invariants(text, chunks):
    previous_end = 0
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert 0 <= previous_end <= chunk.start < chunk.end <= len(text)
        assert chunk.text == chunk.text.strip()
        previous_end = chunk.end
    # Only whitespace may fall between chunks for the splitting strategies.


def covered_mask(text, chunks):
    mask = np.zeros(len(text), dtype=bool)
    for chunk in chunks:
        mask[chunk.start : chunk.end] = True
    return mask


@pytest.mark.parametrize("strategy", ["sentences", "paragraphs"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy)
def test_splitting_strategies_cover_all_non_whitespace(strategy, text):
    chunks = lc.chunk_text(text, strategy)
    assert_chunk_invariants(text, chunks)
    outside = ~covered_mask(text, chunks)
    assert all(text[i].isspace() for i in np.flatnonzero(outside))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy, chunk_size=st.integers(1, 12))
def test_fixed_chunks_hold_chunk_size_tokens_and_lose_none(tiny_model, text, chunk_size):
    chunks = lc.chunk_text(text, "fixed", tokenizer=tiny_model.tokenizer, chunk_size=chunk_size)
    assert_chunk_invariants(text, chunks)
    starts, _ = lc.token_offsets(tiny_model.tokenizer, text)
    owner = lc.chunk_of_tokens(
        len(starts), lc.token_spans(starts, lc.validate_chunks(text, chunks))
    )
    # Every token belongs to exactly one chunk ...
    assert (owner >= 0).all()
    # ... and each chunk but the last holds chunk_size tokens, plus at most the tokens that
    # share one character with its boundary (BERT splits a Hangul syllable into 3 jamo tokens
    # with the same offsets; they are never split across chunks).
    counts = np.bincount(owner, minlength=len(chunks))
    most_per_character = np.unique(starts, return_counts=True)[1].max() if len(starts) else 1
    assert (counts[:-1] >= chunk_size).all()
    assert (counts[:-1] < chunk_size + most_per_character).all()
    assert len(chunks) == 0 or counts[-1] >= 1


@settings(max_examples=300, deadline=None)
@given(text=text_strategy, cuts=st.lists(st.integers(0, 400), max_size=40), size=st.integers(1, 5))
def test_fixed_spans_strip_exactly_as_strip_span_does(text, cuts, size):
    # Token starts at any characters (repeated ones too, as jamo and byte pieces share one); the
    # array form must give the spans that cutting at the same boundaries and stripping each
    # span character by character gives, chunk for chunk.
    starts = np.array(sorted(c % len(text) for c in cuts) if text else [], dtype=np.int32)
    spans = lc.text.chunking.fixed_spans(text, starts, size)
    if not len(starts):
        assert spans.shape == (0, 2)
        return
    # The boundaries fixed_spans cuts at, found one token at a time.
    first, at = [0], 0
    while True:
        nxt = next((j for j in range(at + size, len(starts)) if starts[j] != starts[j - 1]), None)
        if nxt is None:
            break
        first.append(nxt)
        at = nxt
    bounds = [int(starts[j]) for j in first] + [len(text)]
    expected = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        a, b = lc.text.chunking.strip_span(text, a, b)
        if a < b:
            expected.append((a, b))
    assert spans.tolist() == [list(pair) for pair in expected]
    assert spans.dtype == np.int64


@pytest.mark.parametrize("strategy", ["sentences", "paragraphs"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy)
def test_every_non_whitespace_token_belongs_to_exactly_one_chunk(tiny_model, strategy, text):
    chunks = lc.chunk_text(text, strategy)
    tokens = lc.tokenize_document(tiny_model.tokenizer, text)
    owner = lc.chunk_of_tokens(
        len(tokens), lc.token_spans(tokens.starts, lc.validate_chunks(text, chunks))
    )
    for t in np.flatnonzero(owner < 0):
        assert text[tokens.starts[t] : tokens.ends[t]].isspace(), (t, tokens.starts[t])
    # Independent check of the vectorised mapping: a plain loop over tokens and chunks.
    for t, position in enumerate(tokens.starts):
        holders = [i for i, c in enumerate(chunks) if c.start <= position < c.end]
        assert holders == ([owner[t]] if owner[t] >= 0 else [])


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \u3000\u00a0 \n"])
@pytest.mark.parametrize("strategy", ["sentences", "paragraphs", "fixed"])
def test_empty_or_whitespace_text_gives_no_chunks(tiny_model, text, strategy):
    assert lc.chunk_text(text, strategy, tokenizer=tiny_model.tokenizer) == []


def test_sentences_match_spacy_on_the_whole_text():
    import spacy

    text = (
        "Dr. Smith arrived at 3 p.m. on Friday. He said: 'Fine!' Then he left.\n\n"
        "No punctuation here at all and it just keeps going\nNew line. 日本語の文。もう一つ。"
    )
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    expected = [s.text.strip() for s in nlp(text).sents if s.text.strip()]
    assert [c.text for c in lc.chunk_text(text, "sentences")] == expected


def test_no_sentence_is_cut_in_a_long_document():
    # The blog fed spaCy 10,000-character slices, which cut sentences in two. A 1.2M-character
    # text (beyond spaCy's default max_length) must come back as whole sentences.
    sentence = "This sentence is exactly as long as every other sentence in this text. "
    text = sentence * (1_200_000 // len(sentence))
    chunks = lc.chunk_text(text, "sentences")
    assert len(chunks) == len(text) // len(sentence)
    assert {c.text for c in chunks} == {sentence.strip()}


def test_grouping_sentences_and_paragraphs():
    text = "One. Two. Three. Four. Five."
    groups = lc.chunk_text(text, "sentences", sentences_per_chunk=2)
    assert [c.text for c in groups] == ["One. Two.", "Three. Four.", "Five."]
    paragraphs = "A a.\n\nB b.\n \nC c.\n\n\n\nD d."
    assert [c.text for c in lc.chunk_text(paragraphs, "paragraphs")] == [
        "A a.",
        "B b.",
        "C c.",
        "D d.",
    ]
    grouped = lc.chunk_text(paragraphs, "paragraphs", paragraphs_per_chunk=3)
    assert [c.text for c in grouped] == ["A a.\n\nB b.\n \nC c.", "D d."]


def test_fixed_chunks_follow_model_tokens(tiny_model):
    text = "Vectorbase 3.7.2 was released today."
    chunks = lc.chunk_text(text, "fixed", tokenizer=tiny_model.tokenizer, chunk_size=3)
    # WordPiece: vector ##base 3 | . 7 . | 2 was released | today .
    assert [c.text for c in chunks] == ["Vectorbase 3", ".7.", "2 was released", "today."]


def test_chunker_errors_say_what_is_valid(tiny_model):
    with pytest.raises(ValueError, match="valid:.*fixed.*paragraphs.*sentences"):
        lc.chunk_text("x", "words")
    with pytest.raises(ValueError, match="needs the tokenizer"):
        lc.chunk_text("x", "fixed")
    with pytest.raises(TypeError, match="options valid for strategy 'sentences'"):
        lc.chunk_text("x", "sentences", chunk_size=3)
    with pytest.raises(ValueError, match="chunk_size=0"):
        lc.chunk_text("x", "fixed", tokenizer=tiny_model.tokenizer, chunk_size=0)
    with pytest.raises(TypeError, match="must be a str"):
        lc.chunk_text(b"bytes")


@pytest.mark.parametrize(
    "chunks, message",
    [
        ([(0, 5), (3, 8)], "must not overlap"),
        ([(5, 8), (0, 3)], "must not overlap"),
        ([(4, 2)], "spans characters 4–2"),
        ([(0, 99)], "len\\(text\\) = 11"),
        ([(-1, 3)], "spans characters -1–3"),
        ([lc.Chunk("other", 0, 5)], "another document"),
        (["abc"], "expected a Chunk or a \\(start, end\\)"),
    ],
)
def test_validate_chunks_names_the_bad_chunk(chunks, message):
    with pytest.raises((ValueError, TypeError), match=message):
        lc.validate_chunks("hello world", chunks)


def test_validate_chunks_returns_spans():
    text = "hello world"
    spans = lc.validate_chunks(text, [lc.Chunk("hello", 0, 5), (6, 11)])
    assert spans.dtype == np.int64 and spans.tolist() == [[0, 5], [6, 11]]


@pytest.mark.parametrize("value", [2.5, float("nan"), "64", True, 64.0])
def test_sizes_must_be_integers(tiny_model, value):
    with pytest.raises(
        TypeError, match=f"chunk_size={re.escape(repr(value))} is a .*must be an int"
    ):
        lc.chunk_text("a b c d e", "fixed", tokenizer=tiny_model.tokenizer, chunk_size=value)
    with pytest.raises(TypeError, match="sentences_per_chunk=.*must be an int"):
        lc.chunk_text("A. B.", "sentences", sentences_per_chunk=value)
    with pytest.raises(TypeError, match="paragraphs_per_chunk=.*must be an int"):
        lc.chunk_text("A\n\nB", "paragraphs", paragraphs_per_chunk=value)
    numpy_size = lc.chunk_text(
        "a b c d e", "fixed", tokenizer=tiny_model.tokenizer, chunk_size=np.int64(2)
    )
    assert numpy_size == lc.chunk_text(
        "a b c d e", "fixed", tokenizer=tiny_model.tokenizer, chunk_size=2
    )


def test_a_lone_surrogate_is_named_on_every_chunking_path(tiny_model):
    text = "A sentence. Then \ud800 a broken one."
    for strategy in ("sentences", "fixed", "paragraphs"):
        with pytest.raises(ValueError, match=r"text holds '\\ud800' at character 17.*surrogate"):
            lc.chunk_text(text, strategy, tokenizer=tiny_model.tokenizer)
    with pytest.raises(ValueError, match="surrogate"):
        lc.chunk_sentences(text)


def test_chunking_labels_name_strategy_and_size():
    assert lc.chunking_label("fixed", chunk_size=64) == "fixed-64"
    assert lc.chunking_label("fixed") == "fixed-64"
    assert lc.chunking_label("sentences") == "sentences"
    assert lc.chunking_label("sentences", sentences_per_chunk=3) == "sentences-3"
    assert lc.chunking_label("paragraphs", paragraphs_per_chunk=1) == "paragraphs"
    with pytest.raises(ValueError, match="unknown chunking strategy 'words'"):
        lc.chunking_label("words")
    with pytest.raises(TypeError, match="chunk_size"):
        lc.chunking_label("sentences", chunk_size=3)
    with pytest.raises(TypeError, match="chunk_size='64'"):
        lc.chunking_label("fixed", chunk_size="64")


def test_whitespace_mask_is_str_isspace_for_every_code_point():
    """The lookup table behind ``whitespace_mask`` against Python itself, over all of Unicode
    (surrogates left out: UTF-8 cannot hold them)."""
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    expected = np.array([c.isspace() for c in text])
    mask = lc.whitespace_mask(text)
    assert mask.dtype == bool and mask.shape == expected.shape
    assert np.array_equal(mask, expected)
