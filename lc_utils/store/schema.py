"""The chunk collection's explicit schema, its layout as Milvus reports it, and filter expressions.

Introduced in notebook 05_milvus_validation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from .connection import client_cache

__all__ = [
    "INDEX_TYPES",
    "OUTPUT_FIELDS",
    "RECORD_KEYS",
    "TEXT_MAX_BYTES",
    "UNKNOWN_WINDOW",
    "WINDOW_FIELDS",
    "create_collection",
    "collection_layout",
    "read_with_layout",
    "quote",
    "filter_expression",
    "count_rows",
]

INDEX_TYPES = ("FLAT", "HNSW", "AUTOINDEX")
HNSW_DEFAULTS = {"M": 16, "efConstruction": 200}
# Milvus caps VARCHAR max_length at 65,535; the other limits are generous for ids and paths.
TEXT_MAX_BYTES = 65_535
DOC_ID_MAX_BYTES = 1024
METHOD_MAX_BYTES = 64
MODEL_MAX_BYTES = 512
CHUNKING_MAX_BYTES = 128
ID_LENGTH = 32
OUTPUT_FIELDS = (
    "doc_id",
    "chunk_index",
    "start",
    "end",
    "method",
    "model",
    "chunking",
    "text",
    "text_truncated",
)
RECORD_KEYS = ("doc_id", "chunk_index", "start", "end", "text")
# The pass shape a row's vector was made with (``CorpusEmbeddings.window`` / ``.overlap``); the
# value stored when a caller did not say. Not part of the id: a new window replaces the rows.
WINDOW_FIELDS = ("window", "overlap")
UNKNOWN_WINDOW = -1
# A gRPC message holds at most 64 MB; batches are also cut by text volume to stay far below it.
BATCH_TEXT_BYTES = 16 * 2**20
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
# Documents per delete expression when stale rows are removed, to keep expressions short.
DOCUMENTS_PER_DELETE = 64


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
            layout = collection_layout(client, name, fresh=True)
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
    client_cache(client).setdefault("layouts", {}).pop(name, None)

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_LENGTH)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=DOC_ID_MAX_BYTES)
    schema.add_field("chunk_index", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("method", DataType.VARCHAR, max_length=METHOD_MAX_BYTES)
    schema.add_field("model", DataType.VARCHAR, max_length=MODEL_MAX_BYTES)
    schema.add_field("chunking", DataType.VARCHAR, max_length=CHUNKING_MAX_BYTES)
    schema.add_field("text", DataType.VARCHAR, max_length=int(text_max_bytes))
    schema.add_field("text_truncated", DataType.BOOL)
    for window_field in WINDOW_FIELDS:
        schema.add_field(window_field, DataType.INT64)
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


def collection_layout(client, name: str, *, load: bool = False, fresh: bool = False) -> dict:
    """Dimension, VARCHAR limits, index and metric of an existing chunk collection.

    With ``load``, also load it for reading: Milvus Lite reopens collections released. Asking
    costs up to five round trips, and ``describe_index`` alone takes Milvus Lite 0.4 s on 10k
    unflushed rows, so the answer is kept per client. Writes and validation ask ``fresh``;
    reads use what is kept and ask again when Milvus rejects them (see ``read_with_layout``).
    Returns ``{"name", "dim", "text_max_bytes", "has_truncation_flag", "has_window_fields",
    "index", "metric", "loaded"}``; the store's modules share it, users rarely need it.
    """
    _check_name(name)
    known = client_cache(client).setdefault("layouts", {})
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
    if not missing and "chunking" not in fields:
        raise ValueError(
            f"collection {name!r} has no chunking field: it was created by an earlier version of "
            "lc_utils, whose ids cannot tell two chunkings of a document apart. Recreate it "
            f"with create_collection(client, {name!r}, dim, overwrite=True) and ingest again"
        )
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
        # Collections created before the window fields existed are still read and written.
        "has_window_fields": all(f in fields for f in WINDOW_FIELDS),
        "index": str(index.get("index_type", "?")).upper(),
        "metric": str(index.get("metric_type", "?")).upper(),
        "loaded": load,
    }
    return known[name]


def read_with_layout(client, name: str, action):
    """``action(layout)`` with the kept layout; if Milvus rejects it, look again and retry once,
    since the collection may have been released, dropped or recreated by another client."""
    from pymilvus.exceptions import MilvusException

    try:
        return action(collection_layout(client, name, load=True))
    except MilvusException:
        return action(collection_layout(client, name, load=True, fresh=True))


def _public(layout: dict) -> dict:
    return {key: layout[key] for key in ("name", "dim", "index", "metric")}


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value) -> str:
    """A Milvus string literal. Only these five escapes are understood by both Milvus Lite and the
    server, and a raw line break ends a literal; other control characters may stay raw."""
    if not isinstance(value, str):
        raise TypeError(f"filter value {value!r} is a {type(value).__name__}; must be a str")
    return '"' + "".join(_ESCAPES.get(char, char) for char in value) + '"'


def filter_expression(
    *, method=None, doc_id=None, model=None, chunking=None, filter: str | None = None
) -> str:
    """A Milvus boolean expression for rows with this method, document, model and chunking (each
    a str or a list of str; None does not filter), ANDed with a raw ``filter`` expression.
    Quotes and backslashes in values are escaped.

    ``filter_expression(method="late", doc_id='a"b')`` gives ``method == "late" and
    doc_id == "a\\"b"``. Introduced in notebook 05_milvus_validation.
    """
    parts = []
    fields = (("method", method), ("doc_id", doc_id), ("model", model), ("chunking", chunking))
    for field, value in fields:
        if value is None:
            continue
        if isinstance(value, str):
            parts.append(f"{field} == {quote(value)}")
        else:
            values = list(value)
            if not values:
                raise ValueError(f"{field}=[] matches nothing; pass None to not filter")
            parts.append(f"{field} in [{', '.join(quote(v) for v in values)}]")
    if filter:
        parts.append(f"({check_filter(filter)})")
    return " and ".join(parts)


def check_filter(filter: str) -> str:
    """``filter`` if it is one self-contained expression that cannot change the meaning of the
    conditions it is ANDed with; otherwise ValueError.

    The filter is read the way Milvus reads it: string literals (single or double quotes, with
    backslash escapes) are skipped, and outside them every parenthesis and bracket must close
    in order and none may close what the filter did not open. ``'x >= 0) or (1 == 1'`` is
    refused, since wrapped as ``scope and (x >= 0) or (1 == 1)`` it would return rows of every
    scope. Comments and unterminated literals are refused too.
    """
    if not isinstance(filter, str):
        raise TypeError(f"filter={filter!r} is a {type(filter).__name__}; must be a str")
    closing = {")": "(", "]": "["}
    opened: list[str] = []
    quote_char = None
    position = 0
    while position < len(filter):
        char = filter[position]
        if quote_char:
            if char == "\\":
                position += 1
            elif char == quote_char:
                quote_char = None
        elif char in "\"'":
            quote_char = char
        elif filter.startswith(("//", "/*", "--"), position) or char == "#":
            raise ValueError(
                f"filter={filter!r} holds a comment at character {position}; "
                "write the filter without comments"
            )
        elif char in "([":
            opened.append(char)
        elif char in closing:
            if not opened or opened.pop() != closing[char]:
                raise ValueError(
                    f"filter={filter!r} closes {char!r} at character {position} that it did "
                    "not open; a filter must be one expression with balanced parentheses"
                )
        position += 1
    if quote_char:
        raise ValueError(f"filter={filter!r} leaves a {quote_char} string unterminated")
    if opened:
        raise ValueError(
            f"filter={filter!r} leaves {''.join(opened)!r} open; "
            "a filter must be one expression with balanced parentheses"
        )
    return filter


def count_rows(client, name: str, expression: str = "") -> int:
    """Rows matching ``expression``, read with Strong consistency (every write so far counts)."""

    def run(_layout: dict) -> int:
        result = client.query(
            name, filter=expression, output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(result[0]["count(*)"])

    return read_with_layout(client, name, run)
