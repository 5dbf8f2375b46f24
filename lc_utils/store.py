"""Chunk vectors in Milvus: connect, an explicit schema, idempotent ingestion, search, validation.

A thin layer over ``pymilvus.MilvusClient``; anything not wrapped here is called on the client.

* **Where.** ``connect("auto")`` opens Milvus Lite at ``outputs/milvus/lc.db``; a path ending in
  ``.db`` opens Milvus Lite there; an ``http(s)://`` or ``tcp://`` URL (and a token) reaches a
  Milvus server or a managed cluster. The same calls work against all of them.
* **Schema.** One row per chunk: ``id`` (VARCHAR primary key, see ``chunk_id``), ``doc_id``,
  ``chunk_index``, half-open character offsets ``start``/``end`` into the document, ``method``
  (``"late"``, ``"naive"``, ...), ``model``, ``text``, ``text_truncated`` and a FLOAT_VECTOR
  ``vector`` searched with the COSINE metric.
* **Ids.** ``chunk_id`` hashes ``(doc_id, chunk_index, method, model)``, so ingesting the same
  chunks again overwrites them (upsert) instead of adding rows, and the late and naive vectors of
  one chunk live side by side.
* **Long text.** VARCHAR limits are counted in UTF-8 bytes (Milvus servers count bytes).
  By default a text longer than the collection's limit is cut at a character boundary and the row
  gets ``text_truncated=True``; the full text is always ``document[start:end]``. Pass
  ``on_long_text="error"`` to refuse such rows instead.
* **Consistency.** Collections default to ``Session`` consistency: a client reads its own writes
  at once, and searches do not wait for the server's clock as ``Strong`` ones do (about 200 ms on
  Milvus 2.3). Counts, deletions and validation ask for ``Strong`` explicitly.

Introduced in notebook 05_milvus_validation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import socket
import warnings
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

__all__ = [
    "DEFAULT_LITE_PATH",
    "INDEX_TYPES",
    "OUTPUT_FIELDS",
    "TEXT_MAX_BYTES",
    "MilvusConnectionError",
    "connect",
    "close",
    "create_collection",
    "chunk_id",
    "chunk_ids",
    "ingest",
    "ingest_batches",
    "filter_expression",
    "search",
    "count_chunks",
    "delete_document",
    "brute_force_search",
    "validate_against_brute_force",
]

DEFAULT_LITE_PATH = Path("outputs/milvus/lc.db")
INDEX_TYPES = ("FLAT", "HNSW", "AUTOINDEX")
HNSW_DEFAULTS = {"M": 16, "efConstruction": 200}
# Milvus caps VARCHAR max_length at 65,535; the other limits are generous for ids and paths.
TEXT_MAX_BYTES = 65_535
DOC_ID_MAX_BYTES = 1024
METHOD_MAX_BYTES = 64
MODEL_MAX_BYTES = 512
ID_LENGTH = 32
MAX_TOP_K = 16_384
OUTPUT_FIELDS = (
    "doc_id",
    "chunk_index",
    "start",
    "end",
    "method",
    "model",
    "text",
    "text_truncated",
)
RECORD_KEYS = ("doc_id", "chunk_index", "start", "end", "text")
# A gRPC message holds at most 64 MB; batches are also cut by text volume to stay far below it.
BATCH_TEXT_BYTES = 16 * 2**20
QUERY_BATCH = 512
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_VALID_URIS = (
    '"auto" (Milvus Lite at outputs/milvus/lc.db), a file path ending in ".db" (Milvus Lite), '
    'or a server URL such as "http://127.0.0.1:19530", "https://host:443" or "tcp://host:19530"'
)


# Milvus Lite database path -> clients from connect() that use it, so close() knows the last one.
_LITE_CLIENTS: dict[str, weakref.WeakSet] = {}
# client -> {collection name: layout}; see _layout.
_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# client -> whether it talks to Milvus Lite.
_IS_LITE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class MilvusConnectionError(ConnectionError):
    """Milvus could not be reached or opened; the message names the URI and what is valid."""


def connect(uri: str | Path = "auto", token: str | None = None, *, timeout: float = 10):
    """Open Milvus Lite or connect to a Milvus server and return a ``pymilvus.MilvusClient``.

    Args:
        uri: ``"auto"`` for Milvus Lite at ``outputs/milvus/lc.db`` (relative to the working
            directory), a path ending in ``.db`` for Milvus Lite there (parent folders are
            created), or an ``http://``, ``https://`` or ``tcp://`` URL of a Milvus server or
            managed cluster.
        token: ``"user:password"`` or an API key, for servers with authentication.
        timeout: seconds to wait for a server to answer before giving up.
    Raises:
        MilvusConnectionError: (a ``ConnectionError``) for a malformed, unreachable or unusable
            URI, within about ``timeout`` seconds; it names the URI and the valid forms.
    Introduced in notebook 05_milvus_validation.
    """
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    if not isinstance(uri, str | Path):
        raise MilvusConnectionError(f"uri is a {type(uri).__name__}; valid: {_VALID_URIS}")
    text = str(uri).strip()
    scheme = urlparse(text).scheme.lower() if "://" in text else ""
    if text == "auto" or (scheme == "" and text.endswith(".db")):
        path = DEFAULT_LITE_PATH if text == "auto" else Path(text).expanduser()
        _check_milvus_lite()
        path.parent.mkdir(parents=True, exist_ok=True)
        target = str(path.resolve())
    elif scheme in ("http", "https", "tcp"):
        _probe_server(text, timeout)
        target = text
    else:
        raise MilvusConnectionError(f"cannot use uri {text!r}; valid: {_VALID_URIS}")
    try:
        client = MilvusClient(uri=target, token=token or "", timeout=timeout)
    except MilvusException as error:
        reason = getattr(error, "message", None) or str(error)
        if scheme == "" and _locked_elsewhere(Path(target)):
            reason = (
                "another process has this Milvus Lite database open (Lite allows one process "
                "per file); call lc.close(client) there or stop that kernel, or use a server"
            )
        raise MilvusConnectionError(
            f"could not open Milvus at {text!r}: {reason}. Valid: {_VALID_URIS}"
        ) from error
    if scheme == "":
        _LITE_CLIENTS.setdefault(target, weakref.WeakSet()).add(client)
    return client


def close(client) -> None:
    """Close a client from ``connect``.

    For Milvus Lite, the last ``close`` of a database file also stops its in-process server, which
    writes everything out and releases the file lock, so another process (a second notebook
    kernel, papermill) can open it. Without this the lock lasts until the Python process exits.
    Introduced in notebook 05_milvus_validation.
    """
    client.close()
    _LAYOUTS.pop(client, None)
    for path, clients in list(_LITE_CLIENTS.items()):
        if client in clients:
            clients.discard(client)
            if not clients:
                del _LITE_CLIENTS[path]
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(path)


def _locked_elsewhere(path: Path) -> bool:
    lock = path / "LOCK"
    if not lock.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # Windows: no flock, and no better diagnosis to offer
        return False
    with open(lock, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _check_milvus_lite() -> None:
    spec = importlib.util.find_spec("milvus_lite")
    if spec is None:
        raise MilvusConnectionError(
            "Milvus Lite is not installed; `pip install milvus-lite`, or pass a server URL"
        )
    # A stray milvus_lite.py next to a notebook wins the import and breaks Lite in obscure ways.
    if spec.origin and not spec.origin.endswith("__init__.py"):
        raise MilvusConnectionError(
            f"{spec.origin} shadows the milvus-lite package; rename that file"
        )


def _probe_server(uri: str, timeout: float) -> None:
    parsed = urlparse(uri)
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 19530)
    except ValueError as error:
        raise MilvusConnectionError(f"uri {uri!r} has a bad port ({error})") from error
    host = parsed.hostname or "localhost"
    try:
        socket.create_connection((host, port), timeout=min(timeout, 5)).close()
    except OSError as error:
        raise MilvusConnectionError(
            f"no Milvus server answers at {uri!r} ({host}:{port}: {error}). Is it running? "
            f"Valid: {_VALID_URIS}"
        ) from error


def create_collection(
    client,
    name: str,
    dim: int,
    *,
    index: str = "FLAT",
    overwrite: bool = False,
    index_params: Mapping | None = None,
    text_max_bytes: int = TEXT_MAX_BYTES,
    consistency_level: str = "Session",
) -> dict:
    """Create the chunk collection (see the module docstring for its schema), or reuse it.

    Args:
        name: collection name: letters, digits and underscores, not starting with a digit.
        dim: vector dimension, the model's embedding size.
        index: ``"FLAT"`` (exact; the default), ``"HNSW"`` (approximate; ``index_params``
            default to ``M=16, efConstruction=200``) or ``"AUTOINDEX"`` (the backend chooses).
        overwrite: drop an existing collection of that name first.
        text_max_bytes: VARCHAR limit of ``text`` in UTF-8 bytes (at most 65,535).
    Returns:
        ``{"name", "dim", "index", "metric", "created"}``; ``created`` is False when a matching
        collection already existed and was kept.
    Raises:
        ValueError: before anything changes, if a collection of that name exists with another
            dimension, metric or index, or is not a chunk collection.
    Introduced in notebook 05_milvus_validation.
    """
    from pymilvus import DataType

    _check_name(name)
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 1 <= dim <= 32_768:
        raise ValueError(f"dim={dim!r}; must be an int between 1 and 32768")
    index = str(index).upper()
    if index not in INDEX_TYPES:
        raise ValueError(f"index={index!r}; valid: {INDEX_TYPES}")
    if not 1 <= text_max_bytes <= TEXT_MAX_BYTES:
        raise ValueError(f"text_max_bytes={text_max_bytes}; must be 1..{TEXT_MAX_BYTES}")
    if client.has_collection(name):
        if not overwrite:
            layout = _layout(client, name, fresh=True)
            if layout["dim"] != dim:
                raise ValueError(
                    f"collection {name!r} exists with dim {layout['dim']}, not {dim}; use another "
                    "name, or overwrite=True to drop it and its data"
                )
            if layout["index"] != index or layout["metric"] != "COSINE":
                raise ValueError(
                    f"collection {name!r} exists with index {layout['index']} and metric "
                    f"{layout['metric']}, not {index} and COSINE; pass index="
                    f"{layout['index']!r} or overwrite=True"
                )
            return {**_public(layout), "created": False}
        client.drop_collection(name)
    _LAYOUTS.get(client, {}).pop(name, None)

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_LENGTH)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=DOC_ID_MAX_BYTES)
    schema.add_field("chunk_index", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("method", DataType.VARCHAR, max_length=METHOD_MAX_BYTES)
    schema.add_field("model", DataType.VARCHAR, max_length=MODEL_MAX_BYTES)
    schema.add_field("text", DataType.VARCHAR, max_length=int(text_max_bytes))
    schema.add_field("text_truncated", DataType.BOOL)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
    params = dict(index_params or (HNSW_DEFAULTS if index == "HNSW" else {}))
    indexes = client.prepare_index_params()
    indexes.add_index("vector", index_type=index, metric_type="COSINE", params=params)
    client.create_collection(
        name, schema=schema, index_params=indexes, consistency_level=consistency_level
    )
    return {"name": name, "dim": int(dim), "index": index, "metric": "COSINE", "created": True}


def _check_name(name) -> None:
    if not isinstance(name, str) or not _COLLECTION_NAME.fullmatch(name):
        raise ValueError(
            f"collection name {name!r} is not valid; use letters, digits and underscores, "
            "starting with a letter or underscore, at most 255 characters"
        )


def _layout(client, name: str, *, load: bool = False, fresh: bool = False) -> dict:
    """Dimension, VARCHAR limits, index and metric of an existing chunk collection.

    With ``load``, also load it for reading: Milvus Lite reopens collections released. Asking
    costs up to five round trips, and ``describe_index`` alone takes Milvus Lite 0.4 s on 10k
    unflushed rows, so the answer is kept per client. Writes and validation ask ``fresh``;
    reads use what is kept and ask again when Milvus rejects them (see ``_read``).
    """
    _check_name(name)
    known = _LAYOUTS.setdefault(client, {})
    layout = known.get(name)
    if layout is not None and not fresh and (layout["loaded"] or not load):
        return layout
    # has_collection first: a failing describe_collection makes pymilvus log a traceback.
    if not client.has_collection(name):
        known.pop(name, None)
        raise ValueError(
            f"collection {name!r} does not exist; create it with create_collection(client, "
            f"{name!r}, dim). Existing: {sorted(client.list_collections())}"
        )
    fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
    missing = [f for f in ("id", *RECORD_KEYS, "method", "model", "vector") if f not in fields]
    if missing:
        raise ValueError(
            f"collection {name!r} is not a chunk collection (no fields {missing}); "
            "create one with create_collection"
        )
    if load and "NotLoad" in str(client.get_load_state(name).get("state")):
        client.load_collection(name)
    index = {"index_type": "?", "metric_type": "?"}
    for index_name in client.list_indexes(name, field_name="vector"):
        index = client.describe_index(name, index_name)
    known[name] = {
        "name": name,
        "dim": int(fields["vector"]["params"]["dim"]),
        "text_max_bytes": int(fields["text"]["params"]["max_length"]),
        "has_truncation_flag": "text_truncated" in fields,
        "index": str(index.get("index_type", "?")).upper(),
        "metric": str(index.get("metric_type", "?")).upper(),
        "loaded": load,
    }
    return known[name]


def _read(client, name: str, action):
    """``action(layout)`` with the kept layout; if Milvus rejects it, look again and retry once,
    since the collection may have been released, dropped or recreated by another client."""
    from pymilvus.exceptions import MilvusException

    try:
        return action(_layout(client, name, load=True))
    except MilvusException:
        return action(_layout(client, name, load=True, fresh=True))


def _public(layout: dict) -> dict:
    return {key: layout[key] for key in ("name", "dim", "index", "metric")}


def chunk_id(doc_id: str, chunk_index: int, method: str, model: str) -> str:
    """The primary key of one chunk vector: 32 hex digits of BLAKE2b over its identity.

    JSON-encoding the tuple first keeps distinct tuples distinct whatever characters the
    document id holds. Introduced in notebook 05_milvus_validation.
    """
    key = json.dumps([doc_id, int(chunk_index), method, model], ensure_ascii=False)
    return hashlib.blake2b(key.encode("utf-8"), digest_size=ID_LENGTH // 2).hexdigest()


def chunk_ids(records, *, method: str, model: str) -> list[str]:
    """``chunk_id`` of every record (dicts or a DataFrame with ``doc_id`` and ``chunk_index``).

    Use it to pair the rows of a vector matrix with Milvus ids, as
    ``validate_against_brute_force`` needs. Introduced in notebook 05_milvus_validation.
    """
    return [chunk_id(r["doc_id"], r["chunk_index"], method, model) for r in _as_records(records)]


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
        raise ValueError(f"{label}={value!r}; must be a non-empty str such as 'late' or 'naive'")
    if _utf8_size(label, value) > limit:
        raise ValueError(f"{label}={value[:40]!r}... is over {limit} UTF-8 bytes")
    return value


def _fit_text(text: str, limit: int) -> tuple[str, bool]:
    if _utf8_size("text", text) <= limit:
        return text, False
    data = text.encode("utf-8")
    # Cutting bytes can split a code point; "ignore" drops only that partial tail.
    return data[:limit].decode("utf-8", errors="ignore"), True


def _prepare_rows(records, vectors, layout, method, model, on_long_text) -> list[dict]:
    """Validate everything first, then build the rows, so a bad input writes nothing."""
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
    finite = np.isfinite(vectors).all(axis=1)
    norms = np.linalg.norm(vectors, axis=1)
    bad = np.flatnonzero(~finite | (norms == 0))
    if bad.size:
        raise ValueError(
            f"vector row {bad[0]} is {'zero' if finite[bad[0]] else 'not finite'}; cosine needs "
            "finite, non-zero vectors; nothing was written"
        )
    if on_long_text not in ("truncate", "error"):
        raise ValueError(f"on_long_text={on_long_text!r}; valid: 'truncate', 'error'")
    method = _check_label("method", method, METHOD_MAX_BYTES)
    model = _check_label("model", model, MODEL_MAX_BYTES)
    rows, seen, truncated = [], set(), 0
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
        if (doc_id, chunk_index) in seen:
            raise ValueError(f"record {i}: chunk {chunk_index} of doc {doc_id!r} appears twice")
        seen.add((doc_id, chunk_index))
        try:
            stored, cut = _fit_text(text, layout["text_max_bytes"])
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
            "id": chunk_id(doc_id, chunk_index, method, model),
            "doc_id": doc_id,
            "chunk_index": chunk_index,
            "start": start,
            "end": end,
            "method": method,
            "model": model,
            "text": stored,
            "vector": vectors[i],
        }
        if layout["has_truncation_flag"]:
            row["text_truncated"] = cut
        rows.append(row)
    if truncated:
        warnings.warn(
            f"{truncated} chunk text(s) exceed {layout['text_max_bytes']} UTF-8 bytes and were "
            "stored truncated (text_truncated=True); the full text is document[start:end]",
            stacklevel=3,
        )
    return rows


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


def ingest(
    client,
    name: str,
    records,
    vectors: np.ndarray,
    *,
    method: str,
    model: str,
    batch_size: int = 1000,
    progress: bool = True,
    on_long_text: str = "truncate",
    flush: bool | None = None,
) -> int:
    """Upsert chunk records and their vectors in batches; running it twice adds no rows.

    Args:
        records: list of dicts or a DataFrame with ``doc_id`` (str), ``chunk_index`` (int),
            ``start``, ``end`` (int, half-open character offsets) and ``text`` (str): the
            ``records`` of ``embed_corpus``.
        vectors: float32 ``(len(records), dim)``, row i for record i; finite and non-zero.
        method / model: stored on every row and part of its id.
        on_long_text: ``"truncate"`` (default; see the module docstring) or ``"error"``.
        flush: seal the new rows at the end. ``None`` (default) flushes on Milvus Lite only:
            Lite searches unflushed rows far more slowly (0.4 s against 0.03 s per query on 10k
            rows here), while a server seals segments by itself and a flush costs seconds there
            and leaves small segments behind.
    Returns:
        the number of rows written.
    Raises:
        ValueError: for a dimension mismatch, a malformed record or vector, or (with
            ``on_long_text="error"``) an over-long text, before anything is written.
    Introduced in notebook 05_milvus_validation.
    """
    layout = _layout(client, name, fresh=True)
    rows = _prepare_rows(records, vectors, layout, method, model, on_long_text)
    bar = _bar(len(rows), f"ingest {method}") if progress else None
    try:
        _upsert(client, name, rows, batch_size, bar)
    finally:
        if bar is not None:
            bar.close()
    if rows and (_is_lite(client) if flush is None else flush):
        client.flush(name)
    return len(rows)


def ingest_batches(
    client,
    name: str,
    batches: Iterable,
    *,
    method: str | None = None,
    model: str | None = None,
    batch_size: int = 1000,
    progress: bool = True,
    on_long_text: str = "truncate",
    flush: bool | None = None,
) -> int:
    """Stream ``(records, vectors)`` pairs, or the ``CorpusEmbeddings`` parts that
    ``iter_embed_corpus`` yields, into the collection; memory holds one part at a time.

    ``method`` and ``model`` default to those of each ``CorpusEmbeddings`` part; the other
    arguments are those of ``ingest``, with one flush at the end. Each part is
    checked as ``ingest`` checks it before it is written; parts written before a failing one
    stay, and running the whole stream again is harmless because ingestion is idempotent.
    Returns the number of rows written. Introduced in notebook 05_milvus_validation.
    """
    layout = _layout(client, name, fresh=True)
    bar = _bar(None, f"ingest {method or ''}".strip()) if progress else None
    total = 0
    try:
        for part in batches:
            if hasattr(part, "records") and hasattr(part, "vectors"):
                records, vectors = part.records, part.vectors
                part_method = method or getattr(part, "method", None)
                part_model = model or getattr(part, "model", None)
            else:
                records, vectors = part
                part_method, part_model = method, model
            rows = _prepare_rows(records, vectors, layout, part_method, part_model, on_long_text)
            _upsert(client, name, rows, batch_size, bar)
            total += len(rows)
    finally:
        if bar is not None:
            bar.close()
    if total and (_is_lite(client) if flush is None else flush):
        client.flush(name)
    return total


def _is_lite(client) -> bool:
    if client not in _IS_LITE:
        # Lite reports "milvus_lite-3.2.2"; the Milvus 2.3.5 server package reports "v2.3.5-lite".
        in_registry = any(client in clients for clients in _LITE_CLIENTS.values())
        version = str(client.get_server_version())
        _IS_LITE[client] = in_registry or version.startswith("milvus_lite")
    return _IS_LITE[client]


def _bar(total, desc):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="chunk")


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _quote(value) -> str:
    """A Milvus string literal. Only these five escapes are understood by both Milvus Lite and the
    server, and a raw line break ends a literal; other control characters may stay raw."""
    if not isinstance(value, str):
        raise TypeError(f"filter value {value!r} is a {type(value).__name__}; must be a str")
    return '"' + "".join(_ESCAPES.get(char, char) for char in value) + '"'


def filter_expression(*, method=None, doc_id=None, filter: str | None = None) -> str:
    """A Milvus boolean expression for rows with this method and document (each a str or a list
    of str), ANDed with a raw ``filter`` expression. Quotes and backslashes in values are escaped.

    ``filter_expression(method="late", doc_id='a"b')`` gives ``method == "late" and
    doc_id == "a\\"b"``. Introduced in notebook 05_milvus_validation.
    """
    parts = []
    for field, value in (("method", method), ("doc_id", doc_id)):
        if value is None:
            continue
        if isinstance(value, str):
            parts.append(f"{field} == {_quote(value)}")
        else:
            values = list(value)
            if not values:
                raise ValueError(f"{field}=[] matches nothing; pass None to not filter")
            parts.append(f"{field} in [{', '.join(_quote(v) for v in values)}]")
    if filter:
        parts.append(f"({filter})")
    return " and ".join(parts)


def _query_matrix(query_vectors, dim: int) -> np.ndarray:
    queries = np.asarray(query_vectors, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"query vectors have shape {queries.shape}; expected (n_queries, {dim})")
    return queries


def search(
    client,
    name: str,
    query_vectors: np.ndarray,
    *,
    k: int = 10,
    method: str | Sequence[str] | None = None,
    doc_id: str | Sequence[str] | None = None,
    filter: str | None = None,
    output_fields: Sequence[str] = OUTPUT_FIELDS,
    search_params: Mapping | None = None,
    consistency_level: str | None = None,
):
    """Top-k cosine search, one DataFrame row per hit.

    Args:
        query_vectors: float32 ``(n_queries, dim)`` or ``(dim,)``.
        k: hits per query, 1..16384.
        method / doc_id / filter: restrict the search, see ``filter_expression``.
        output_fields: stored fields to return besides id and score.
        search_params: index parameters, e.g. ``{"ef": 128}`` for HNSW (default ``ef`` is
            ``max(k, 64)``).
    Returns:
        DataFrame with ``query`` (row of ``query_vectors``), ``rank`` (0-based), ``id``,
        ``score`` (cosine similarity, higher is closer) and ``output_fields``, best hit first.
    Introduced in notebook 05_milvus_validation.
    """
    import pandas as pd

    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_TOP_K:
        raise ValueError(f"k={k!r}; must be an int between 1 and {MAX_TOP_K}")
    layout = _layout(client, name, load=True)
    if np.shape(query_vectors)[-1:] != (layout["dim"],):
        layout = _layout(client, name, load=True, fresh=True)
    queries = _query_matrix(query_vectors, layout["dim"])
    expression = filter_expression(method=method, doc_id=doc_id, filter=filter)
    extra = {"consistency_level": consistency_level} if consistency_level else {}

    def run(layout: dict) -> list[dict]:
        fields = [
            f for f in output_fields if f != "text_truncated" or layout["has_truncation_flag"]
        ]
        default = {"ef": max(int(k), 64)} if layout["index"] == "HNSW" else {}
        params = {"metric_type": "COSINE", "params": dict(search_params or default)}
        rows = []
        for first in range(0, len(queries), QUERY_BATCH):
            hits = client.search(
                name,
                data=list(queries[first : first + QUERY_BATCH]),
                limit=int(k),
                filter=expression,
                output_fields=fields,
                search_params=params,
                **extra,
            )
            for offset, query_hits in enumerate(hits):
                for rank, hit in enumerate(query_hits):
                    entity = hit.get("entity", {})
                    row = {"query": first + offset, "rank": rank, "id": hit["id"]}
                    row["score"] = float(hit["distance"])
                    row.update({f: entity.get(f) for f in fields})
                    rows.append(row)
        return rows

    rows = _read(client, name, run)
    fields = [f for f in output_fields if f != "text_truncated" or layout["has_truncation_flag"]]
    return pd.DataFrame(rows, columns=["query", "rank", "id", "score", *fields])


def count_chunks(client, name: str, *, method=None, doc_id=None, filter=None) -> int:
    """Rows in the collection, optionally for a method or document, read with Strong consistency
    so that it reflects every write and deletion made so far.

    Introduced in notebook 05_milvus_validation.
    """
    expression = filter_expression(method=method, doc_id=doc_id, filter=filter)

    def run(_layout: dict) -> int:
        result = client.query(
            name, filter=expression, output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(result[0]["count(*)"])

    return _read(client, name, run)


def delete_document(client, name: str, doc_id: str, *, method: str | None = None) -> int:
    """Delete every chunk of one document (only those of ``method`` if given).

    Returns the number of rows deleted. Other documents' rows are untouched; the deletion is
    visible to searches as soon as this returns. Introduced in notebook 05_milvus_validation.
    """
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(f"doc_id={doc_id!r}; must be a non-empty str")
    before = count_chunks(client, name, method=method, doc_id=doc_id)
    if before:
        client.delete(name, filter=filter_expression(method=method, doc_id=doc_id))
    # The Strong count doubles as a barrier: once it sees the deletion, every later search does.
    left = count_chunks(client, name, method=method, doc_id=doc_id)
    if left:
        raise RuntimeError(f"{left} chunk(s) of doc {doc_id!r} remain after deleting them")
    return before


def _normalised(matrix: np.ndarray, label: str) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        raise ValueError(f"{label} have shape {matrix.shape}; expected a 2-D matrix")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.isfinite(matrix).all() or (norms == 0).any():
        raise ValueError(f"{label} must be finite and non-zero for cosine similarity")
    return matrix / norms


def _score_blocks(query_vectors, vectors, block: int = 64):
    """Yield ``(first_query, cosine_scores)`` for blocks of queries, bounding memory."""
    queries = _normalised(query_vectors, "query vectors")
    matrix = _normalised(vectors, "vectors")
    if queries.shape[1] != matrix.shape[1]:
        raise ValueError(
            f"query vectors have dimension {queries.shape[1]}, vectors {matrix.shape[1]}"
        )
    for first in range(0, len(queries), block):
        yield first, queries[first : first + block] @ matrix.T


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best per row: highest score first, lower index first among equals."""
    k = min(k, scores.shape[1])
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else None
    if candidates is None:
        candidates = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    # argpartition picks arbitrarily among ties at the k-th score; widen to all of them and sort.
    result = np.empty((scores.shape[0], k), dtype=np.int64)
    for row, (score_row, picked) in enumerate(zip(scores, candidates, strict=True)):
        kth = score_row[picked].min()
        pool = np.flatnonzero(score_row >= kth)
        order = np.lexsort((pool, -score_row[pool]))
        result[row] = pool[order[:k]]
    return result


