"""Sentence spans exactly as spaCy's rule-based ``sentencizer`` finds them, but cheaper.

The reference is spaCy's blank English pipeline with the ``sentencizer`` (``sentencizer()``):
``spacy_sentence_spans`` runs it over the whole text. Most of its time goes into spaCy's word
tokenizer, yet the sentencizer looks at very little of what the tokenizer produces. For each
token it asks two questions: is the token's text one of the pipe's ``punct_chars`` (call such a
token a *stop*), and is every character of it Unicode punctuation (category ``P*``,
``token.is_punct``)? A sentence starts at token 0 and at the first token after a stop that is
neither a stop nor punctuation (call that a *word*). Whitespace tokens are words.

``fast_sentence_spans`` answers those questions without tokenizing most of the text. spaCy cuts
the text into runs of whitespace and non-whitespace (``str.isspace``) and tokenizes each
non-whitespace run on its own; a single ``" "`` after a run is that run's trailing space, and any
other whitespace becomes a token. So, with numpy over the code points:

* a run with no ``punct_chars`` character whose first character is not punctuation starts with a
  word, wherever spaCy cuts it, and holds no stop: it is never tokenized;
* every other run that could matter (one holding a stop character, or one starting with
  punctuation that follows such a run with no word in between) is tokenized by spaCy itself, in
  one call for all runs not seen before; the result for each distinct run is kept, since a run
  is always tokenized the same way;
* spaCy's special cases are also matched over the token sequence after tokenizing
  (``Tokenizer._apply_special_cases``), and such a match can run across a single space. None of
  the English special cases holds whitespace, so a match across a space never changes the
  tokens itself, but it can hide an overlapping match inside a run. Runs on both sides of any
  space where a special case could match across (checked against every special case's own
  tokens) are therefore tokenized together, as they stand in the text.

Where a check fails (a pipeline with more than the sentencizer, a special case holding
whitespace, a ``punct_chars`` entry longer than one character, a lone surrogate, tokens that do
not cover their runs), the fast path says so by returning ``None`` and ``sentence_spans`` runs
spaCy on that document instead. For the default pipeline no input is known to need it.

Spans are half-open character offsets ``(start, end)`` with surrounding whitespace stripped and
empty sentences dropped, as ``chunk_sentences`` (which calls ``sentence_spans``) has always
returned them.
"""

from __future__ import annotations

import sys
import unicodedata
from functools import lru_cache

import numpy as np

__all__ = [
    "SPLITTERS",
    "fast_sentence_spans",
    "sentence_spans",
    "sentencizer",
    "spacy_sentence_spans",
]

SPLITTERS = ("fast", "spacy")
"""The values ``sentence_spans`` and ``chunk_sentences`` accept for ``splitter``."""

# Bits of the per-code-point class table.
_SPACE = 1  # str.isspace(): spaCy splits runs here
_PUNCT = 2  # Unicode category P*: what Token.is_punct tests, character by character
_STOP = 4  # one of the sentencizer's punct_chars

# Token kinds, as the sentencizer sees them.
_WORD, _PUNCTUATION, _STOP_TOKEN = 0, 1, 2

# Per distinct run: more entries than any corpus here has distinct runs, small enough to forget.
_MEMO_SIZE = 200_000


@lru_cache(maxsize=1)
def sentencizer():
    """spaCy's blank English pipeline with the rule-based ``sentencizer``, made once per process.

    spaCy is imported here, not at the top of the module, because it takes about a second to
    import and only sentence chunking needs it.
    """
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def _strip_and_drop_empty(text: str, spans) -> np.ndarray:
    kept = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            kept.append((start, end))
    return np.array(kept, dtype=np.int64).reshape(-1, 2)


