"""Corpora, queries and relevance judgments for evaluating late chunking.

Three sources, none of which downloads anything unless the user calls ``download_beir``:

* **BEIR-format folders** (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) through
  ``load_beir``, so that users who are online can point the evaluation at SciFact, NFCorpus, ...
* **Python's own reference topics** (``pydoc_data.topics``), real long documents that ship with
  every Python, through ``load_pydoc_topics``, with queries and judgments built from the
  documents' own structure by ``build_pydoc_queries`` and mapped to any chunking by
  ``chunk_qrels``.
* **A release-note paragraph** (``RELEASE_NOTES``, ``RELEASE_QUERY``) written for this project,
  where only the first sentence names the release: the setting of the blog's cosine table.

Spans are half-open character offsets ``(start, end)`` into a document, the package's one
currency, so judgments made here apply to every chunking strategy.

Introduced in notebook 06_retrieval_eval (the release note in 04_naive_vs_late).
"""

from __future__ import annotations

import builtins
import csv
import json
import os
import random
import re
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import numpy as np

from .chunking import strip_span

__all__ = [
    "RELEASE_NOTES",
    "RELEASE_QUERY",
    "BEIR_URL",
    "BeirDataset",
    "load_beir",
    "download_beir",
    "load_pydoc_topics",
    "PydocQueries",
    "build_pydoc_queries",
    "QUERY_KINDS",
    "query_kind",
    "chunk_key",
    "chunk_keys",
    "chunk_qrels",
]

# ---------------------------------------------------------------------------------------------
# The release note (notebook 04)
# ---------------------------------------------------------------------------------------------

RELEASE_NOTES = (
    "Vectorbase 3.7.2 is a maintenance release of the open-source vector database, published on "
    "14 March 2025. It fixes a race condition that could lose writes when two clients flushed "
    "the same partition at the same moment. This version also halves the memory needed to "
    "rebuild the HNSW index after a crash, so recovery no longer fails on small machines. "
    "Searches that name a partition which does not exist now stop with a clear error instead of "
    "quietly returning nothing. The on-disk format is unchanged from the previous patch, which "
    "means upgrading needs no migration and rolling back stays possible. Its Python client gains "
    "a timeout argument on every call. We recommend the update to everyone on the 3.7 series."
)
"""A release note written for this project (not taken from the blog). Only its first sentence
names the release; the others refer to it as "it", "this version", "its". Embedding each sentence
alone loses that link, which is what late chunking restores. Introduced in notebook
04_naive_vs_late."""

RELEASE_QUERY = "vectorbase 3.7.2"
"""The query of the release-note experiment: it names the release and nothing else. Introduced
in notebook 04_naive_vs_late."""

# ---------------------------------------------------------------------------------------------
# BEIR
# ---------------------------------------------------------------------------------------------

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"

_BEIR_LAYOUT = """expected a BEIR folder laid out as
  {root}/corpus.jsonl          one JSON object per line: {{"_id": ..., "title": ..., "text": ...}}
  {root}/queries.jsonl         one JSON object per line: {{"_id": ..., "text": ...}}
  {root}/qrels/{split}.tsv     query-id<TAB>corpus-id<TAB>score, after a header line"""


@dataclass(repr=False)
class BeirDataset:
    """A BEIR-format dataset: documents, queries and the judgments of one split.

    Attributes:
        corpus: ``{doc_id: {"title": str, "text": str}}`` in file order.
        queries: ``{query_id: text}``; by default only the queries judged in ``split``.
        qrels: ``{query_id: {doc_id: int grade}}``; grades ``<= 0`` mean "not relevant".
        path: the folder it was read from.
        split: the qrels split (``"test"``, ``"dev"``, ``"train"``).
    Introduced in notebook 06_retrieval_eval.
    """

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    path: Path
    split: str

    def __repr__(self) -> str:
        return (
            f"BeirDataset(path={str(self.path)!r}, split={self.split!r}, "
            f"documents={len(self.corpus)}, queries={len(self.queries)}, "
            f"judgments={sum(len(v) for v in self.qrels.values())})"
        )

    def documents(self, separator: str = "\n\n") -> dict[str, str]:
        """``{doc_id: text}`` with the title (when there is one) joined before the text.

        The result feeds ``lc_utils.embed_corpus`` directly; character spans then refer to the
        joined string. Introduced in notebook 06_retrieval_eval.
        """
        return {
            doc_id: (f"{d['title']}{separator}{d['text']}" if d["title"] else d["text"])
            for doc_id, d in self.corpus.items()
        }

    def document_spans(self, separator: str = "\n\n") -> dict[str, list[tuple[str, int, int, int]]]:
        """The judgments as span judgments over whole documents, for ``lc_utils.evaluation``.

        BEIR judges documents, not passages, so each relevant document (grade > 0, present in
        the corpus) becomes one span ``(doc_id, 0, len(text), grade)`` over the text that
        ``documents(separator)`` returns. With these spans the document-level metrics of
        ``compare_naive_late`` are BEIR's own; the chunk-level ones count every chunk of a
        relevant document as relevant, a looser measure. Introduced in notebook 06_retrieval_eval.
        """
        texts = self.documents(separator)
        return {
            query_id: [
                (doc_id, 0, len(texts[doc_id]), grade)
                for doc_id, grade in grades.items()
                if grade > 0 and doc_id in texts
            ]
            for query_id, grades in self.qrels.items()
        }


