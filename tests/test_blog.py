"""The blog's word-index spans, kept only so that notebook 01 can measure what is wrong."""

import lc_utils as lc


def test_sentence_word_spans_are_spacy_word_indices_not_tokens():
    text = "Late chunking pools tokens.  Word indices are not positions! Really."
    spans = lc.studies.blog.sentence_word_spans(text)
    sentences = lc.chunk_text(text, "sentences")
    assert len(spans) == len(sentences) == 3
    # Words, not characters: the first sentence is 5 words (4 words and the full stop).
    assert spans[0] == (0, 5)
    assert all(a < b for a, b in spans) and all(
        p[1] <= q[0] for p, q in zip(spans, spans[1:], strict=False)
    )
    assert lc.studies.blog.sentence_word_spans("   ") == []
    assert not hasattr(lc, "sentence_word_spans")  # not part of the package's real API
