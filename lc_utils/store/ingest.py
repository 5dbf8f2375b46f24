"""Ingestion that replaces documents, under chunk ids derived from what each row is.

Ingesting a document replaces everything the collection held for that document under the same
method, model and chunking. The writes are ordered so that a crash never leaves a document with
fewer rows than either its old or its new version: the new rows are upserted first (their ids
are those of the old rows with the same chunk index, see ``chunk_id``), and only then are the old
rows that the new version has no place for deleted. A crash between the two leaves the old
version's extra chunks behind, and running the ingestion again removes them.

Introduced in notebook 05_milvus_validation.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Mapping

import numpy as np

from ..progress import progress_bar
from ..vectors import unit_vectors
from .connection import is_lite
from .schema import (
    BATCH_TEXT_BYTES,
    CHUNKING_MAX_BYTES,
    DOC_ID_MAX_BYTES,
    DOCUMENTS_PER_DELETE,
    ID_LENGTH,
    METHOD_MAX_BYTES,
    MODEL_MAX_BYTES,
    RECORD_KEYS,
    UNKNOWN_WINDOW,
    collection_layout,
    count_rows,
    filter_expression,
    quote,
)

__all__ = ["chunk_id", "chunk_ids", "fit_text", "ingest", "ingest_batches"]


def chunk_id(doc_id: str, chunk_index: int, method: str, model: str, chunking: str) -> str:
    """The primary key of one chunk vector: 32 hex digits of BLAKE2b over its identity.

    The identity is the document, the chunk's index in it, the method (``"late"``, ``"naive"``),
    the model and the chunking (``"fixed-64"``, ``"sentences"``; see
    ``lc.chunking.chunking_label``), so one collection holds both methods and a whole chunk-size
    sweep side by side, and a new version of a document reuses the ids of the old one's chunks.
    JSON-encoding the tuple first keeps distinct tuples distinct whatever characters the
    document id holds. Introduced in notebook 05_milvus_validation.
    """
    key = json.dumps([doc_id, int(chunk_index), method, model, chunking], ensure_ascii=False)
    return hashlib.blake2b(key.encode("utf-8"), digest_size=ID_LENGTH // 2).hexdigest()


def chunk_ids(records, *, method=None, model=None, chunking=None) -> list[str]:
    """``chunk_id`` of every record, in order.

    ``records`` is a ``CorpusEmbeddings`` (method, model and chunking then come from it), or
    dicts or a DataFrame with ``doc_id`` and ``chunk_index`` together with ``method``, ``model``
    and ``chunking``. Use it to pair the rows of a vector matrix with Milvus ids, as
    ``validate_against_brute_force`` needs. Introduced in notebook 05_milvus_validation.
    """
    records, _, method, model, chunking = _identity(records, None, method, model, chunking)
    return [
        chunk_id(r["doc_id"], r["chunk_index"], method, model, chunking)
        for r in _as_records(records)
    ]


def _is_corpus(value) -> bool:
    return all(hasattr(value, a) for a in ("records", "vectors", "method", "model"))


def _identity(records, vectors, method, model, chunking, *, need_vectors: bool = False):
    """``(records, vectors, method, model, chunking)`` from a ``CorpusEmbeddings`` or from the
    arguments, refusing a missing label or one that contradicts the corpus."""
    if _is_corpus(records):
        corpus = records
        if vectors is not None:
            raise ValueError(
                "vectors were given beside a CorpusEmbeddings, which carries its own; pass "
                "ingest(client, name, corpus) or ingest(client, name, records, vectors, ...)"
            )
        labels = {"method": method, "model": model, "chunking": chunking}
        for label, given in labels.items():
            own = getattr(corpus, label, None)
            if given is not None and own is not None and given != own:
                raise ValueError(
                    f"{label}={given!r} contradicts the corpus, whose {label} is {own!r}"
                )
            labels[label] = own if own is not None else given
        records, vectors = corpus.records, corpus.vectors
        method, model, chunking = labels["method"], labels["model"], labels["chunking"]
        if chunking is None:
            raise ValueError(
                "the corpus does not say how it was chunked (its chunks were given precomputed "
                "or by a function); pass chunking=, a label such as 'fixed-64' or 'sentences' "
                "(lc.chunking.chunking_label), here or to embed_corpus"
            )
    elif need_vectors and vectors is None:
        raise ValueError("vectors are missing; pass (records, vectors) or a CorpusEmbeddings")
    for label, value in (("method", method), ("model", model), ("chunking", chunking)):
        if value is None:
            raise ValueError(
                f"{label}=None; pass {label}= (for example method='late', model=model.name, "
                "chunking='fixed-64'), or pass the CorpusEmbeddings itself, which carries all three"
            )
    return records, vectors, method, model, chunking


def _pass_shape(corpus, window, overlap) -> tuple[int, int]:
    """``(window, overlap)`` to store on every row: the corpus's own (a given value must agree
    with it), else the values given, else ``UNKNOWN_WINDOW``."""
    given = {"window": window, "overlap": overlap}
    for label, value in given.items():
        own = getattr(corpus, label, None) if corpus is not None else None
        if value is not None and own is not None and value != own:
            raise ValueError(f"{label}={value!r} contradicts the corpus, whose {label} is {own!r}")
        value = own if own is not None else value
        minimum = 1 if label == "window" else 0
        if value is None:
            value = UNKNOWN_WINDOW
        elif isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(
                f"{label}={value!r}; must be an int >= {minimum} (the resolved pass shape, e.g. "
                "lc.corpus.windowing(model, method, window, overlap)), or None if not known"
            )
        given[label] = int(value)
    return given["window"], given["overlap"]


def _as_records(records) -> list[dict]:
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        return records.to_dict("records")
    if isinstance(records, Mapping) or isinstance(records, str):
        raise TypeError("records must be a list of dicts or a DataFrame, not a single mapping")
    return list(records)


def _utf8_size(label: str, value: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{label} holds {value[error.start : error.end]!r} at character {error.start}, which "
            "UTF-8 cannot encode (a lone surrogate); decode the source with errors='replace'"
        ) from None


def _check_label(label: str, value, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{label}={value!r}; must be a non-empty str such as 'late', 'fixed-64' or the "
            "model's name"
        )
    if _utf8_size(label, value) > limit:
        raise ValueError(f"{label}={value[:40]!r}... is over {limit} UTF-8 bytes")
    return value


def fit_text(text: str, limit: int) -> tuple[str, bool]:
    """``(text as stored, whether it was cut)``: at most ``limit`` UTF-8 bytes, cut at a code
    point. Scale-out's resume check hashes chunk texts in this same form."""
    if _utf8_size("text", text) <= limit:
        return text, False
    data = text.encode("utf-8")
    # Cutting bytes can split a code point; "ignore" drops only that partial tail.
    return data[:limit].decode("utf-8", errors="ignore"), True


