"""Python's own reference topics as an offline evaluation corpus, with structure-derived queries.

``pydoc_data.topics`` ships with every Python: 79 topics of the language reference, some of them
long. ``load_pydoc_topics`` reads them; ``build_pydoc_queries`` builds queries and span
judgments from the documents' own headings and entries (its docstring says how, and what the
task measures).

Introduced in notebook 01_chunking.
"""

from __future__ import annotations

import builtins
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..text.chunking import strip_span
from .task import RetrievalTask


def load_pydoc_topics(min_chars: int = 0, limit: int | None = None) -> dict[str, str]:
    """Python's own reference topics (``pydoc_data.topics``) as a corpus, offline.

    The text is returned exactly as Python ships it: plain text in which headings are underlined
    (``*`` for a topic's title, then ``=``, ``-``, ``~``), definitions are a signature line
    followed by a body indented by three spaces, and code is indented. On Python 3.11 there are
    79 topics, 464,970 characters in all, 15 of them longer than 8,000 characters (the longest,
    ``specialnames``, has 62,522). The exact numbers change with the Python version.

    Some topics repeat others: ``if`` and ``else`` are the same text, and long topics such as
    ``compound``, ``specialnames`` and ``execmodel`` contain the text of shorter ones (``try``,
    ``customization``, ``naming``, ...). ``build_pydoc_queries`` judges every copy relevant.

    Args:
        min_chars: keep only topics with at least this many characters (8000 keeps the 15 long
            ones on Python 3.11).
        limit: keep at most this many topics, after filtering, in id order.
    Returns:
        ``{doc_id: text}`` sorted by ``doc_id``; the ids are pydoc's topic names (``"try"``,
        ``"string-methods"``).
    Introduced in notebook 01_chunking.
    """
    try:
        from pydoc_data import topics
    except ImportError as error:  # pragma: no cover - some distributions split the stdlib
        raise ImportError(
            "this Python has no pydoc_data module; some Linux distributions ship parts of the "
            "standard library separately: install the full standard library, or use load_beir"
        ) from error

    if limit is not None and limit < 0:
        raise ValueError(f"limit={limit}; expected None or a count >= 0")
    selected = {
        doc_id: topics.topics[doc_id]
        for doc_id in sorted(topics.topics)
        if len(topics.topics[doc_id]) >= min_chars
    }
    if limit is not None:
        selected = dict(list(selected.items())[:limit])
    return selected


# A heading is a line underlined by one repeated punctuation character of the same length.
_UNDERLINE = re.compile(r"^(?P<title>\S[^\n]*)\n(?P<line>([*=\-~^\"])\3*)$", re.M)
# "str.center(width[, fillchar])", "class dict(**kwargs)", "object.__slots__".
_API_SIGNATURE = re.compile(
    r"(?P<prefix>(?:class|classmethod|staticmethod|exception) )?"
    r"(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?P<args>\(.*\))?"
)
# Commands under a "... Commands" heading: "b(reak) [args]", "ll | longlist", "p expression".
_COMMAND_SIGNATURE = re.compile(
    r"(?P<name>[a-z]+(?:\([a-z()]+\))?)(?: \| (?P<alias>[a-z]+))?(?: (?P<args>.+))?"
)
_EMPHASIS = re.compile(r"\*(\S[^*]*?)\*")
_BUILTIN_NAMES = frozenset(dir(builtins))

QUERY_KINDS = ("title", "section", "entry")

_TEMPLATES = {
    "title": ("{title}", "{title} in Python", "what to know about {title}"),
    "section": ("{heading} ({parent})", "{heading} in {parent}", "{parent}: {heading}"),
    "entry": ("{name}", "what does {name} do", "{name} in {context}"),
    "entry_bare": ("{name} ({context})", "what does {name} do in {context}"),
}


@dataclass
class _Heading:
    title: str
    level: int
    start: int  # first character of the title line
    body_start: int  # first character after the underline


@dataclass
class _Candidate:
    kind: str
    doc_id: str
    fields: dict
    start: int
    end: int