def _layout_error(root: Path, split: str, missing: Path, extra: str = "") -> FileNotFoundError:
    return FileNotFoundError(
        f"{missing} does not exist; {_BEIR_LAYOUT.format(root=root, split=split)}{extra}"
    )


def _read_jsonl(path: Path, required: Sequence[str]) -> Iterable[tuple[int, dict]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number} holds a {type(record).__name__}, not an object")
            for key in required:
                if key not in record:
                    raise ValueError(
                        f"{path}:{number} has no {key!r} field; it has {sorted(record)}"
                    )
            yield number, record


def _parse_grade(value: str, path: Path, number: int) -> int:
    try:
        grade = float(value)
    except ValueError:
        raise ValueError(f"{path}:{number}: score {value!r} is not a number") from None
    if not grade.is_integer():
        raise ValueError(f"{path}:{number}: score {value!r} is not a whole number")
    return int(grade)


def load_beir(
    path: str | os.PathLike[str], split: str = "test", *, only_judged_queries: bool = True
) -> BeirDataset:
    """Read a BEIR-format folder from disk. Never downloads.

    Args:
        path: the dataset folder (e.g. ``datasets/scifact``) holding ``corpus.jsonl``,
            ``queries.jsonl`` and ``qrels/<split>.tsv``.
        split: which qrels file to read.
        only_judged_queries: keep only the queries that have judgments in ``split`` (what the
            BEIR loader does, since ``queries.jsonl`` holds every split's queries).
    Returns:
        ``BeirDataset``. Ids are strings, as in the files; titles default to ``""``.
    Raises:
        FileNotFoundError naming the missing file and the expected layout; ValueError naming
        ``file:line`` for a malformed line or a repeated id.
    Judgments that name documents missing from the corpus are kept, with a warning: the
    evaluation decides what to do with them (see ``lc_utils.evaluation``).
    Introduced in notebook 06_retrieval_eval.
    """
    root = Path(path)
    if not root.is_dir():
        raise _layout_error(root, split, root)
    corpus_file, queries_file = root / "corpus.jsonl", root / "queries.jsonl"
    qrels_file = root / "qrels" / f"{split}.tsv"
    for required in (corpus_file, queries_file):
        if not required.is_file():
            raise _layout_error(root, split, required)
    if not qrels_file.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        hint = f"\nsplits present: {splits}" if splits else ""
        raise _layout_error(root, split, qrels_file, hint)

    corpus: dict[str, dict[str, str]] = {}
    for number, record in _read_jsonl(corpus_file, ("_id", "text")):
        doc_id = str(record["_id"])
        if doc_id in corpus:
            raise ValueError(f"{corpus_file}:{number} repeats document id {doc_id!r}")
        corpus[doc_id] = {"title": str(record.get("title") or ""), "text": str(record["text"])}

    all_queries: dict[str, str] = {}
    for number, record in _read_jsonl(queries_file, ("_id", "text")):
        query_id = str(record["_id"])
        if query_id in all_queries:
            raise ValueError(f"{queries_file}:{number} repeats query id {query_id!r}")
        all_queries[query_id] = str(record["text"])

    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise ValueError(
                    f"{qrels_file}:{number} has {len(row)} column(s); expected "
                    "query-id<TAB>corpus-id<TAB>score"
                )
            if number == 1 and not re.fullmatch(r"\s*-?\d+(\.\d*)?\s*", row[2]):
                continue  # the header line
            qrels.setdefault(row[0], {})[row[1]] = _parse_grade(row[2], qrels_file, number)

    unknown_queries = [q for q in qrels if q not in all_queries]
    if unknown_queries:
        raise ValueError(
            f"{qrels_file} judges {len(unknown_queries)} query id(s) missing from {queries_file} "
            f"(first: {unknown_queries[0]!r})"
        )
    missing_docs = {d for judged in qrels.values() for d in judged if d not in corpus}
    if missing_docs:
        warnings.warn(
            f"{qrels_file} judges {len(missing_docs)} document id(s) missing from {corpus_file} "
            f"(e.g. {sorted(missing_docs)[0]!r})",
            stacklevel=2,
        )
    queries = (
        {q: text for q, text in all_queries.items() if q in qrels}
        if only_judged_queries
        else all_queries
    )
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, path=root, split=split)