def _prepare_rows(records, vectors, layout, method, model, chunking, on_long_text, shape):
    """Validate everything first, then build the rows, so a bad input writes nothing.

    ``shape`` is ``(window, overlap)`` from ``_pass_shape``, stored where the collection has
    the fields.

    Returns ``(rows, written)``: ``written`` maps each document id to the set of chunk indices
    its new version holds.
    """
    records = _as_records(records)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(records):
        raise ValueError(
            f"vectors have shape {vectors.shape}; expected ({len(records)}, {layout['dim']}), "
            "one row per record"
        )
    if vectors.shape[1] != layout["dim"]:
        raise ValueError(
            f"vectors have dimension {vectors.shape[1]} but collection {layout['name']!r} holds "
            f"dimension {layout['dim']}; nothing was written"
        )
    try:
        unit_vectors(vectors, strict=True, label="vectors")
    except ValueError as error:
        raise ValueError(f"{error}; nothing was written") from None
    if on_long_text not in ("truncate", "error"):
        raise ValueError(f"on_long_text={on_long_text!r}; valid: 'truncate', 'error'")
    method = _check_label("method", method, METHOD_MAX_BYTES)
    model = _check_label("model", model, MODEL_MAX_BYTES)
    chunking = _check_label("chunking", chunking, CHUNKING_MAX_BYTES)
    rows, written, truncated = [], {}, 0
    for i, record in enumerate(records):
        missing = [key for key in RECORD_KEYS if key not in record]
        if missing:
            raise ValueError(f"record {i} lacks {missing}; each record needs {RECORD_KEYS}")
        doc_id, text = record["doc_id"], record["text"]
        numbers = [record[key] for key in ("chunk_index", "start", "end")]
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError(f"record {i}: doc_id={doc_id!r}; must be a non-empty str")
        if _utf8_size(f"record {i}: doc_id", doc_id) > DOC_ID_MAX_BYTES:
            raise ValueError(f"record {i}: doc_id is over {DOC_ID_MAX_BYTES} UTF-8 bytes")
        if not isinstance(text, str):
            raise ValueError(f"record {i}: text is a {type(text).__name__}; must be a str")
        if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in numbers):
            raise ValueError(f"record {i}: chunk_index, start, end = {numbers}; must be ints")
        chunk_index, start, end = (int(v) for v in numbers)
        if chunk_index < 0 or not 0 <= start <= end:
            raise ValueError(
                f"record {i} (doc {doc_id!r}): chunk_index {chunk_index}, characters "
                f"{start}–{end}; need chunk_index >= 0 and 0 <= start <= end"
            )
        indices = written.setdefault(doc_id, set())
        if chunk_index in indices:
            raise ValueError(f"record {i}: chunk {chunk_index} of doc {doc_id!r} appears twice")
        indices.add(chunk_index)
        try:
            stored, cut = fit_text(text, layout["text_max_bytes"])
        except ValueError as error:
            raise ValueError(f"record {i} (doc {doc_id!r}): {error}") from None
        if cut and on_long_text == "error":
            raise ValueError(
                f"record {i}: chunk {chunk_index} of doc {doc_id!r} holds "
                f"{len(text.encode('utf-8'))} UTF-8 bytes of text; the collection allows "
                f"{layout['text_max_bytes']}. Use on_long_text='truncate' (the full text stays "
                "recoverable as document[start:end]) or smaller chunks"
            )
        truncated += cut
        row = {
            "id": chunk_id(doc_id, chunk_index, method, model, chunking),
            "doc_id": doc_id,
            "chunk_index": chunk_index,
            "start": start,
            "end": end,
            "method": method,
            "model": model,
            "chunking": chunking,
            "text": stored,
            "vector": vectors[i],
        }
        if layout["has_truncation_flag"]:
            row["text_truncated"] = cut
        if layout["has_window_fields"]:
            row["window"], row["overlap"] = shape
        rows.append(row)
    if truncated:
        warnings.warn(
            f"{truncated} chunk text(s) exceed {layout['text_max_bytes']} UTF-8 bytes and were "
            "stored truncated (text_truncated=True); the full text is document[start:end]",
            stacklevel=4,
        )
    return rows, written


