"""The fast sentence splitter gives exactly spaCy's sentences: on real corpora, on texts drawn from
the hard cases, and by falling back to spaCy where it cannot vouch for its answer."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lc_utils as lc
from lc_utils.datasets.needles import build_needle_tasks
from lc_utils.text import sentences

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def assert_same_as_spacy(text: str) -> np.ndarray:
    reference = sentences.spacy_sentence_spans(text)
    fast = sentences.fast_sentence_spans(text)
    assert fast is not None, f"the fast path refused {text[:60]!r}"
    assert fast.dtype == np.int64 and fast.shape == reference.shape, (fast, reference)
    assert np.array_equal(fast, reference), (text, fast.tolist(), reference.tolist())
    return reference


def test_every_pydoc_topic_splits_as_spacy_splits_it():
    documents = lc.datasets.load_pydoc_topics()
    assert len(documents) >= 70
    sentence_count = sum(len(assert_same_as_spacy(text)) for text in documents.values())
    assert sentence_count > 1_000


def notebook_parameter_texts() -> dict[str, str]:
    """Every string literal of at least 40 characters in the notebooks' ``parameters`` cells."""
    texts = {}
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
                for node in ast.walk(ast.parse(cell.source)):
                    if isinstance(node, ast.Assign):
                        try:
                            value = ast.literal_eval(node.value)
                        except ValueError:
                            continue
                        if isinstance(value, str) and len(value) >= 40:
                            texts[f"{path.stem}:{ast.unparse(node.targets[0])}"] = value
    return texts


def test_the_notebooks_texts_split_as_spacy_splits_them(tiny_model):
    texts = notebook_parameter_texts()
    assert any(name.startswith("03_") for name in texts), sorted(texts)
    texts["RELEASE_NOTES"] = lc.datasets.RELEASE_NOTES
    needles = build_needle_tasks(tiny_model.tokenizer, lengths=(256, 1024))
    texts.update(needles.documents)
    for text in texts.values():
        assert_same_as_spacy(text)


# The cases that decide a sentence start in spaCy: its punct_chars (Latin, CJK, Devanagari),
# other punctuation, abbreviations and numbers that spaCy keeps whole, URLs and addresses, emoji,
# its special cases (emoticons, clitics, times) whose tokens can meet across a single space, and
# every kind of whitespace, which either is a run's trailing space or becomes a token.
HARD = [
    *"abXZ09.!?,;:'\"()[]…—–-/*_&#%",
    "e.g.", "Mr.", "Dr.", "U.S.", "etc.", "a.m.", "10a.m.", "3.14", "...", "?!", "!!", "--",
    "https://example.org/a.b?c=1.", "www.python.org.", "someone@example.com.", "🙂", "👩‍👧",
    "。", "！", "।", "'s", "'", "''", "n't", ":)", "(:", "o.O", "8)", ":-)", "'em", "Ltd",
    "word", "The", "(", ")", "’", "=",
    " ", " ", " ", "  ", "\n", "\n\n", "\t", "\u00a0", "\u3000", " \n ", "\r\n", "\u2028",
]  # fmt: skip
hard_texts = st.lists(st.sampled_from(HARD), max_size=40).map("".join)
EXAMPLES = 600


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hard_texts, group=st.integers(1, 3))
def test_texts_of_hard_cases_split_as_spacy_splits_them(text, group):
    assert_same_as_spacy(text)
    fast = lc.chunk_sentences(text, sentences_per_chunk=group)
    assert fast == lc.chunk_sentences(text, sentences_per_chunk=group, splitter="spacy")


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n\n",
        " \u3000\t",
        ". ",
        " Leading space. Then more.",
        "Trailing space. ",
        "Trailing newline.\n",
        # Without tokenizing these runs together, spaCy's special cases that meet across the
        # single spaces ("Ltd" "." is the special case "Ltd.") would be missed.
        "Ltd . : ’ (=('Cause",
        "Hi.\n\n(Note) a. (b) c",
        "Wait... what? Yes! 3.14 is pi. U.S. law e.g. applies.",
    ],
)
def test_edge_cases_split_as_spacy_splits_them(text):
    assert_same_as_spacy(text)


def test_a_full_memory_of_runs_is_emptied_without_losing_the_document(monkeypatch):
    text = lc.datasets.load_pydoc_topics()["try"]
    sentences.fast_sentence_spans(text)
    # Every run of the document is known now; a memory this small must be emptied mid-document.
    monkeypatch.setattr(sentences, "_MEMO_SIZE", 3)
    assert_same_as_spacy(text + " A new run, then (another) one.")


def test_empty_and_whitespace_text_have_no_sentences():
    for text in ("", " ", "\n \t\u00a0"):
        assert sentences.sentence_spans(text).shape == (0, 2)
        assert lc.chunk_sentences(text) == []


def test_a_special_case_holding_whitespace_falls_back_to_spacy():
    import spacy
    from spacy.attrs import ORTH

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    text = "See Fig. 2 for details. Done."
    assert sentences.fast_sentence_spans(text, nlp=nlp) is not None
    # spaCy matches this special case across the space and makes one token of it, so no
    # sentence starts after "Fig.": only spaCy itself knows that. Added after the pipeline's
    # first use, it must still be seen.
    nlp.tokenizer.add_special_case("Fig. 2", [{ORTH: "Fig. 2"}])
    assert sentences.fast_sentence_spans(text, nlp=nlp) is None
    spans = sentences.sentence_spans(text, nlp=nlp)
    assert np.array_equal(spans, sentences.spacy_sentence_spans(text, nlp=nlp))
    assert [text[s:e] for s, e in spans.tolist()] == ["See Fig. 2 for details.", "Done."]
    plain = sentences.sentence_spans(text)
    assert [text[s:e] for s, e in plain.tolist()] == ["See Fig.", "2 for details.", "Done."]


def test_a_pipeline_with_more_than_the_sentencizer_falls_back_to_spacy():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("merge_entities")
    text = "One sentence. Two sentences."
    assert sentences.fast_sentence_spans(text, nlp=nlp) is None
    assert sentences.sentence_spans(text, nlp=nlp).tolist() == [[0, 13], [14, 28]]


def test_the_sentencizers_own_punct_chars_are_used():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer", config={"punct_chars": [";", "|"]})
    text = "One; two. Three | four;five ; (six) seven."
    fast = sentences.fast_sentence_spans(text, nlp=nlp)
    assert np.array_equal(fast, sentences.spacy_sentence_spans(text, nlp=nlp))
    assert [text[s:e] for s, e in fast.tolist()] == [
        "One;",
        "two. Three |",
        # "(" is punctuation, so the sentence after ";" starts at "six".
        "four;five ; (",
        "six) seven.",
    ]


def test_a_lone_surrogate_is_left_to_spacy():
    assert sentences.fast_sentence_spans("Broken \ud800 text.") is None


def test_the_splitter_is_checked_and_the_reference_can_be_asked_for():
    text = "First one. Second one! Third?"
    assert lc.chunk_sentences(text, splitter="spacy") == lc.chunk_sentences(text)
    assert [c.text for c in lc.chunk_text(text, "sentences", splitter="spacy")] == [
        "First one.",
        "Second one!",
        "Third?",
    ]
    with pytest.raises(ValueError, match="splitter='blingfire'; expected one of fast, spacy"):
        lc.chunk_sentences(text, splitter="blingfire")