def _probe(url: str, timeout: float) -> str | None:
    """Ask the server for the file's headers; the reason it failed, or None when it answered.

    A bare TCP connect is not enough: some networks accept every connection and fail later (at
    TLS, or by hanging). The request runs in a daemon thread with a hard deadline because name
    resolution ignores socket timeouts. Proxies from the environment apply, as for the download.
    """
    outcome: dict[str, str | None] = {"error": f"no answer within {timeout:g} s"}

    def attempt():
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                outcome["error"] = None
        except urllib.error.HTTPError as error:
            # The server answered; only "not found" says the download cannot work.
            outcome["error"] = f"HTTP {error.code} {error.reason}" if error.code == 404 else None
        except (OSError, ValueError) as error:
            outcome["error"] = f"{type(error).__name__}: {error}"

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return outcome["error"]


def _extract_safely(archive: zipfile.ZipFile, destination: Path) -> None:
    destination = destination.resolve()
    for member in archive.namelist():
        target = (destination / member).resolve()
        if target != destination and destination not in target.parents:
            raise ValueError(f"the archive member {member!r} would extract outside {destination}")
    archive.extractall(destination)


def download_beir(
    name: str,
    dest: str | os.PathLike[str] = "datasets",
    *,
    url: str | None = None,
    timeout: float = 5.0,
    overwrite: bool = False,
) -> Path:
    """Download and unzip a public BEIR dataset into ``dest/name``; only when called.

    Nothing else in the package downloads. A folder that already holds ``corpus.jsonl`` is
    returned without touching the network (unless ``overwrite``). Before downloading, a HEAD
    request with a hard deadline of about ``timeout`` seconds checks that the file can be reached,
    so an offline machine gets a clear error within a few seconds instead of a hang.

    Args:
        name: a BEIR dataset name such as ``"scifact"`` or ``"nfcorpus"``.
        dest: folder that will hold ``dest/name``.
        url: the zip to fetch; defaults to ``BEIR_URL`` with ``name`` filled in.
        timeout: seconds for the probe and for each network read.
        overwrite: download again even if ``dest/name`` exists.
    Returns:
        the dataset folder, ready for ``load_beir``.
    Raises:
        ConnectionError (offline or unreachable; says where to fetch the zip by other means),
        ValueError for a bad name or an archive without the BEIR layout.
    Introduced in notebook 06_retrieval_eval.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        raise ValueError(f"name={name!r}; expected a BEIR dataset name such as 'scifact'")
    destination = Path(dest)
    target = destination / name
    if (target / "corpus.jsonl").is_file() and not overwrite:
        return target
    url = url or BEIR_URL.format(name=name)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"url={url!r}; expected an http(s) URL of a .zip file")
    error = _probe(url, timeout)
    if error is not None:
        raise ConnectionError(
            f"cannot reach {url} ({error}). If this machine is offline, fetch the zip elsewhere, "
            f"unzip it so that {target}/corpus.jsonl exists, then call "
            f"load_beir({str(target)!r})."
        )
    destination.mkdir(parents=True, exist_ok=True)
    # Download to a temporary file first so that an interrupted transfer never leaves a zip that
    # looks complete.
    with tempfile.NamedTemporaryFile(dir=destination, suffix=".zip.part", delete=False) as part:
        part_path = Path(part.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, part)
        except OSError as error:
            part.close()
            part_path.unlink(missing_ok=True)
            raise ConnectionError(f"downloading {url} failed: {error}") from error
    try:
        with zipfile.ZipFile(part_path) as archive:
            _extract_safely(archive, destination)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{url} did not return a zip archive") from error
    finally:
        part_path.unlink(missing_ok=True)
    if not (target / "corpus.jsonl").is_file():
        found = sorted(p.name for p in destination.iterdir())
        raise ValueError(
            f"the archive from {url} did not create {target}/corpus.jsonl; {destination} now "
            f"holds {found}"
        )
    return target


# ---------------------------------------------------------------------------------------------
# Python's reference topics
# ---------------------------------------------------------------------------------------------


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
    Introduced in notebook 06_retrieval_eval.
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


class PydocQueries(NamedTuple):
    """Queries and judgments built from the pydoc topics; unpacks as a 3-tuple.

    Attributes:
        queries: ``{query_id: text}``. The id is ``"<kind>:<doc_id>:<key>"``; ``query_kind``
            reads the kind back.
        qrels_doc: ``{query_id: {doc_id: 1}}``, every document that contains an answer span.
        qrels_spans: ``{query_id: [(doc_id, start, end), ...]}``, half-open character spans of
            the answer in every document that contains it, sorted; a title query's spans in one
            document may overlap.
    Introduced in notebook 06_retrieval_eval.
    """

    queries: dict[str, str]
    qrels_doc: dict[str, dict[str, int]]
    qrels_spans: dict[str, list[tuple[str, int, int]]]


def query_kind(query_id: str) -> str:
    """The kind (``"title"``, ``"section"`` or ``"entry"``) of a ``build_pydoc_queries`` id.

    Introduced in notebook 06_retrieval_eval.
    """
    kind = str(query_id).split(":", 1)[0]
    if kind not in QUERY_KINDS:
        raise ValueError(f"query id {query_id!r} does not start with one of {QUERY_KINDS}")
    return kind


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
) -> PydocQueries:
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
        ``PydocQueries(queries, qrels_doc, qrels_spans)``; see its docstring. All grades are 1.
        The same arguments always give the same result. On Python 3.11 with the defaults:
        314 queries (78 title, 91 section, 145 entry).
    Introduced in notebook 06_retrieval_eval.
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
    return PydocQueries(queries, qrels_doc, qrels_spans)


# ---------------------------------------------------------------------------------------------
# Judgments for any chunking
# ---------------------------------------------------------------------------------------------


def chunk_key(doc_id: str, chunk_index: int) -> str:
    """The item id of a chunk in chunk-level judgments: ``f"{doc_id}#{chunk_index}"``.

    Introduced in notebook 06_retrieval_eval.
    """
    return f"{doc_id}#{int(chunk_index)}"


def chunk_keys(chunk_records: Sequence[Mapping]) -> list[str]:
    """``chunk_key`` of each record (dicts with ``doc_id`` and ``chunk_index``), in order.

    Introduced in notebook 06_retrieval_eval.
    """
    return [chunk_key(r["doc_id"], r["chunk_index"]) for r in chunk_records]


def chunk_qrels(
    qrels_spans: Mapping[str, Sequence[tuple]],
    chunk_records: Sequence[Mapping],
    *,
    min_overlap: int = 1,
) -> dict[str, dict[str, int]]:
    """Judge chunks by character overlap with relevant spans, for any chunking.

    A chunk is relevant to a query when its span ``[start, end)`` shares at least
    ``min_overlap`` characters with one of the query's relevant spans in the same document.

    Args:
        qrels_spans: ``{query_id: [(doc_id, start, end), ...]}`` or with a fourth element, an int
            grade (default 1); a chunk takes the highest grade among the spans it overlaps.
        chunk_records: dicts with ``doc_id``, ``chunk_index``, ``start``, ``end`` (half-open
            character offsets), as in ``CorpusEmbeddings.records``.
        min_overlap: characters a chunk must share with a span, ``>= 1``.
    Returns:
        ``{query_id: {chunk_key: grade}}`` holding only relevant chunks. A query whose spans no
        chunk overlaps (for example its document was not chunked) maps to ``{}``: the
        evaluation then counts it as a query without relevant items.
    Introduced in notebook 06_retrieval_eval.
    """
    if min_overlap < 1:
        raise ValueError(f"min_overlap={min_overlap}; expected >= 1")
    by_doc: dict[str, list[int]] = defaultdict(list)
    for row, record in enumerate(chunk_records):
        for key in ("doc_id", "chunk_index", "start", "end"):
            if key not in record:
                raise KeyError(f"chunk record {row} has no {key!r}; it has {sorted(record)}")
        if record["end"] < record["start"]:
            raise ValueError(
                f"chunk record {row} spans characters {record['start']}–{record['end']}; "
                "start must be <= end"
            )
        by_doc[record["doc_id"]].append(row)
    keys = chunk_keys(chunk_records)
    arrays = {
        doc: (
            np.array([chunk_records[r]["start"] for r in rows], dtype=np.int64),
            np.array([chunk_records[r]["end"] for r in rows], dtype=np.int64),
            rows,
        )
        for doc, rows in by_doc.items()
    }
    judged: dict[str, dict[str, int]] = {}
    for query_id, spans in qrels_spans.items():
        relevant: dict[str, int] = {}
        for span in spans:
            if len(span) not in (3, 4):
                raise ValueError(
                    f"qrels_spans[{query_id!r}] holds {span!r}; expected (doc_id, start, end) "
                    "or (doc_id, start, end, grade)"
                )
            doc, start, end = span[0], int(span[1]), int(span[2])
            grade = int(span[3]) if len(span) == 4 else 1
            if end < start:
                raise ValueError(
                    f"qrels_spans[{query_id!r}] spans characters {start}–{end} of {doc!r}; "
                    "start must be <= end"
                )
            if doc not in arrays or grade <= 0:
                continue
            starts, ends, rows = arrays[doc]
            overlap = np.minimum(ends, end) - np.maximum(starts, start)
            for position in np.flatnonzero(overlap >= min_overlap):
                key = keys[rows[position]]
                relevant[key] = max(relevant.get(key, 0), grade)
        judged[query_id] = relevant
    return judged