def _upsert(client, name, rows, batch_size, bar) -> None:
    batch, batch_bytes = [], 0
    for row in rows:
        batch.append(row)
        batch_bytes += len(row["text"]) * 4 + row["vector"].nbytes
        if len(batch) >= batch_size or batch_bytes >= BATCH_TEXT_BYTES:
            client.upsert(name, batch)
            if bar is not None:
                bar.update(len(batch))
            batch, batch_bytes = [], 0
    if batch:
        client.upsert(name, batch)
        if bar is not None:
            bar.update(len(batch))


def _outside(indices: set[int]) -> str:
    """A Milvus expression for the chunk indices not in ``indices`` (all of them if empty)."""
    if not indices:
        return "chunk_index >= 0"
    ordered = sorted(indices)
    runs, first = [], ordered[0]
    for previous, current in zip(ordered, ordered[1:], strict=False):
        if current != previous + 1:
            runs.append((first, previous + 1))
            first = current
    runs.append((first, ordered[-1] + 1))
    gaps = [f"chunk_index < {runs[0][0]}"] if runs[0][0] > 0 else []
    gaps += [
        f"(chunk_index >= {end} and chunk_index < {start})"
        for (_, end), (start, _) in zip(runs[:-1], runs[1:], strict=True)
    ]
    gaps.append(f"chunk_index >= {runs[-1][1]}")
    return " or ".join(gaps)


