"""What the blog post behind this project did, kept only to measure why it is wrong.

The Milvus blog post on late chunking chunked with spaCy's ``sentencizer`` and pooled over the
sentences' spaCy **word** indices as if they were model-token positions. ``sentence_word_spans``
reproduces those indices so that notebook 01 can measure how far they drift from the real token
spans. Nothing else in the package uses them; use ``lc_utils.chunk_text`` and
``lc_utils.token_spans`` for real work.

Introduced in notebook 01_chunking.
"""

from __future__ import annotations

from ..text.chunking import sentencizer

__all__ = ["sentence_word_spans"]


def sentence_word_spans(text: str) -> list[tuple[int, int]]:
    """spaCy *word* indices ``(sent.start, sent.end)`` of each sentence: the wrong thing to pool.

    This is what the blog post fed to its pooling step as if the numbers were model-token
    positions. They are not: WordPiece splits words into several tokens and the model input
    begins with [CLS], so the spans drift further with every sentence.

    Args:
        text: the document.
    Returns:
        one half-open word-index span per non-blank sentence, in order, as found by spaCy's
        blank English pipeline with the rule-based ``sentencizer`` run over the whole text
        (the same sentences as ``chunk_text(text, "sentences")``); ``[]`` for blank text.
    Introduced in notebook 01_chunking.
    """
    if not text.strip():
        return []
    nlp = sentencizer()
    nlp.max_length = max(nlp.max_length, len(text) + 1)
    return [(s.start, s.end) for s in nlp(text).sents if s.text.strip()]