def query_name(query_id: str) -> str:
    """The name a ``build_pydoc_queries`` query asks about, as its id stores it (a slug).

    The id is ``"<kind>:<doc_id>:<slug>"``, where the slug is the title, heading or entry name in
    lower case with every run of characters other than letters, digits, ``_``, ``.`` and ``*``
    replaced by ``-`` (a ``+`` is appended when two queries would share an id; it is dropped
    here). ``query_name("entry:string-methods:str.center") == "str.center"``.
    """
    parts = str(query_id).split(":", 2)
    if len(parts) != 3 or parts[0] not in QUERY_KINDS:
        raise ValueError(
            f"query id {query_id!r} is not '<kind>:<doc_id>:<name>' with a kind in {QUERY_KINDS}"
        )
    return parts[2].rstrip("+")


def spells_query_name(query_id: str, text: str) -> bool:
    """Whether ``text`` spells the name that query ``query_id`` asks about, word for word.

    Both are compared as slugs (``query_name``): lower case, punctuation runs as ``-``, and the
    name must start and end at a slug boundary, so ``"str.center"`` is found in "Return
    str.center(width)" but ``"try"`` is not found in "retry". This is what a chunk needs to match
    a query lexically; late chunking's context is what a chunk without it needs.
    """
    return f"-{query_name(query_id)}-" in f"-{_slug(text)}-"


def query_kind(query_id: str) -> str:
    """The kind (``"title"``, ``"section"`` or ``"entry"``) of a ``build_pydoc_queries`` id.

    Introduced in notebook 04_naive_vs_late.
    """
    kind = str(query_id).split(":", 1)[0]
    if kind not in QUERY_KINDS:
        raise ValueError(f"query id {query_id!r} does not start with one of {QUERY_KINDS}")
    return kind


def count_query_kinds(query_ids: Iterable[str]) -> dict[str, int]:
    """How many queries of each kind, in ``QUERY_KINDS`` order, for the kinds present.

    Introduced in notebook 06_chunking_strategies.
    """
    counts = {kind: 0 for kind in QUERY_KINDS}
    for query_id in query_ids:
        counts[query_kind(query_id)] += 1
    return {kind: n for kind, n in counts.items() if n}


def _clean(title: str) -> str:
    """Heading text without pydoc's markup: quotes around code, stars around emphasis."""
    text = _EMPHASIS.sub(r"\1", title).replace('"', "").strip()
    return re.sub(r"^The\s+", "", text)


def _headings(text: str) -> list[_Heading]:
    levels: dict[str, int] = {}
    found = []
    for match in _UNDERLINE.finditer(text):
        title, line = match.group("title"), match.group("line")
        if len(line) != len(title):
            continue
        # Levels follow the order in which underline characters first appear, as in reST.
        level = levels.setdefault(line[0], len(levels))
        found.append(_Heading(title, level, match.start(), match.end()))
    return found


def _underline_mask(text: str, headings: list[_Heading]) -> str:
    """The text with every underline drawn in '=', same length.

    A topic copied into a longer one sits one heading level lower there ('-' instead of '='), so
    masking lets the copy match character for character without moving any offset.
    """
    pieces, cursor = [], 0
    for heading in headings:
        line_start = heading.start + len(heading.title) + 1
        pieces.append(text[cursor:line_start])
        pieces.append("=" * (heading.body_start - line_start))
        cursor = heading.body_start
    pieces.append(text[cursor:])
    return "".join(pieces)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _context(headings: list[_Heading], position: int) -> str:
    """The innermost heading above ``position``, cleaned."""
    above = [h for h in headings if h.start <= position]
    return _clean(above[-1].title) if above else ""


def _entry_name(signature: str, commands: bool) -> tuple[str, bool] | None:
    """``(name, self_identifying)`` of a definition's signature line, or None if it is not one.

    A name is self-identifying when it cannot be mistaken outside its topic (``str.center``,
    ``__len__``, ``class dict``); a bare command such as ``break`` needs its section in the query.
    """
    if commands:
        command = _COMMAND_SIGNATURE.fullmatch(signature)
        if command is None:
            return None
        name = command.group("alias") or command.group("name").replace("(", "").replace(")", "")
        return name, False
    api = _API_SIGNATURE.fullmatch(signature)
    if api is None:
        return None
    name, is_class = api.group("name"), api.group("prefix") == "class "
    # "len(d)" or "iter(dictview)" documents a builtin applied to the topic's object, not the
    # builtin itself: the name would mislead. "class dict(...)" is the type itself and stays.
    if "." not in name and name in _BUILTIN_NAMES and not is_class:
        return None
    return name, "." in name or "__" in name or is_class