def _remove_stale(client, name: str, identity: tuple[str, str, str], written: dict) -> int:
    """Delete the rows of these documents, under this (method, model, chunking), whose chunk
    index their new version does not hold. Called only after the new rows are written.

    ``written`` maps doc id -> chunk indices of its new version. Returns the rows deleted.
    """
    method, model, chunking = identity
    label = filter_expression(method=method, model=model, chunking=chunking)
    documents = list(written.items())
    deleted = 0
    for first in range(0, len(documents), DOCUMENTS_PER_DELETE):
        group = documents[first : first + DOCUMENTS_PER_DELETE]
        clauses = " or ".join(
            f"(doc_id == {quote(doc_id)} and ({_outside(indices)}))" for doc_id, indices in group
        )
        expression = f"{label} and ({clauses})"
        # A Strong count first: nothing to delete on a first ingestion (one round trip), and
        # the deletion that follows sees every row written before it.
        stale = count_rows(client, name, expression)
        for _ in range(3):
            if not stale:
                break
            if is_lite(client):
                # Lite: make the new rows durable before the old ones go, so that a crash
                # never leaves a document with fewer rows than either version.
                client.flush(name)
            client.delete(name, filter=expression)
            deleted += stale
            stale = count_rows(client, name, expression)
            deleted -= stale
        if stale:
            raise RuntimeError(
                f"{stale} stale row(s) of {len(group)} document(s) remain in {name!r} after "
                "three deletions; ingest them again"
            )
    return deleted


def ingest(
    client,
    name: str,
    records,
    vectors: np.ndarray | None = None,
    *,
    method: str | None = None,
    model: str | None = None,
    chunking: str | None = None,
    window: int | None = None,
    overlap: int | None = None,
    batch_size: int = 1000,
    progress: bool = True,
    on_long_text: str = "truncate",
    flush: bool | None = None,
) -> int:
    """Write documents' chunks and vectors; each document given replaces its previous version.

    ``ingest(client, name, corpus)`` takes a ``CorpusEmbeddings`` from ``embed_corpus``, with
    its method, model and chunking. ``ingest(client, name, records, vectors, method=...,
    model=..., chunking=...)`` takes the parts, and then all three labels are required.

    Every document in the input replaces all rows the collection held for that document under
    the same method, model and chunking: the new chunks are upserted, then old chunks beyond
    them are deleted (see the module docstring for why in that order). So the records of a
    document must be all of its chunks; a document of a ``CorpusEmbeddings`` that has no chunk
    any more (its text became empty) loses its rows. Rows of other documents, methods, models
    and chunkings are untouched, and running the same ingestion twice changes nothing.

    Args:
        records: a ``CorpusEmbeddings``, or a list of dicts or a DataFrame with ``doc_id``
            (str), ``chunk_index`` (int), ``start``, ``end`` (int, half-open character offsets)
            and ``text`` (str), like ``CorpusEmbeddings.records``.
        vectors: float32 ``(len(records), dim)``, row i for record i; finite and non-zero.
            Leave it out when ``records`` is a ``CorpusEmbeddings``.
        method / model / chunking: stored on every row and part of its id; they default to the
            corpus's own, and a value that contradicts the corpus is refused.
        window / overlap: the resolved pass shape the vectors were made with
            (``lc.corpus.windowing``), stored on every row but not part of its id, so a
            document embedded again with other windows replaces its rows. They default to the
            corpus's own (a contradicting value is refused), else -1 ("not known", which
            ``lc.scale.embed_to_milvus`` never takes for its own windows). Collections made
            before these fields existed are written without them.
        on_long_text: ``"truncate"`` (default; see the package docstring) or ``"error"``.
        flush: seal the new rows at the end. ``None`` (default) flushes on Milvus Lite only:
            Lite searches unflushed rows far more slowly (0.4 s against 0.03 s per query on 10k
            rows here), while a server seals segments by itself and a flush costs seconds there
            and leaves small segments behind.
    Returns:
        the number of rows written.
    Raises:
        ValueError: for a dimension mismatch, a missing or contradictory label, a malformed
            record or vector, or (with ``on_long_text="error"``) an over-long text, before
            anything is written.
    Introduced in notebook 05_milvus_validation.
    """
    corpus = records if _is_corpus(records) else None
    documents = getattr(corpus, "doc_ids", None)
    shape = _pass_shape(corpus, window, overlap)
    records, vectors, method, model, chunking = _identity(
        records, vectors, method, model, chunking, need_vectors=True
    )
    layout = collection_layout(client, name, fresh=True)
    rows, written = _prepare_rows(
        records, vectors, layout, method, model, chunking, on_long_text, shape
    )
    for doc_id in documents or ():
        written.setdefault(doc_id, set())
    bar = progress_bar(len(rows), f"ingest {method}", "chunk") if progress else None
    try:
        _upsert(client, name, rows, batch_size, bar)
    finally:
        if bar is not None:
            bar.close()
    _remove_stale(client, name, (method, model, chunking), written)
    if rows and (is_lite(client) if flush is None else flush):
        client.flush(name)
    return len(rows)