def spacy_sentence_spans(text: str, *, nlp=None) -> np.ndarray:
    """Sentence spans from spaCy itself: the reference that the fast path must match exactly.

    ``nlp`` defaults to ``sentencizer()``. spaCy runs once over the whole text (its
    ``max_length`` is raised to fit: the rule-based pipeline needs none of the memory the limit
    protects). Returns an int64 array of shape ``(n, 2)``: half-open character spans, stripped
    of surrounding whitespace, empty sentences dropped.
    """
    nlp = sentencizer() if nlp is None else nlp
    nlp.max_length = max(nlp.max_length, len(text) + 1)
    doc = nlp(text)
    return _strip_and_drop_empty(text, ((s.start_char, s.end_char) for s in doc.sents))


# Most texts stay in the Basic Multilingual Plane, whose table takes 1/17 of the time to build.
_PLANE_SIZES = (0x10000, sys.maxunicode + 1)


@lru_cache(maxsize=len(_PLANE_SIZES))
def _unicode_classes(size: int) -> np.ndarray:
    """``_SPACE`` and ``_PUNCT`` bits for the code points below ``size``, uint8 of shape (size,)."""
    table = np.zeros(size, dtype=np.uint8)
    characters = [chr(i) for i in range(size)]
    table[[c.isspace() for c in characters]] |= _SPACE
    table[[unicodedata.category(c)[0] == "P" for c in characters]] |= _PUNCT
    return table


class _Profile:
    """What the fast path needs to know about one pipeline, worked out once."""

    def __init__(self, nlp) -> None:
        from spacy.tokenizer import Tokenizer

        self.problem = None
        tokenizer = nlp.tokenizer
        stops = nlp.get_pipe("sentencizer").punct_chars if "sentencizer" in nlp.pipe_names else ()
        if nlp.pipe_names != ["sentencizer"]:
            self.problem = f"the pipeline runs {nlp.pipe_names}, not the sentencizer alone"
        elif not isinstance(tokenizer, Tokenizer):
            self.problem = f"the tokenizer is a {type(tokenizer).__name__}, not spaCy's Tokenizer"
        elif any(len(stop) != 1 for stop in stops):
            self.problem = "a punct_chars entry is longer than one character"
        elif any(len(key) > 1 and any(c.isspace() for c in key) for key in tokenizer.rules):
            self.problem = "a special case holds whitespace, so it can join runs"
        if self.problem:
            return
        self.stops = [ord(stop) for stop in stops]
        self.tables: dict[int, np.ndarray] = {}
        self.stop_ids = np.array([nlp.vocab.strings.add(stop) for stop in stops], np.uint64)
        self.tokenizer = tokenizer
        self.memo: dict[str, tuple] = {}
        # A special case is matched over the tokens it would get without special cases
        # (Tokenizer.add_special_case); a match across a single space splits those tokens in two.
        plain = Tokenizer(
            nlp.vocab,
            prefix_search=tokenizer.prefix_search,
            suffix_search=tokenizer.suffix_search,
            infix_finditer=tokenizer.infix_finditer,
            token_match=tokenizer.token_match,
            url_match=tokenizer.url_match,
        )
        # Per (last character, first character) across the space: the key's text before the cut,
        # the token just before it, and the token just after it.
        self.joins: dict[int, list[tuple[str, str, str]]] = {}
        for key in tokenizer.rules:
            parts = [token.text for token in plain(key)]
            for cut in range(1, len(parts)):
                left, right = "".join(parts[:cut]), parts[cut]
                code = (ord(left[-1]) << 21) | ord(right[0])
                self.joins.setdefault(code, []).append((left, parts[cut - 1], right))
        self.join_codes = np.array(sorted(self.joins), dtype=np.int64)

    def classes(self, highest: int) -> np.ndarray:
        """The class table (with ``_STOP`` bits) covering code points up to ``highest``."""
        size = next(size for size in _PLANE_SIZES if highest < size)
        if size not in self.tables:
            table = _unicode_classes(size).copy()
            table[[stop for stop in self.stops if stop < size]] |= _STOP
            self.tables[size] = table
        return self.tables[size]