def _entries(doc_id: str, text: str, headings: list[_Heading]) -> list[_Candidate]:
    """Definition entries: signature line(s), a blank line, a body indented three more spaces.

    The body must start with a capital letter (after any opening quote or star): the same layout
    also introduces indented code samples ("is equivalent to" followed by code), whose first line
    is code, not prose.
    """
    lines = text.split("\n")
    offsets = np.concatenate([[0], np.cumsum([len(line) + 1 for line in lines])])
    candidates: list[_Candidate] = []
    # (indent, name, line after its body) of the entries whose body encloses the current line
    parents: list[tuple[int, str, int]] = []
    i = 0
    while i < len(lines):
        indent = _indent(lines[i])
        if not lines[i].strip() or (i > 0 and lines[i - 1].strip()):
            i += 1
            continue
        context = _context(headings, int(offsets[i]))
        commands = "command" in context.lower()
        group = []
        j = i
        while j < len(lines) and lines[j].strip() and _indent(lines[j]) == indent:
            parsed = _entry_name(lines[j].strip(), commands)
            if parsed is None:
                break
            group.append(parsed)
            j += 1
        body = j + 1
        if (
            not group
            or j >= len(lines)
            or lines[j].strip()
            or body >= len(lines)
            or _indent(lines[body]) != indent + 3
            or not lines[body].lstrip(' "*')[:1].isupper()
        ):
            i += 1
            continue
        last = body
        while last < len(lines) and (not lines[last].strip() or _indent(lines[last]) > indent):
            last += 1
        start, end = strip_span(text, int(offsets[body]), min(int(offsets[last]), len(text)))
        parents = [p for p in parents if p[0] < indent and i < p[2]]
        names = [
            (f"{parents[-1][1]}.{name}", True) if parents and "." not in name else (name, ok)
            for name, ok in group
        ]
        candidates.append(
            _Candidate("entry", doc_id, {"names": names, "context": context}, start, end)
        )
        parents.append((indent, names[0][0], last))
        i = j
    return candidates


def _sections(doc_id: str, text: str, headings: list[_Heading]) -> list[_Candidate]:
    """The topic's title with its whole text, and each section with its own text.

    A section's own text runs up to the next heading of any level, so a parent section's answer
    is its introduction and each subsection is a query of its own.
    """
    candidates = []
    for index, heading in enumerate(headings):
        if heading.level == 0:
            start, end = strip_span(text, heading.body_start, len(text))
            candidates.append(
                _Candidate("title", doc_id, {"title": _clean(heading.title)}, start, end)
            )
            continue
        following = headings[index + 1].start if index + 1 < len(headings) else len(text)
        start, end = strip_span(text, heading.body_start, following)
        parent = next(h for h in reversed(headings[:index]) if h.level < heading.level)
        fields = {"heading": _clean(heading.title), "parent": _clean(parent.title)}
        candidates.append(_Candidate("section", doc_id, fields, start, end))
    return candidates


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.*]+", "-", text).strip("-").lower() or "x"


def _occurrences(answer: str, masked: Mapping[str, str]) -> list[tuple[str, int, int]]:
    spans = []
    for doc_id, text in masked.items():
        start = text.find(answer)
        while start != -1:
            spans.append((doc_id, start, start + len(answer)))
            start = text.find(answer, start + 1)
    return spans


def _phrase(candidate: _Candidate, rng: random.Random) -> tuple[str, str]:
    """``(query text, key for the query id)``, drawing the wording with ``rng``."""
    fields = candidate.fields
    if candidate.kind == "title":
        return rng.choice(_TEMPLATES["title"]).format(**fields), fields["title"]
    if candidate.kind == "section":
        return rng.choice(_TEMPLATES["section"]).format(**fields), fields["heading"]
    name, self_identifying = rng.choice(fields["names"])
    context = fields["context"]
    if not context:
        templates = _TEMPLATES["entry"][:2]
    else:
        templates = _TEMPLATES["entry" if self_identifying else "entry_bare"]
    return rng.choice(templates).format(name=name, context=context), name