def ingest_batches(
    client,
    name: str,
    batches: Iterable,
    *,
    method: str | None = None,
    model: str | None = None,
    chunking: str | None = None,
    window: int | None = None,
    overlap: int | None = None,
    batch_size: int = 1000,
    progress: bool = True,
    on_long_text: str = "truncate",
    flush: bool | None = None,
) -> int:
    """Stream the ``CorpusEmbeddings`` parts that ``iter_embed_corpus`` yields, or
    ``(records, vectors)`` pairs, into the collection; memory holds about two parts at a time.

    Each document replaces its previous version, as in ``ingest``. A document's chunks may run
    on from one part into the next (a stream sorted by document), and its old chunks are
    deleted only after the part that follows it has been written; a document that comes back
    after another part came between is ingested anew, replacing what came before. ``method``,
    ``model``, ``chunking``, ``window`` and ``overlap`` default to those of each
    ``CorpusEmbeddings`` part; the other
    arguments are those of ``ingest``, with one flush at the end. Each part is checked as
    ``ingest`` checks it before it is written; parts written before a failing one stay, and
    running the whole stream again completes it. Returns the number of rows written.
    Introduced in notebook 05_milvus_validation.
    """
    layout = collection_layout(client, name, fresh=True)
    bar = progress_bar(None, f"ingest {method or ''}".strip(), "chunk") if progress else None
    total = 0
    # (method, model, chunking) -> {doc id: chunk indices} of the previous part's documents,
    # whose stale rows wait until it is known whether the next part continues them.
    pending: dict[tuple, dict[str, set[int]]] = {}
    try:
        for part in batches:
            corpus = part if _is_corpus(part) else None
            documents = getattr(corpus, "doc_ids", None)
            shape = _pass_shape(corpus, window, overlap)
            if corpus is not None:
                records, vectors, *identity = _identity(part, None, method, model, chunking)
            else:
                try:
                    records, vectors = part
                except (TypeError, ValueError):
                    raise TypeError(
                        f"a part of the stream is a {type(part).__name__}; expected a "
                        "CorpusEmbeddings or a (records, vectors) pair"
                    ) from None
                records, vectors, *identity = _identity(
                    records, vectors, method, model, chunking, need_vectors=True
                )
            rows, written = _prepare_rows(records, vectors, layout, *identity, on_long_text, shape)
            for doc_id in documents or ():
                written.setdefault(doc_id, set())
            _upsert(client, name, rows, batch_size, bar)
            total += len(rows)
            current = {tuple(identity): written}
            for key, previous in pending.items():
                continuing = current.get(key, {})
                for doc_id in list(previous):
                    if doc_id in continuing:
                        continuing[doc_id] |= previous.pop(doc_id)
                if previous:
                    _remove_stale(client, name, key, previous)
            pending = current
        for key, previous in pending.items():
            _remove_stale(client, name, key, previous)
    finally:
        if bar is not None:
            bar.close()
    if total and (is_lite(client) if flush is None else flush):
        client.flush(name)
    return total