@lru_cache(maxsize=8)
def _profile(nlp, *pipeline_state) -> _Profile:
    # pipeline_state only keys the cache: what of the pipeline can change after its first use.
    return _Profile(nlp)


def _summarise(kinds: list[int], offsets: list[int]) -> tuple:
    """How one tokenized piece acts on the sentencizer, from its token kinds and offsets.

    ``(entry, starts, ends_after_stop, has_stop)``: the offset of its first word if no stop
    comes before it (a sentence starts there when a stop precedes the piece), else -1; the
    offsets where sentences start because of the piece's own stops; whether a stop comes after
    its last word (so the next word outside starts a sentence); whether it holds a stop.
    """
    entry, starts, after_stop, has_stop = -1, [], False, False
    for kind, offset in zip(kinds, offsets, strict=True):
        if kind == _STOP_TOKEN:
            after_stop = has_stop = True
        elif kind == _WORD:
            if after_stop:
                starts.append(offset)
                after_stop = False
            elif not has_stop and entry < 0:
                entry = offset
    return entry, tuple(starts), after_stop, has_stop


def _tokenize_new(profile: _Profile, pieces: list[str]) -> dict[str, tuple] | None:
    """Summaries of pieces not seen before, from one spaCy call; None if the tokens do not fit.

    They are also kept in ``profile.memo``, which is emptied first if it would grow too large.
    """
    joined = "\n".join(pieces)
    array = profile.tokenizer(joined).to_array(["IDX", "LENGTH", "ORTH", "IS_PUNCT", "IS_SPACE"])
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    piece_starts = _after(0, np.cumsum(lengths + 1)[:-1])
    idx, length = array[:, 0].astype(np.int64), array[:, 1].astype(np.int64)
    space = array[:, 4].astype(bool)
    # The separators, and only they, must come back as whitespace tokens ("\n"), and every other
    # token must lie inside one piece.
    if space.sum() != len(pieces) - 1 or not np.all(length[space] == 1):
        return None
    if not np.array_equal(idx[space], piece_starts[1:] - 1):
        return None
    idx, length, orth, punct = idx[~space], length[~space], array[~space, 2], array[~space, 3]
    owner = np.searchsorted(piece_starts, idx, side="right") - 1
    if np.any(idx + length > piece_starts[owner] + lengths[owner]):
        return None
    kinds = np.where(np.isin(orth, profile.stop_ids), _STOP_TOKEN, punct.astype(np.int64))
    relative = idx - piece_starts[owner]
    bounds = np.searchsorted(owner, np.arange(len(pieces) + 1))
    kinds, relative, bounds = kinds.tolist(), relative.tolist(), bounds.tolist()
    learnt = {
        piece: _summarise(kinds[bounds[i] : bounds[i + 1]], relative[bounds[i] : bounds[i + 1]])
        for i, piece in enumerate(pieces)
    }
    if len(profile.memo) + len(learnt) > _MEMO_SIZE:
        profile.memo.clear()
    profile.memo.update(learnt)
    return learnt


def _after(first, values: np.ndarray) -> np.ndarray:
    """``[first, *values]`` in ``values``'s dtype (``np.r_`` costs ~2.5 µs a call, this ~0.7)."""
    return np.concatenate((np.array([first], dtype=values.dtype), values))


def _before(values: np.ndarray, last) -> np.ndarray:
    """``[*values, last]`` in ``values``'s dtype."""
    return np.concatenate((values, np.array([last], dtype=values.dtype)))