def build_pydoc_queries(
    docs: Mapping[str, str],
    *,
    kinds: Sequence[str] = QUERY_KINDS,
    seed: int = 0,
    min_answer_chars: int = 80,
    limit: int | None = None,
) -> RetrievalTask:
    """Build queries and relevance judgments from the structure of the pydoc topics.

    **What the task measures.** Each query names an entity (a topic, a section, a documented
    method or debugger command), and its answer is the text that documents the entity, *not* the
    heading or signature line that names it. So most answer chunks do not repeat the entity: a
    chunk such as "Return a copy of the string with its first character capitalized" is relevant
    to "str.capitalize" only through where it sits in the document. This generalises the blog's
    "milvus 2.4.13" table from one paragraph to a corpus: it measures whether a chunk's vector
    carries the context that names it, which late chunking can provide and naive chunking
    cannot. A chunk holding only the heading matches the query word for word but is judged not
    relevant at chunk level (it contains no answer); at document level it still earns its
    document the best-chunk score, so document level is the easier task.

    **Kinds** (``kinds``), built in this order:

    * ``"title"``: the topic's title without markup ("try statement", "String Methods"). Answer:
      the whole topic after its title, plus the text of any section elsewhere in the corpus whose
      heading is the same (case-insensitive; the ``types`` topic's "Modules" section for the
      ``typesmodules`` topic "Modules"). Long topics have hundreds of relevant chunks, so
      recall@k is bounded by ``k / R`` for this kind; read nDCG@k and MRR.
    * ``"section"``: a section heading with its parent heading ("finally clause in try
      statement", "Metaclasses (Customizing class creation)"). Answer: the section's own text,
      up to the next heading of any level. Sections whose heading is some topic's title are left
      to the title query.
    * ``"entry"``: a documented definition, i.e. one or more signature lines
      (``str.center(width[, fillchar])``, ``object.__getattr__(self, name)``, pdb's
      ``b(reak) [...]`` under "Debugger Commands") followed by a body indented three more spaces
      whose first word is capitalised. The query uses the name: a method nested under
      ``class dict`` becomes ``dict.get``; a bare debugger command carries its section ("break
      (Debugger Commands)"); signatures sharing one body (``object.__add__``,
      ``object.__sub__``, ...) give one query with one of the names. Answer: the body.

    The wording comes from a few templates per kind ("{name}", "what does {name} do",
    "{heading} in {parent}", ...). An answer shorter than ``min_answer_chars`` characters is
    skipped. Every answer is searched verbatim in every document (heading underlines compared
    regardless of their character) and every occurrence is judged relevant, since topics repeat
    each other: ``if`` and ``else`` are the same text, ``compound`` contains ``try``. A candidate
    whose answer an earlier one already has is dropped; two queries that would read the same are
    merged into one with both answers.

    **Limits.** Judgments are only as complete as the structure: text elsewhere that answers a
    query in other words is not judged (for example ``typesfunctions`` against the "User-defined
    functions" section of ``types``). Both methods under comparison face the same gaps.

    Args:
        docs: ``{doc_id: text}``, usually ``load_pydoc_topics()``.
        kinds: which kinds to build.
        seed: draws the templates, the name of multi-signature entries and the ``limit`` sample.
        min_answer_chars: the shortest answer kept.
        limit: keep a random sample (drawn with ``seed``) of at most this many queries, in build
            order.
    Returns:
        ``RetrievalTask`` named ``"pydoc"`` over ``docs``, with ``queries`` ``{query_id:
        text}`` (the id is ``"<kind>:<doc_id>:<key>"``, which ``query_kind`` reads back),
        ``qrels_spans`` the half-open character spans of the answer in every document that
        contains it, sorted (a title query's spans in one document may overlap), and
        ``qrels_doc`` ``{query_id: {doc_id: 1}}``, every document holding an answer span.
        All grades are 1.
        The same arguments always give the same result. On Python 3.11 with the defaults:
        314 queries (78 title, 91 section, 145 entry).
    Introduced in notebook 10_long_documents.
    """
    for kind in kinds:
        if kind not in QUERY_KINDS:
            raise ValueError(f"kinds holds {kind!r}; valid: {QUERY_KINDS}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit={limit}; expected None or a count >= 0")
    rng = random.Random(seed)
    doc_ids = sorted(docs)
    structure = {doc_id: _headings(docs[doc_id]) for doc_id in doc_ids}
    masked = {doc_id: _underline_mask(docs[doc_id], structure[doc_id]) for doc_id in doc_ids}

    headed: list[_Candidate] = []
    for doc_id in doc_ids:
        headed.extend(_sections(doc_id, docs[doc_id], structure[doc_id]))
    entries: list[_Candidate] = []
    if "entry" in kinds:
        for doc_id in doc_ids:
            entries.extend(_entries(doc_id, docs[doc_id], structure[doc_id]))
    titles = {c.fields["title"].casefold() for c in headed if c.kind == "title"}
    same_heading: dict[str, list[_Candidate]] = defaultdict(list)
    for candidate in headed:
        label = candidate.fields.get("title") or candidate.fields["heading"]
        same_heading[label.casefold()].append(candidate)

    def answer(candidate: _Candidate) -> str:
        return masked[candidate.doc_id][candidate.start : candidate.end]

    candidates = [c for c in headed if c.kind == "title" and "title" in kinds]
    candidates += [
        c
        for c in headed
        if c.kind == "section"
        and "section" in kinds
        and c.fields["heading"].casefold() not in titles
    ]
    candidates += entries

    queries: dict[str, str] = {}
    spans_of: dict[str, set[tuple[str, int, int]]] = {}
    id_of_text: dict[str, str] = {}
    seen_answers: set[str] = set()
    for candidate in candidates:
        text = answer(candidate)
        if len(text) < min_answer_chars or text in seen_answers:
            continue
        seen_answers.add(text)
        query, key = _phrase(candidate, rng)
        spans = set(_occurrences(text, masked))
        if candidate.kind == "title":
            for other in same_heading[candidate.fields["title"].casefold()]:
                # A short introduction ("New in version 3.5.") recurs all over the corpus.
                if len(answer(other)) >= min_answer_chars:
                    spans.update(_occurrences(answer(other), masked))
        query_id = id_of_text.get(query)
        if query_id is None:
            query_id = f"{candidate.kind}:{candidate.doc_id}:{_slug(key)}"
            while query_id in queries:
                query_id += "+"
            id_of_text[query] = query_id
            queries[query_id] = query
            spans_of[query_id] = set()
        spans_of[query_id] |= spans

    if limit is not None and limit < len(queries):
        keep = set(random.Random(seed).sample(sorted(queries), limit))
        queries = {q: text for q, text in queries.items() if q in keep}
    qrels_spans = {q: sorted(spans_of[q]) for q in queries}
    qrels_doc = {
        q: {doc: 1 for doc in sorted({s[0] for s in spans})} for q, spans in qrels_spans.items()
    }
    return RetrievalTask(
        documents=dict(docs),
        queries=queries,
        qrels_spans=qrels_spans,
        qrels_doc=qrels_doc,
        name="pydoc",
        source="pydoc",
    )


def load_pydoc_task(
    n_documents: int = 0, *, max_queries: int | None = None, seed: int = 0
) -> RetrievalTask:
    """The pydoc topics (the first ``n_documents`` by id; 0 means all) with their queries.

    One call for what the evaluation notebooks share: ``load_pydoc_topics(limit=...)`` then
    ``build_pydoc_queries(documents, seed=seed, limit=max_queries)``.

    Args:
        n_documents: how many topics, in alphabetical order; ``0`` keeps all of them.
        max_queries: at most this many queries, sampled with ``seed``; ``None`` keeps all.
        seed: draws the query wording and the sample.
    Returns:
        ``RetrievalTask`` named ``"pydoc"``. The same arguments give the same task on the same
        Python version.
    Introduced in notebook 04_naive_vs_late.
    """
    if isinstance(n_documents, bool) or not isinstance(n_documents, int) or n_documents < 0:
        raise ValueError(f"n_documents={n_documents!r}; expected a count >= 0 (0 means all)")
    documents = load_pydoc_topics(limit=n_documents or None)
    return build_pydoc_queries(documents, seed=seed, limit=max_queries)