def brute_force_search(query_vectors: np.ndarray, vectors: np.ndarray, k: int):
    """Exact cosine top-k by a numpy scan, the reference Milvus is checked against.

    Args:
        query_vectors: ``(n_queries, dim)`` or ``(dim,)``; vectors: ``(n, dim)``; any float
            dtype, computed in float32.
    Returns:
        ``(scores, indices)``: float32 and int64 ``(n_queries, min(k, n))``, best first; equal
        scores are ordered by row index, so the result is deterministic.
    Introduced in notebook 05_milvus_validation.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k={k!r}; must be a positive int")
    all_scores, all_indices = [], []
    for _, scores in _score_blocks(query_vectors, vectors):
        indices = _top_k(scores, int(k))
        all_indices.append(indices)
        all_scores.append(np.take_along_axis(scores, indices, axis=1))
    return np.concatenate(all_scores), np.concatenate(all_indices)


def validate_against_brute_force(
    client,
    name: str,
    query_vectors: np.ndarray,
    vectors: np.ndarray,
    ids: Sequence[str],
    *,
    k: int = 10,
    method: str | None = None,
    doc_id: str | Sequence[str] | None = None,
    tie_tolerance: float = 1e-5,
    search_params: Mapping | None = None,
) -> dict:
    """Compare Milvus's top-k with an exact numpy scan over the same vectors, query by query.

    Args:
        query_vectors: float32 ``(n_queries, dim)``.
        vectors / ids: float32 ``(n, dim)`` and their ``n`` Milvus ids (``chunk_ids``): exactly
            the rows the search covers, i.e. those matching ``method`` and ``doc_id``.
        tie_tolerance: scores this close to the k-th exact score count as tied with it.
    Returns:
        dict with ``agreement_at_k``: the mean over queries of the fraction of Milvus's k ids that
        the exact scan also ranks in its top k, where any id whose exact score ties the k-th
        exact score counts as in the top k (which of several equal vectors fills the last places
        is arbitrary, in Milvus and here alike); ``strict_agreement_at_k``: the same without that
        tie rule; ``max_abs_score_diff`` / ``mean_abs_score_diff``: Milvus's score of each hit
        against its exact cosine; ``mean_rank_score_gap``: how much lower Milvus's scores are
        than the exact ones rank for rank (0 when exact); ``index``, ``k``, ``n_queries``,
        ``n_vectors``; and ``per_query``, a DataFrame of the same figures per query.
        FLAT must give ``agreement_at_k == 1.0``; HNSW is approximate, and this measures it.
    Raises:
        ValueError: if the collection holds a different number of rows under the filter than
            ``len(ids)``, or shapes disagree.
    Introduced in notebook 05_milvus_validation.
    """
    import pandas as pd

    ids = [str(i) for i in ids]
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for vectors of shape {vectors.shape}; need one id a row")
    stored = count_chunks(client, name, method=method, doc_id=doc_id)
    if stored != len(ids):
        raise ValueError(
            f"collection {name!r} holds {stored} rows matching method={method!r}, "
            f"doc_id={doc_id!r}, but {len(ids)} vectors were given; the brute-force scan must "
            "cover exactly the rows Milvus searches"
        )
    layout = _layout(client, name, fresh=True)
    k_effective = min(int(k), len(ids))
    hits = search(
        client,
        name,
        query_vectors,
        k=k_effective,
        method=method,
        doc_id=doc_id,
        output_fields=(),
        search_params=search_params,
        consistency_level="Strong",
    )
    hits_by_query = {q: group for q, group in hits.groupby("query", sort=False)}
    row_of = {id_: row for row, id_ in enumerate(ids)}
    per_query = []
    for first, scores in _score_blocks(query_vectors, vectors):
        exact_top = _top_k(scores, k_effective)
        for offset, score_row in enumerate(scores):
            query = first + offset
            group = hits_by_query.get(query)
            found = [] if group is None else group["id"].astype(str).tolist()
            milvus_scores = np.array([] if group is None else group["score"], dtype=np.float64)
            rows = [row_of.get(i, -1) for i in found]
            known = np.array([r for r in rows if r >= 0], dtype=np.int64)
            top = set(exact_top[offset].tolist())
            kth = score_row[exact_top[offset][-1]]
            tied = set(np.flatnonzero(score_row >= kth - tie_tolerance).tolist())
            diffs = np.abs(milvus_scores[[r >= 0 for r in rows]] - score_row[known])
            gaps = score_row[exact_top[offset]][: len(milvus_scores)] - milvus_scores
            per_query.append(
                {
                    "query": query,
                    "agreement": min(len(tied.intersection(rows)), k_effective) / k_effective,
                    "strict_agreement": len(top.intersection(rows)) / k_effective,
                    "hits": len(found),
                    "unknown_ids": len(rows) - len(known),
                    "max_abs_score_diff": float(diffs.max()) if diffs.size else 0.0,
                    "mean_abs_score_diff": float(diffs.mean()) if diffs.size else 0.0,
                    "rank_score_gap": float(gaps.mean()) if gaps.size else 0.0,
                }
            )
    table = pd.DataFrame(per_query)
    return {
        "index": layout["index"],
        "k": k_effective,
        "n_queries": len(table),
        "n_vectors": len(ids),
        "agreement_at_k": float(table["agreement"].mean()),
        "strict_agreement_at_k": float(table["strict_agreement"].mean()),
        "max_abs_score_diff": float(table["max_abs_score_diff"].max()),
        "mean_abs_score_diff": float(table["mean_abs_score_diff"].mean()),
        "mean_rank_score_gap": float(table["rank_score_gap"].mean()),
        "per_query": table,
    }
