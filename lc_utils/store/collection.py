"""The chunk collection: its explicit schema, chunk ids, and idempotent ingestion.

Introduced in notebook 05_milvus_validation.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterable, Mapping

import numpy as np

from .connection import _LAYOUTS, _is_lite

INDEX_TYPES = ("FLAT", "HNSW", "AUTOINDEX")
HNSW_DEFAULTS = {"M": 16, "efConstruction": 200}
# Milvus caps VARCHAR max_length at 65,535; the other limits are generous for ids and paths.
TEXT_MAX_BYTES = 65_535
DOC_ID_MAX_BYTES = 1024
METHOD_MAX_BYTES = 64
MODEL_MAX_BYTES = 512
ID_LENGTH = 32
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
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


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


def _bar(total, desc):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="chunk")