def fast_sentence_spans(text: str, *, nlp=None) -> np.ndarray | None:
    """The spans ``spacy_sentence_spans`` returns, or ``None`` where this path cannot vouch.

    ``nlp`` defaults to ``sentencizer()``; its tokenizer runs only over the runs that can
    decide a sentence start (see the module docstring). ``None`` means: a check failed (the
    pipeline is not the blank sentencizer, a special case holds whitespace, the text holds a
    lone surrogate, ...), run spaCy instead, as ``sentence_spans`` does. What the fast path
    knows about a pipeline (a class for every code point, the special cases' tokens) is worked
    out on its first use, in about 0.1 s (0.5 s more the first time a text holds a character
    beyond the Basic Multilingual Plane, an emoji say), and again when its pipes, its
    ``punct_chars`` or its number of special cases change. Returns an int64 array of shape
    ``(n, 2)`` like the reference.
    """
    nlp = sentencizer() if nlp is None else nlp
    rules = getattr(nlp.tokenizer, "rules", None) or {}
    stops = nlp.get_pipe("sentencizer").punct_chars if "sentencizer" in nlp.pipe_names else ()
    profile = _profile(nlp, tuple(nlp.pipe_names), frozenset(stops), id(rules), len(rules))
    if profile.problem:
        return None
    try:
        code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError:
        return None
    if len(code_points) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    classes = profile.classes(int(code_points.max()))[code_points]
    solid = (classes & _SPACE) == 0
    edges = np.flatnonzero(np.diff(np.concatenate(([False], solid, [False])).view(np.int8)))
    run_starts, run_ends = edges[0::2], edges[1::2]
    if len(run_starts) == 0:
        return np.zeros((0, 2), dtype=np.int64)

    # Whitespace tokens: a leading whitespace run; between or after runs, any whitespace but a
    # single " " (which is the run's trailing space), less that first " " if it is one.
    gap_starts = run_ends
    gap_ends = _before(run_starts[1:], len(text))
    gap_size = gap_ends - gap_starts
    opens_with_space = np.zeros(len(gap_starts), dtype=bool)
    inside = gap_size > 0
    opens_with_space[inside] = code_points[gap_starts[inside]] == 32
    gap_token = inside & ~(opens_with_space & (gap_size == 1))
    space_tokens = gap_starts[gap_token] + opens_with_space[gap_token]
    if run_starts[0] > 0:
        space_tokens = _after(0, space_tokens)
    # gap_token[i] is the gap after run i; a whitespace token before run i blocks what follows.
    token_before = _after(run_starts[0] > 0, gap_token[:-1])

    # Single spaces where a special case could match across: both runs are tokenized together.
    single = ~token_before[1:]
    joined_after = np.zeros(len(run_starts), dtype=bool)
    candidates = np.flatnonzero(single)
    if len(candidates):
        codes = (code_points[run_ends[candidates] - 1].astype(np.int64) << 21) | code_points[
            run_starts[candidates + 1]
        ]
        # In text order, so that a match already running across the previous space may go on:
        # then only its last token before this space has to end the run.
        for i in candidates[np.isin(codes, profile.join_codes)].tolist():
            gap = int(run_ends[i])
            code = (ord(text[gap - 1]) << 21) | ord(text[gap + 1])
            continuing = i > 0 and joined_after[i - 1]
            joined_after[i] = any(
                text.startswith(right, gap + 1)
                and (text.endswith(left, 0, gap) or (continuing and text.endswith(last, 0, gap)))
                for left, last, right in profile.joins[code]
            )
    joined_before = _after(False, joined_after[:-1])

    stop_runs = np.zeros(len(run_starts), dtype=bool)
    stop_positions = np.flatnonzero(classes & _STOP)
    stop_runs[np.searchsorted(run_starts, stop_positions, side="right") - 1] = True
    punct_first = (classes[run_starts] & _PUNCT) != 0
    source = stop_runs | joined_after | joined_before
    # A run starting with punctuation matters only if a stop may come before it with no word in
    # between: no whitespace token and no plain run since the last run that may hold one.
    index = np.arange(len(run_starts))
    last_source = np.maximum.accumulate(np.where(source, index, -1))
    last_source = _after(-1, last_source[:-1])
    # Plain runs (no stop, first character not punctuation) start with a word: never tokenized.
    plain = ~source & ~punct_first
    block = np.maximum(
        _after(-1, np.maximum.accumulate(np.where(plain, index, -1))[:-1]),
        np.maximum.accumulate(np.where(token_before, index, -1)),
    )
    needed = punct_first & ~source & (last_source >= 0) & (last_source >= block)
    hard = source | needed

    first_runs = np.flatnonzero(hard & ~joined_before)
    last_runs = np.flatnonzero(hard & ~joined_after)
    piece_starts, piece_ends = run_starts[first_runs].tolist(), run_ends[last_runs].tolist()
    pieces = [text[s:e] for s, e in zip(piece_starts, piece_ends, strict=True)]
    summaries = [profile.memo.get(p) for p in pieces]
    new = list(dict.fromkeys(p for p, s in zip(pieces, summaries, strict=True) if s is None))
    if new:
        learnt = _tokenize_new(profile, new)
        if learnt is None:
            return None
        summaries = [learnt[p] if s is None else s for p, s in zip(pieces, summaries, strict=True)]

    starts = [0]
    entries, absorbers, sources = [], [], []
    for offset, end, (entry, own_starts, after_stop, has_stop) in zip(
        piece_starts, piece_ends, summaries, strict=True
    ):
        for start in own_starts:
            starts.append(offset + start)
        if entry >= 0:
            entries.append(offset + entry)
        elif has_stop:
            absorbers.append(offset)
        if after_stop:
            sources.append(end)
    # After a stop, the sentence starts at the next word: a whitespace token, a plain run, or a
    # piece's first word; a piece whose stop comes first starts its own sentence instead.
    words = np.concatenate([space_tokens, run_starts[plain], np.array(entries, np.int64)])
    consumers = np.concatenate([words, np.array(absorbers, np.int64)])
    starts_here = np.arange(len(consumers)) < len(words)
    order = np.argsort(consumers, kind="stable")
    consumers, starts_here = consumers[order], starts_here[order]
    following = np.searchsorted(consumers, np.array(sources, np.int64), side="left")
    following = following[following < len(consumers)]
    following = following[starts_here[following]]
    boundaries = np.unique(np.concatenate((np.array(starts, np.int64), consumers[following])))

    # Strip each sentence [b_k, b_k+1) to its first and last non-whitespace character.
    ends = _before(boundaries[1:], len(text))
    first_run = np.searchsorted(run_ends, boundaries, side="right")
    has_text = first_run < len(run_starts)
    span_starts = np.maximum(boundaries, run_starts[np.minimum(first_run, len(run_starts) - 1)])
    last_run = np.searchsorted(run_starts, ends, side="left") - 1
    span_ends = np.minimum(ends, run_ends[np.maximum(last_run, 0)])
    keep = has_text & (last_run >= 0) & (span_starts < span_ends)
    return np.stack([span_starts[keep], span_ends[keep]], axis=1).astype(np.int64)


def sentence_spans(text: str, *, splitter: str = "fast", nlp=None) -> np.ndarray:
    """Sentence spans of ``text`` as spaCy's ``sentencizer`` finds them.

    ``splitter="fast"`` (the default) takes ``fast_sentence_spans`` and falls back to spaCy for
    a document it cannot vouch for; ``splitter="spacy"`` runs the reference,
    ``spacy_sentence_spans``, alone. Both give the same spans. ``nlp`` defaults to
    ``sentencizer()``. Returns an int64 array of shape ``(n, 2)``: half-open character spans
    with surrounding whitespace stripped, empty sentences dropped.
    """
    if splitter not in SPLITTERS:
        raise ValueError(f"splitter={splitter!r}; expected one of {', '.join(SPLITTERS)}")
    if splitter == "fast":
        spans = fast_sentence_spans(text, nlp=nlp)
        if spans is not None:
            return spans
    return spacy_sentence_spans(text, nlp=nlp)
