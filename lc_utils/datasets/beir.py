"""BEIR-format folders: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

``load_beir`` reads one from disk as a ``RetrievalTask`` and never downloads
(``read_beir_folder`` gives the files as they are); ``download_beir`` fetches a public BEIR
dataset only when called, and fails within seconds when the machine is offline.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlparse

from .task import RetrievalTask

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"

_BEIR_LAYOUT = """expected a BEIR folder laid out as
  {root}/corpus.jsonl          one JSON object per line: {{"_id": ..., "title": ..., "text": ...}}
  {root}/queries.jsonl         one JSON object per line: {{"_id": ..., "text": ...}}
  {root}/qrels/{split}.tsv     query-id<TAB>corpus-id<TAB>score, after a header line"""


def join_title(title: str, text: str, separator: str = "\n\n") -> str:
    """A BEIR document as one text: the title (when there is one), ``separator``, the text.

    Character spans of a BEIR task refer to this joined string.
    """
    return f"{title}{separator}{text}" if title else text


def _layout_error(root: Path, split: str, missing: Path, extra: str = "") -> FileNotFoundError:
    return FileNotFoundError(
        f"{missing} does not exist; {_BEIR_LAYOUT.format(root=root, split=split)}{extra}"
    )


def read_json_lines(path: Path, required: Sequence[str] = ()) -> Iterable[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSON Lines file; a line that is not
    a JSON object, or lacks a ``required`` field, is refused naming ``path:line``."""
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


def read_beir_folder(
    path: str | os.PathLike[str], split: str = "test", *, only_judged_queries: bool = True
) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """The three files of a BEIR folder as they are: ``(corpus, queries, qrels)``. Never downloads.

    For tools that want BEIR's own form (titles apart, every judged grade), such as an MTEB task
    (``lc_utils.eval.mteb.beir_folder_task``); ``load_beir`` makes a ``RetrievalTask`` of it.

    Args:
        path: the dataset folder (e.g. ``datasets/scifact``) holding ``corpus.jsonl``,
            ``queries.jsonl`` and ``qrels/<split>.tsv``.
        split: which qrels file to read.
        only_judged_queries: keep only the queries that have judgments in ``split`` (what the
            BEIR loader does, since ``queries.jsonl`` holds every split's queries).
    Returns:
        ``corpus`` ``{doc_id: {"title": str, "text": str}}`` in file order (titles default to
        ``""``), ``queries`` ``{query_id: text}`` and ``qrels`` ``{query_id: {doc_id: int
        grade}}``, grades ``<= 0`` included. Ids are strings, as in the files.
    Raises:
        FileNotFoundError naming the missing file and the expected layout; ValueError naming
        ``file:line`` for a malformed line or a repeated id.
    Judgments that name documents missing from the corpus are kept, with a warning.
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
    for number, record in read_json_lines(corpus_file, ("_id", "text")):
        doc_id = str(record["_id"])
        if doc_id in corpus:
            raise ValueError(f"{corpus_file}:{number} repeats document id {doc_id!r}")
        corpus[doc_id] = {"title": str(record.get("title") or ""), "text": str(record["text"])}

    all_queries: dict[str, str] = {}
    for number, record in read_json_lines(queries_file, ("_id", "text")):
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
    return corpus, queries, qrels


def load_beir(
    path: str | os.PathLike[str],
    split: str = "test",
    *,
    only_judged_queries: bool = True,
    separator: str = "\n\n",
) -> RetrievalTask:
    """Read a BEIR-format folder from disk as a ``RetrievalTask``. Never downloads.

    BEIR judges documents, not passages, so each relevant document (grade > 0, present in the
    corpus) becomes one span ``(doc_id, 0, len(text), grade)`` over the whole joined text. With
    these spans the document-level metrics of ``compare_naive_late`` are BEIR's own; the
    chunk-level ones count every chunk of a relevant document as relevant, a looser measure.

    Args:
        path, split, only_judged_queries: as in ``read_beir_folder``.
        separator: joins each title to its text (``join_title``).
    Returns:
        ``RetrievalTask`` named after the folder, of source ``"folder"``: ``documents`` in file
        order, ``qrels_doc`` the grades ``> 0`` of documents in the corpus.
    Raises:
        as ``read_beir_folder``. Judgments that name documents missing from the corpus are
        dropped, with a warning.
    """
    corpus, queries, qrels = read_beir_folder(path, split, only_judged_queries=only_judged_queries)
    documents = {d: join_title(f["title"], f["text"], separator) for d, f in corpus.items()}
    qrels_doc = {
        q: {d: g for d, g in grades.items() if g > 0 and d in documents}
        for q, grades in qrels.items()
        if q in queries
    }
    qrels_spans = {
        q: [(d, 0, len(documents[d]), g) for d, g in grades.items()]
        for q, grades in qrels_doc.items()
    }
    return RetrievalTask(
        documents=documents,
        queries=queries,
        qrels_spans=qrels_spans,
        qrels_doc=qrels_doc,
        name=Path(path).name,
        source="folder",
    )


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
